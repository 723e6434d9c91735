"""`bertkit demo --quick`: every step runs, what it writes is real (HuggingFace reads and agrees with it), and the
downstream steps start from the real all-MiniLM-L6-v2 weights (the report and the summary say so)."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
import transformers

from bertkit.cli import main as cli_main
from bertkit.demo import FILL_MASK_EXAMPLES, MINILM, STEP_FOLDERS, bundled_encoder, check_model_folder, run_demo


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


def test_downstream_steps_start_from_minilm_and_the_report_says_so(demo, minilm_dir):
    summary, page = demo["summary"], (demo["out"] / "report.html").read_text()
    assert bundled_encoder() == minilm_dir  # the one lookup, in bertkit
    assert summary["encoder"] == {"name": summary["encoder"]["name"], "folder": str(minilm_dir), "pretrained": True}
    for step in ("embeddings", "sentiment", "ner", "qa"):
        assert summary["started_from"][step].startswith(MINILM), step
    for step in ("pretrain", "fill_mask", "nsp", "attention"):  # MiniLM has no MLM / NSP heads
        assert MINILM not in summary["started_from"][step].split(";")[0], step
    assert "Started from: all-MiniLM-L6-v2" in page and "Started from: the tiny BERT pretrained from scratch" in page
    for task in ("sentiment", "ner", "qa"):  # the fine-tuned models are MiniLM-sized, not the tiny model's
        config = json.loads((demo["out"] / task / "config.json").read_text())
        assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 6, 30522), task
        # trained on slices of the real data, written where the printed commands read them
        assert Path(summary["data"][task]["train"]).parent == demo["out"] / "data"
        assert "shared" in summary["data"][task]["source"]
        assert f"--train {summary['data'][task]['train']}" in demo["printed"]


def test_minilm_embeddings_rank_same_article_sentences_first(demo):
    embeddings = demo["summary"]["embeddings"]
    assert embeddings["dim"] == 384
    # MiniLM: related sentences clearly above unrelated ones, each sentence's nearest neighbour its partner
    assert embeddings["same_article_cosine"] > embeddings["other_article_cosine"] + 0.25
    assert embeddings["nearest_is_same_article"] == 4
    # the from-scratch model, for contrast, embeds everything alike
    scratch = embeddings["from_scratch"]
    assert scratch["same_article_cosine"] - scratch["other_article_cosine"] < 0.1


def test_bad_model_folder_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        check_model_folder(tmp_path / "missing")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(FileNotFoundError, match="model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json"):
        run_demo(tmp_path / "out", quick=True, model=tmp_path)
    assert not (tmp_path / "out").exists()  # nothing ran
    assert cli_main(["demo", "--quick", "--model", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "--model" in capsys.readouterr().err
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    for name, text in (("config.json", '{"model_type": "gpt2"}'), ("model.safetensors", ""), ("vocab.txt", "")):
        (gpt / name).write_text(text)
    with pytest.raises(ValueError, match="not a BERT"):
        check_model_folder(gpt)


def test_sentiment_accuracy_matches_huggingface_on_the_saved_model(demo):
    folder = demo["out"] / "sentiment"
    with open(demo["summary"]["data"]["sentiment"]["eval"], encoding="utf-8") as handle:
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


def test_console_reads_like_the_report_and_says_which_data(demo):
    printed, summary = demo["printed"], demo["summary"]
    assert printed.count("\n") < 80  # per step: header, command, result lines (the bars are on stderr)
    assert "Training Loss" not in printed and "{'loss'" not in printed  # the Trainer's rows are in metrics.jsonl
    assert summary["data_source"] == "shared"  # ../shared/data is beside this checkout
    assert "seeded slices of real English data read from" in printed
    for task in ("sentiment", "ner", "qa"):  # what each fine-tuning taught: its learning curve
        assert summary["learning_curves"][task], task
