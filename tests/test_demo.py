"""`bertkit demo --quick`: every step runs, and what it writes is real (HuggingFace reads and agrees with it)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
import transformers

from bertkit.cli import main as cli_main
from bertkit.demo import FILL_MASK_EXAMPLES, STEP_FOLDERS, TASKS


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("demo")
    (out / "pretrain").mkdir()
    (out / "pretrain" / "stale.txt").write_text("from an earlier run")  # must be cleared, not resumed
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli_main(["demo", "--quick", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    return {"out": out, "printed": printed.getvalue(), "summary": summary}


def test_prints_every_step_and_the_report_path(demo):
    printed = demo["printed"]
    for number in range(1, 10):
        assert f"[{number}/9]" in printed
    for command in ("bertkit train-tokenizer", "bertkit prepare-corpus", "bertkit pretrain", "bertkit fill-mask",
                    "bertkit nsp", "bertkit embed", "bertkit finetune classify", "bertkit finetune ner",
                    "bertkit finetune qa", "bertkit attention"):
        assert command in printed, command
    path = re.search(r"The report: (\S+)", printed).group(1)
    assert Path(path) == demo["out"] / "report.html" and Path(path).is_file()
    assert not (demo["out"] / "pretrain" / "stale.txt").exists()
    assert all((demo["out"] / name).is_dir() for name in STEP_FOLDERS)


def test_report_is_self_contained(demo):
    page = (demo["out"] / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2  # pretraining curves + fine-tuning losses
    assert "<iframe" in page and "srcdoc=" in page  # the attention view, inline
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing fetched when it opens
    for heading in ("WordPiece", "Pretrain", "Fill-mask", "embeddings", "sentiment", "entity", "question", "Attention"):
        assert heading in page, heading
    summary = demo["summary"]
    for metric in ("train_mlm_loss", "eval_mlm_loss", "eval_nsp_acc"):
        assert metric in summary["pretrain"]
    assert set(summary["sentiment"]) >= {"accuracy", "macro_f1"}
    assert set(summary["ner"]) >= {"precision", "recall", "f1"}
    assert set(summary["qa"]) >= {"exact_match", "f1"}


def test_vocabulary_is_read_the_same_by_huggingface(demo):
    from bertkit import BertTokenizer

    folder = demo["out"] / "tokenizer"
    ours, theirs = BertTokenizer.from_pretrained(folder), transformers.BertTokenizer.from_pretrained(folder)
    assert len(ours.vocab) == demo["summary"]["tokenizer"]["vocab_size"] == len(theirs.vocab)
    for text, _ in FILL_MASK_EXAMPLES:
        assert ours.tokenize(text) == theirs.tokenize(text)


def test_pretrained_checkpoint_is_a_huggingface_bert(demo):
    from bertkit.pipelines import pipeline

    checkpoint = demo["summary"]["pretrain"]["checkpoint"]
    reference = transformers.pipeline("fill-mask", model=checkpoint, device="cpu")
    ours = pipeline("fill-mask", model=checkpoint)
    for text, _ in FILL_MASK_EXAMPLES:
        expected = reference(text)
        got = ours(text)
        assert [p["token"] for p in got] == [p["token"] for p in expected]
        assert [p["score"] for p in got] == pytest.approx([p["score"] for p in expected], abs=1e-5)

    hf_model = transformers.BertForPreTraining.from_pretrained(checkpoint).eval()
    encoded = transformers.BertTokenizer.from_pretrained(checkpoint)("A first sentence.", "A second one.", return_tensors="pt")
    with torch.no_grad():
        expected = hf_model(**encoded).seq_relationship_logits.softmax(-1)[0]
    result = pipeline("nsp", model=checkpoint)("A first sentence.", "A second one.")
    assert result["probabilities"]["IsNext"] == pytest.approx(expected[0].item(), abs=1e-5)


def test_sentiment_accuracy_matches_huggingface_on_the_saved_model(demo):
    folder = demo["out"] / "sentiment"
    with open(TASKS / "sentiment_dev.tsv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    classifier = transformers.pipeline("text-classification", model=str(folder), device="cpu")
    predictions = classifier([row["text"] for row in rows])
    accuracy = sum(p["label"] == row["label"] for p, row in zip(predictions, rows)) / len(rows)
    assert demo["summary"]["sentiment"]["accuracy"] == pytest.approx(accuracy)


def test_task_models_load_in_huggingface(demo):
    from bertkit import BertForQuestionAnswering, BertTokenizer

    ner = transformers.BertForTokenClassification.from_pretrained(demo["out"] / "ner")
    assert {"B-PER", "I-PER", "B-LOC", "B-ORG", "O"} <= set(ner.config.id2label.values())
    # transformers 5 has no QA pipeline: compare the saved QA model's start/end logits instead
    folder = demo["out"] / "qa"
    encoded = BertTokenizer.from_pretrained(folder)("Which planet?", "A comet passed close to Mars.", return_tensors="pt")
    with torch.no_grad():
        expected = transformers.BertForQuestionAnswering.from_pretrained(folder).eval()(**encoded)
        got = BertForQuestionAnswering.from_pretrained(folder).eval()(**encoded)
    torch.testing.assert_close(got.start_logits, expected.start_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.end_logits, expected.end_logits, atol=1e-5, rtol=1e-5)
