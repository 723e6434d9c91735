"""ONNX export and the ONNX Runtime backend: the exported graph gives the PyTorch model's numbers (fp32 within
1e-4 on real tokens) for the encoder and every head, at any batch size and length; int8 runs and mostly agrees;
the ONNX Runtime encode_batches equals the torch one; missing onnxruntime and bad paths are clear errors."""
from __future__ import annotations

import builtins

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from bertkit.export import OrtModel, export_onnx, verify_onnx  # noqa: E402
from bertkit.model import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    encode_batches,
)

HEADS = [BertModel, BertForSequenceClassification, BertForTokenClassification, BertForQuestionAnswering,
         BertForMaskedLM, BertForNextSentencePrediction, BertForPreTraining]


def tiny(cls=BertModel, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=64, num_labels=2 if cls is BertForQuestionAnswering else 3,
                        **overrides)
    return cls(config).eval()


def padded(lengths: list[int], vocab: int = 120, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    ids = torch.randint(1, vocab, (len(lengths), width), generator=g) * mask
    types = torch.zeros_like(ids)
    types[:, width // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types * mask}


@pytest.mark.parametrize("cls", HEADS, ids=lambda c: c.__name__)
def test_export_round_trip_fp32(cls, tmp_path):
    model = tiny(cls)
    path = export_onnx(model, tmp_path / "model.onnx")
    assert path == tmp_path / "model.onnx" and path.is_file()
    runner = OrtModel(path, threads=1)
    assert runner.architecture == cls.__name__ and runner.config.hidden_size == 32
    assert runner.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    # the names HF's outputs have, and the same output class as the PyTorch model
    inputs = padded([7, 3, 5])
    with torch.inference_mode():
        ref = model(**inputs, return_dict=True)
    got = runner(**inputs)
    assert type(got) is type(ref)
    real = inputs["attention_mask"].bool()
    for name in runner.output_names:
        a, b = got[name], ref[name]
        assert a.shape == b.shape, name
        if a.dim() >= 2 and a.shape[1] == real.shape[1]:  # per-token outputs: compare real tokens only
            a, b = a[real], b[real]
        assert float((a - b).abs().max()) < 1e-4, name


def test_dynamic_axes_one_session(tmp_path):
    """One graph, many shapes: batch 1..9, lengths 1..60, padded and not."""
    model = tiny(BertForTokenClassification)
    runner = OrtModel(export_onnx(model, tmp_path / "m.onnx"), threads=1)
    for lengths in ([1], [60], [4, 4], [9, 2, 30, 17, 5, 1, 44, 8, 12]):
        inputs = padded(lengths, seed=len(lengths))
        with torch.inference_mode():
            ref = model(**inputs).logits
        got = runner(**inputs).logits
        real = inputs["attention_mask"].bool()
        assert got.shape == ref.shape
        assert float((got[real] - ref[real]).abs().max()) < 1e-4


def test_export_from_folder_and_optimized(tmp_path):
    """A folder loads as the class its config names; the transformer optimizer's graph is checked the same way."""
    model = tiny(BertForSequenceClassification)
    model.save_pretrained(tmp_path / "ckpt")
    path = export_onnx(tmp_path / "ckpt", tmp_path / "opt.onnx", optimize=True)
    runner = OrtModel(path, threads=1)
    assert runner.architecture == "BertForSequenceClassification"
    report = verify_onnx(path, model)
    assert report["logits"]["max_abs_diff"] < 1e-4


def test_int8_runs_and_mostly_agrees(tmp_path):
    model = tiny(BertForSequenceClassification)
    path = export_onnx(model, tmp_path / "int8.onnx", quantize="int8")
    assert OrtModel(path).quantize == "int8"
    import onnx

    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops  # int8 matmuls, activations quantized at run time
    inputs = padded([12, 30, 7, 19, 25, 3, 40, 11], seed=3)
    with torch.inference_mode():
        ref = model(**inputs).logits
    got = OrtModel(path, threads=1)(**inputs).logits
    assert torch.isfinite(got).all()
    assert float((got.argmax(-1) == ref.argmax(-1)).float().mean()) >= 0.75
    assert float((got - ref).abs().max()) < 0.1


def test_ort_encode_batches_equals_torch(tmp_path):
    model = tiny(BertModel)
    runner = OrtModel(export_onnx(model, tmp_path / "m.onnx"), threads=1)
    g = torch.Generator().manual_seed(5)
    ids = [torch.randint(1, 120, (int(n),), generator=g).tolist() for n in torch.randint(1, 50, (23,), generator=g)]
    types = [[0] * (len(r) // 2) + [1] * (len(r) - len(r) // 2) for r in ids]
    ours = encode_batches(runner, ids, types, batch_size=4)
    ref = encode_batches(model, ids, types, batch_size=4)
    assert len(ours) == len(ref) == len(ids)
    for a, b, row in zip(ours, ref, ids):
        assert a.last_hidden_state.shape == (len(row), 32)
        assert float((a.last_hidden_state - b.last_hidden_state).abs().max()) < 1e-4
        assert float((a.pooler_output - b.pooler_output).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="hidden_states"):
        encode_batches(runner, ids, output_hidden_states=True)
    head = OrtModel(export_onnx(tiny(BertForSequenceClassification), tmp_path / "cls.onnx"))
    with pytest.raises(ValueError, match="not an encoder export"):
        encode_batches(head, ids)


def test_minilm_export_and_encode(minilm_dir, tmp_path):
    """The real all-MiniLM-L6-v2: exported from its folder, checked on real sentences, encode_batches agrees."""
    from bertkit import BertTokenizer

    path = export_onnx(minilm_dir, tmp_path / "minilm.onnx")
    tokenizer = BertTokenizer.from_pretrained(minilm_dir)
    texts = ["A short one.", "Padding-free inference: each batch pads only to its own longest sentence, so short "
             "sentences no longer pay for long ones.", "Three", "일부 한국어 문장도 들어 있습니다."]
    ids = tokenizer(texts)["input_ids"]
    ours = encode_batches(OrtModel(path, threads=1), ids, batch_size=2)
    ref = encode_batches(BertModel.from_pretrained(minilm_dir), ids, batch_size=2)
    for a, b in zip(ours, ref):
        assert float((a.last_hidden_state - b.last_hidden_state).abs().max()) < 1e-4


def test_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        OrtModel(tmp_path / "missing.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        OrtModel(tmp_path / "garbage.onnx")
    with pytest.raises(FileNotFoundError, match="config.json"):
        export_onnx(tmp_path / "no-such-folder", tmp_path / "x.onnx")
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(tiny(), tmp_path / "model.bin")
    with pytest.raises(ValueError, match="quantize"):
        export_onnx(tiny(), tmp_path / "m.onnx", quantize="int4")
    with pytest.raises(ValueError, match="BertForMultipleChoice"):
        export_onnx(tiny(BertForMultipleChoice), tmp_path / "m.onnx")

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ImportError, match=r"bertkit\[onnx\]"):
        export_onnx(tiny(), tmp_path / "m.onnx")
    with pytest.raises(ImportError, match=r"bertkit\[onnx\]"):
        OrtModel(tmp_path / "garbage.onnx")


def test_model_mode_and_device_restored(tmp_path):
    """The graph is exported with dropout off whatever the model's mode; the caller's mode comes back as it was
    (the exporter resets the traced module's mode recursively)."""
    model = tiny(BertForSequenceClassification)
    export_onnx(model, tmp_path / "m.onnx")
    assert not any(m.training for m in model.modules())
    model.train()
    path = export_onnx(model, tmp_path / "t.onnx")  # would fail its check if dropout were on
    assert all(m.training for m in model.modules())
    assert verify_onnx(path, model.eval())["logits"]["max_abs_diff"] < 1e-4
