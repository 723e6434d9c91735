"""Fill-mask and next-sentence pipelines against HuggingFace on the same checkpoint, the factory, the commands.

MiniLM has no trained MLM/NSP head, so the checkpoints here are small random HuggingFace models with
the MiniLM (bert-base-uncased) vocabulary, saved to disk and loaded by both libraries.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers

from bertkit import pipeline
from bertkit.cli import main as cli_main
from bertkit.model import compile_for_inference
from bertkit.pipelines import FillMaskPipeline, pipeline_class

TEXTS = [
    "Paris is the [MASK] of France.",
    "I [MASK] you so much, my [MASK] friend.",  # two masks: one list per mask
    "The [MASK] sat on the mat because it was tired and the afternoon was warm and quiet.",
]


def tiny_config(**extra) -> transformers.BertConfig:
    # a wide initializer gives peaked, well-separated probabilities, so the top-k order is not float noise
    return transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, initializer_range=0.4, **extra,
    )


def save_hf(model: torch.nn.Module, folder, minilm_dir) -> str:
    model.save_pretrained(folder)
    transformers.BertTokenizer.from_pretrained(minilm_dir).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory, minilm_dir) -> str:
    torch.manual_seed(0)
    return save_hf(transformers.BertForMaskedLM(tiny_config()).eval(), tmp_path_factory.mktemp("mlm"), minilm_dir)


@pytest.fixture(scope="module")
def nsp_dir(tmp_path_factory, minilm_dir) -> str:
    torch.manual_seed(1)
    model = transformers.BertForNextSentencePrediction(tiny_config()).eval()
    return save_hf(model, tmp_path_factory.mktemp("nsp"), minilm_dir)


@pytest.fixture(scope="module")
def hf_fill_mask(mlm_dir):
    return transformers.pipeline("fill-mask", model=mlm_dir, device="cpu")


def assert_same_predictions(ours, theirs) -> None:
    """Same tokens, strings and sequences; scores equal to float precision."""
    if isinstance(theirs, list) and theirs and isinstance(theirs[0], list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same_predictions(a, b)
        return
    assert [p["token"] for p in ours] == [p["token"] for p in theirs]
    assert [p["token_str"] for p in ours] == [p["token_str"] for p in theirs]
    assert [p["sequence"] for p in ours] == [p["sequence"] for p in theirs]
    assert [p["score"] for p in ours] == pytest.approx([p["score"] for p in theirs], rel=1e-4, abs=1e-7)


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("top_k", [1, 5])
def test_fill_mask_matches_huggingface(mlm_dir, hf_fill_mask, text, top_k):
    unmasker = pipeline("fill-mask", model=mlm_dir)
    assert_same_predictions(unmasker(text, top_k=top_k), hf_fill_mask(text, top_k=top_k))


def test_a_pipeline_compiled_for_inference_gives_huggingface_predictions(mlm_dir, hf_fill_mask):
    unmasker = pipeline("fill-mask", model=mlm_dir)
    assert compile_for_inference(unmasker.model) is unmasker.model  # in place: the pipeline keeps its model
    for batch_size in (1, 3):  # one text at a time, then padded batches: other shapes, the same dynamic graph
        for ours, text in zip(unmasker(TEXTS, top_k=3, batch_size=batch_size), TEXTS):
            assert_same_predictions(ours, hf_fill_mask(text, top_k=3))
    with pytest.raises(ValueError, match="PyTorch model"):
        compile_for_inference(object())


def test_fill_mask_batch_is_padded_but_gives_the_same_results(mlm_dir, hf_fill_mask):
    unmasker = FillMaskPipeline(mlm_dir, batch_size=2)  # 3 texts of different lengths: padding + 2 batches
    ours = unmasker(TEXTS, top_k=3)
    assert len(ours) == len(TEXTS)
    for result, text in zip(ours, TEXTS):
        assert_same_predictions(result, hf_fill_mask(text, top_k=3))
    # HuggingFace's convention: a list of one text gives that text's result
    assert_same_predictions(unmasker([TEXTS[0]]), hf_fill_mask([TEXTS[0]]))


def test_fill_mask_targets(mlm_dir, hf_fill_mask):
    unmasker = pipeline("fill-mask", model=mlm_dir, top_k=2)  # constructor keywords are call defaults
    targets = ["capital", "city", "heart", "Paris"]  # "Paris" is outside the uncased vocabulary -> "paris"
    with pytest.warns(UserWarning, match="Paris"):
        ours = unmasker(TEXTS[0], targets=targets)
    theirs = hf_fill_mask(TEXTS[0], targets=targets, top_k=2)
    assert len(ours) == 2
    assert_same_predictions(ours, theirs)
    assert {p["token_str"] for p in unmasker(TEXTS[0], targets="heart", top_k=5)} == {"heart"}


def test_fill_mask_accepts_objects_and_pretraining_model(mlm_dir, hf_fill_mask):
    from bertkit import BertForPreTraining, BertTokenizer

    # the seed's spelling: FillMaskPipeline(model=model, tokenizer=tokenizer); a pretraining model works too
    model = BertForPreTraining.from_pretrained(mlm_dir)
    unmasker = FillMaskPipeline(model=model, tokenizer=BertTokenizer.from_pretrained(mlm_dir))
    assert_same_predictions(unmasker(TEXTS[0]), hf_fill_mask(TEXTS[0]))


def test_fill_mask_bad_input_is_a_clear_error(mlm_dir):
    unmasker = pipeline("fill-mask", model=mlm_dir)
    with pytest.raises(ValueError, match=r"no \[MASK\]"):
        unmasker("there is nothing to fill here")
    with pytest.raises(ValueError, match="top_k"):
        unmasker(TEXTS[0], top_k=0)
    with pytest.raises(ValueError, match="unknown argument.*topk"):
        unmasker(TEXTS[0], topk=3)
    with pytest.raises(ValueError, match="at most 64"):
        unmasker("[MASK] " + "word " * 80)


def test_next_sentence_matches_huggingface_model(nsp_dir):
    pairs = [
        ("I am going outside.", "I will be back after 6."),
        ("I am going outside.", "Where are you come from?"),
        ("The weather is nice today, so we walk to the park and sit by the lake.", "The sky is blue."),
    ]
    hf_model = transformers.BertForNextSentencePrediction.from_pretrained(nsp_dir).eval()
    hf_tokenizer = transformers.BertTokenizer.from_pretrained(nsp_dir)
    with torch.no_grad():
        encoded = hf_tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
        expected = hf_model(**encoded).logits.softmax(-1)

    nsp = pipeline("next-sentence-prediction", model=nsp_dir, batch_size=2)
    results = nsp(pairs)
    for result, probs in zip(results, expected.tolist()):
        assert result["probabilities"]["IsNext"] == pytest.approx(probs[0], abs=1e-5)
        assert result["probabilities"]["NotNext"] == pytest.approx(probs[1], abs=1e-5)
        assert result["label"] == ("IsNext" if probs[0] >= probs[1] else "NotNext")
        assert result["score"] == pytest.approx(max(probs), abs=1e-5)
    # every way of giving one pair gives the same answer (alone it is unpadded: equal to float precision)
    a, b = pairs[0]
    alone = nsp(a, b)
    assert nsp((a, b)) == nsp({"text": a, "text_pair": b}) == alone
    for result in nsp([a, a], [b, b]):
        assert result["label"] == alone["label"] and result["score"] == pytest.approx(alone["score"], abs=1e-6)
    assert alone["label"] == results[0]["label"] and alone["score"] == pytest.approx(results[0]["score"], abs=1e-6)


def test_next_sentence_with_a_pretraining_model(nsp_dir, minilm_dir, tmp_path):
    # BertForPreTraining (what `bertkit pretrain` saves) answers NSP through its seq_relationship head
    torch.manual_seed(2)
    folder = save_hf(transformers.BertForPreTraining(tiny_config()).eval(), tmp_path, minilm_dir)
    hf_model = transformers.BertForPreTraining.from_pretrained(folder).eval()
    encoded = transformers.BertTokenizer.from_pretrained(folder)("A cat.", "It sleeps.", return_tensors="pt")
    with torch.no_grad():
        expected = hf_model(**encoded).seq_relationship_logits.softmax(-1)[0].tolist()
    from bertkit import BertForPreTraining

    nsp = pipeline("nsp", model=BertForPreTraining.from_pretrained(folder), tokenizer=folder)
    result = nsp("A cat.", "It sleeps.")
    assert list(result["probabilities"].values()) == pytest.approx(expected, abs=1e-5)


def test_next_sentence_bad_input(nsp_dir):
    nsp = pipeline("next-sentence-prediction", model=nsp_dir)
    with pytest.raises(ValueError, match="sentence pair"):
        nsp("only one sentence")
    with pytest.raises(ValueError, match="2 first sentences but 1"):
        nsp(["a", "b"], ["c"])


def test_factory_task_table_and_errors(mlm_dir, tmp_path):
    assert pipeline_class("fill-mask") is FillMaskPipeline
    assert pipeline_class("nsp").__name__ == "NextSentencePredictionPipeline"
    assert pipeline_class("feature-extraction").__name__ == "FeatureExtractionPipeline"
    with pytest.raises(ValueError, match="unknown task 'summarization'.*fill-mask"):
        pipeline("summarization", model=mlm_dir)
    with pytest.raises(ValueError, match="needs model="):
        pipeline("fill-mask")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pipeline("fill-mask", model=tmp_path / "nowhere")
    weights_only = tmp_path / "weights_only"  # a model folder without vocab.txt / tokenizer.json
    weights_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(mlm_dir) / name, weights_only / name)
    with pytest.raises(FileNotFoundError, match="no tokenizer"):
        pipeline("fill-mask", model=weights_only)
    assert pipeline("fill-mask", model=weights_only, tokenizer=mlm_dir)(TEXTS[0])
    with pytest.raises(ValueError, match="batch_size"):
        pipeline("fill-mask", model=mlm_dir, batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pipeline("fill-mask", model=mlm_dir, device="cuda")


def test_fill_mask_command(mlm_dir, hf_fill_mask, capsys):
    assert cli_main(["fill-mask", "--model", mlm_dir, TEXTS[0], "--top-k", "3", "--json"]) == 0
    assert_same_predictions(json.loads(capsys.readouterr().out), hf_fill_mask(TEXTS[0], top_k=3))
    assert cli_main(["fill-mask", "--model", mlm_dir, TEXTS[1], "--top-k", "2"]) == 0
    printed = capsys.readouterr().out
    assert "mask 2:" in printed and hf_fill_mask(TEXTS[1], top_k=2)[1][0]["token_str"] in printed
    assert cli_main(["fill-mask", "--model", mlm_dir, "no mask here"]) == 2
    assert "no [MASK]" in capsys.readouterr().err


def test_nsp_command(nsp_dir, tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("I am going outside.\tI will be back after 6.\nA.\tB.\n")
    assert cli_main(["nsp", "--model", nsp_dir, "--file", str(pairs), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = pipeline("nsp", model=nsp_dir)([("I am going outside.", "I will be back after 6."), ("A.", "B.")])
    assert [r["label"] for r in printed] == [r["label"] for r in expected]
    for got, want in zip(printed, expected):
        assert list(got["probabilities"].values()) == pytest.approx(list(want["probabilities"].values()), abs=1e-6)
    assert cli_main(["nsp", "--model", nsp_dir, "I am going outside.", "I will be back after 6."]) == 0
    assert "IsNext" in capsys.readouterr().out
    assert cli_main(["nsp", "--model", nsp_dir, "only one"]) == 2
    assert "two sentences" in capsys.readouterr().err


def test_fill_mask_sequences_only_for_the_best_candidates(mlm_dir):
    from bertkit import pipeline

    unmasker = pipeline("fill-mask", model=mlm_dir)
    everything = unmasker("Paris is the [MASK] of France.", top_k=6)
    fewer = unmasker("Paris is the [MASK] of France.", top_k=6, sequences=2)
    assert all("sequence" in c for c in everything)  # HF's shape by default
    assert [("sequence" in c) for c in fewer] == [True, True, False, False, False, False]
    assert [c["token"] for c in fewer] == [c["token"] for c in everything]
    assert [c["sequence"] for c in fewer[:2]] == [c["sequence"] for c in everything[:2]]
