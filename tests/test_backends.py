"""The backend choice: every pipeline gives the same results on torch and on ONNX Runtime (scores within 1e-4, the
same labels, tokens, spans and answers); a model folder is exported once into FOLDER/onnx/ and reused until its
weights change; `bertkit export onnx`, `embed|predict --backend` and the server's ModelService(backend=...) are
thin wiring over that; the mistakes are one-line errors."""
from __future__ import annotations

import builtins
import json
import os
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from bertkit import cli, pipeline  # noqa: E402
from bertkit.export import OrtModel  # noqa: E402
from bertkit.model import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForNextSentencePrediction,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
TEXTS = ["Elon Musk founded Tesla in California.", "a charming and often affecting journey",
         "Paris is lovely in the spring, and Seoul in the autumn.", "no"]
CONTEXT = ("Frédéric Chopin was born in Żelazowa Wola in 1810. He moved to Paris in 1831 and wrote most of his "
           "piano music there. ") * 6  # long enough for several QA windows at max_seq_len 64


def save_tiny(cls, folder, vocab, **overrides):
    """A random tiny model with spread-out weights (initializer_range 0.5: no near-ties for the backends to break
    differently) and the MiniLM vocabulary."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=128, initializer_range=0.5, **overrides)
    cls(config).eval().save_pretrained(folder)
    shutil.copy(vocab / "vocab.txt", folder / "vocab.txt")
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory, minilm_dir):
    root = tmp_path_factory.mktemp("backends")
    return {
        "fill-mask": save_tiny(BertForMaskedLM, root / "mlm", minilm_dir),
        "next-sentence-prediction": save_tiny(BertForNextSentencePrediction, root / "nsp", minilm_dir),
        "feature-extraction": save_tiny(BertModel, root / "encoder", minilm_dir),
        "text-classification": save_tiny(BertForSequenceClassification, root / "cls", minilm_dir, num_labels=3,
                                         id2label={0: "negative", 1: "neutral", 2: "positive"}),
        "token-classification": save_tiny(BertForTokenClassification, root / "ner", minilm_dir, num_labels=5,
                                          id2label=NER_LABELS),
        "question-answering": save_tiny(BertForQuestionAnswering, root / "qa", minilm_dir),
    }


def same(a, b, path="result"):
    """Equal structures; floats within 1e-4 (scores, vectors), everything else exactly (labels, tokens, spans)."""
    if isinstance(a, (float, np.floating)) or isinstance(b, (float, np.floating)):
        assert abs(a - b) <= 1e-4, f"{path}: {a} vs {b}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


CALLS = {
    "fill-mask": [((["Paris is the [MASK] of France.", "The [MASK] sat on the [MASK]."],), {"top_k": 5})],
    "next-sentence-prediction": [(([("I am going outside.", "I will be back after 6."), ("Hi.", "Bananas are yellow.")],), {})],
    "feature-extraction": [((TEXTS,), {}), ((TEXTS,), {"pooling": "mean", "normalize": True}),
                           ((TEXTS,), {"pooling": "pooler"})],
    "text-classification": [((TEXTS,), {"top_k": None}), (({"text": "A man sleeps.", "text_pair": "Nobody sleeps."},), {})],
    "token-classification": [((TEXTS,), {"aggregation_strategy": "none"}), ((TEXTS,), {"aggregation_strategy": "simple"}),
                             ((TEXTS,), {"aggregation_strategy": "average"})],
    "question-answering": [((), {"question": ["Where was Chopin born?", "When did he move?"],
                                 "context": [CONTEXT, CONTEXT[:120]], "top_k": 3, "max_seq_len": 64, "doc_stride": 24})],
}


@pytest.mark.parametrize("task", list(CALLS))
def test_every_pipeline_same_on_both_backends(task, folders):
    torch_pipe = pipeline(task, model=folders[task], batch_size=3)
    ort_pipe = pipeline(task, model=folders[task], backend="onnxruntime", threads=1, batch_size=3)
    assert torch_pipe.backend == "torch" and ort_pipe.backend == "onnxruntime"
    assert isinstance(ort_pipe.model, OrtModel)
    assert ort_pipe.model.path == folders[task] / "onnx" / f"{type(torch_pipe.model).__name__}.onnx"
    for args, kwargs in CALLS[task]:
        same(ort_pipe(*args, **kwargs), torch_pipe(*args, **kwargs), task)
    if task == "feature-extraction":  # encode(): the length-bucketed encode_batches path
        np.testing.assert_allclose(ort_pipe.encode(TEXTS, normalize=True, batch_size=2),
                                   torch_pipe.encode(TEXTS, normalize=True, batch_size=2), atol=1e-4)


def test_onnx_file_and_ort_model_and_cache(folders, tmp_path):
    """An .onnx path means onnxruntime, its tokenizer is the one beside it; the folder's export is reused while the
    weights are older than it and made again when they change."""
    folder = folders["text-classification"]
    first = pipeline("text-classification", model=folder, backend="onnxruntime")
    cached = folder / "onnx" / "BertForSequenceClassification.onnx"
    assert (folder / "onnx" / "vocab.txt").is_file()
    stamp = cached.stat().st_mtime_ns
    from_file = pipeline("text-classification", model=cached)  # the file's folder holds the tokenizer
    assert from_file.backend == "onnxruntime" and cached.stat().st_mtime_ns == stamp  # reused, not re-exported
    same(from_file("great"), first("great"))
    same(pipeline("text-classification", model=OrtModel(cached))("great"), first("great"))
    weights = folder / "model.safetensors"
    later = cached.stat().st_mtime + 10
    os.utime(weights, (later, later))  # the weights changed after the export: it is made again
    pipeline("text-classification", model=folder, backend="onnxruntime")
    assert cached.stat().st_mtime_ns != stamp
    # a model object: exported to a temporary file, tokenizer from the folder it was loaded from
    obj = BertForSequenceClassification.from_pretrained(folder)
    same(pipeline("text-classification", model=obj, backend="onnxruntime")("great"), first("great"))


def test_backend_mistakes_are_clear(folders):
    folder = folders["feature-extraction"]
    with pytest.raises(ValueError, match="backend must be one of torch, onnxruntime"):
        pipeline("feature-extraction", model=folder, backend="tensorflow")
    with pytest.raises(ValueError, match="onnxruntime"):
        pipeline("feature-extraction", model=folder / "onnx" / "BertModel.onnx", backend="torch")
    with pytest.raises(ValueError, match="set_num_threads"):
        pipeline("feature-extraction", model=folder, threads=2)
    extractor = pipeline("feature-extraction", model=folder, backend="onnxruntime")
    with pytest.raises(ValueError, match="output_hidden_states needs backend='torch'"):
        extractor("hello", layer=1)
    with pytest.raises(ValueError, match="hidden_states"):
        extractor.encode(["hello"], layer=1)


def test_minilm_embeddings_same_on_both_backends(minilm_dir, tmp_path):
    """The real all-MiniLM-L6-v2 (a linked copy of its folder, so the export cache lands in tmp)."""
    folder = tmp_path / "minilm"
    folder.mkdir()
    for item in minilm_dir.iterdir():
        (folder / item.name).symlink_to(item)
    sentences = ["A short one.", "Padding-free inference pads each batch only to its own longest sentence.",
                 "일부 한국어 문장도 들어 있습니다.", "Three"]
    torch_pipe = pipeline("feature-extraction", model=folder)
    ort_pipe = pipeline("feature-extraction", model=folder, backend="onnxruntime", threads=1)
    np.testing.assert_allclose(ort_pipe.encode(sentences, normalize=True, batch_size=2),
                               torch_pipe.encode(sentences, normalize=True, batch_size=2), atol=1e-4)
    same(ort_pipe(sentences[:2]), torch_pipe(sentences[:2]))


# ---- the commands and the server -------------------------------------------------------------------------------

def test_export_command(folders, tmp_path, capsys, monkeypatch):
    target = tmp_path / "out" / "model.onnx"
    assert cli.main(["export", "onnx", "--model", str(folders["token-classification"]), "--out", str(target)]) == 0
    printed = capsys.readouterr().out
    assert "exported BertForTokenClassification" in printed and "logits: max_abs_diff" in printed
    assert (target.parent / "vocab.txt").is_file()
    ner = pipeline("token-classification", model=target)  # self-contained folder
    same(ner(TEXTS[0]), pipeline("token-classification", model=folders["token-classification"])(TEXTS[0]))

    assert cli.main(["export", "onnx", "--model", str(folders["text-classification"]), "--output",
                     str(tmp_path / "int8" / "m.onnx"), "--quantize", "int8"]) == 0
    assert OrtModel(tmp_path / "int8" / "m.onnx").quantize == "int8"
    capsys.readouterr()

    assert cli.main(["export", "onnx", "--model", str(folders["feature-extraction"]), "--out", str(tmp_path / "m.bin")]) == 2
    assert "must be a file name ending in .onnx" in capsys.readouterr().err
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    for argv in (["export", "onnx", "--model", str(folders["feature-extraction"]), "--out", str(tmp_path / "x.onnx")],
                 ["embed", "--model", str(folders["feature-extraction"]), "--backend", "onnxruntime", "hi"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pip install 'bertkit[onnx]'" in err, err


def test_embed_and_predict_commands(folders, tmp_path, capsys):
    encoder = str(folders["feature-extraction"])
    vectors = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.npy"
        assert cli.main(["embed", "--model", encoder, "--backend", backend, "--threads", "1", "--output", str(out),
                         *TEXTS]) == 0
        vectors[backend] = np.load(out)
    np.testing.assert_allclose(vectors["onnxruntime"], vectors["torch"], atol=1e-4)

    rows = tmp_path / "reviews.tsv"
    rows.write_text("text\n" + "\n".join(TEXTS) + "\n", encoding="utf-8")
    predictions = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.jsonl"
        assert cli.main(["predict", "--model", str(folders["text-classification"]), "--task", "classify", "--input",
                         str(rows), "--output", str(out), "--backend", backend, "--threads", "1"]) == 0
        predictions[backend] = [json.loads(line) for line in out.read_text().splitlines()]
    same(predictions["onnxruntime"], predictions["torch"])
    exported = tmp_path / "sst" / "model.onnx"  # an exported file runs on onnxruntime, its tokenizer beside it
    assert cli.main(["export", "onnx", "--model", str(folders["text-classification"]), "--out", str(exported)]) == 0
    assert cli.main(["predict", "--model", str(exported), "--task", "classify", "--input", str(rows), "--output",
                     str(tmp_path / "file.jsonl")]) == 0
    same([json.loads(line) for line in (tmp_path / "file.jsonl").read_text().splitlines()], predictions["torch"])
    capsys.readouterr()
    assert cli.main(["embed", "--model", encoder, "--backend", "onnxruntime", "--layer", "1", "hi"]) == 2
    assert "hidden_states" in capsys.readouterr().err


def test_model_service_backend(folders):
    from bertkit.serve.service import Item, ModelService

    folder = folders["text-classification"]
    torch_service = ModelService(folder)
    ort_service = ModelService(folder, backend="onnxruntime", threads=1)
    assert torch_service.info()["backend"] == "torch" and ort_service.info()["backend"] == "onnxruntime"
    assert isinstance(ort_service.pipelines["embed"].model, OrtModel)  # the encoder's export
    assert ort_service.pipelines["embed"].model.path.name == "BertModel.onnx"
    assert ort_service.pipelines["classify"].model.path.name == "BertForSequenceClassification.onnx"
    for task in ("embed", "classify"):
        items = [Item(text) for text in TEXTS]
        same(ort_service.batch_function(task)(items), torch_service.batch_function(task)(items), task)
    attention = ort_service.batch_function("attention")([Item(("hello world", None))])  # on torch
    assert attention[0] == torch_service.batch_function("attention")([Item(("hello world", None))])[0]
    with pytest.raises(ValueError, match="backend"):
        ModelService(folder, backend="tf")
