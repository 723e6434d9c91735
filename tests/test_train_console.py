"""The console rule (issue 22): training prints a progress bar and a few one-line summaries; every logged row goes
to metrics.jsonl, and a row per logging step reaches the console only when asked for (an explicit `logging_steps`,
`--verbose`, INFO verbosity)."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from bertkit import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from bertkit.cli import main as cli_main
from bertkit.train.console import console_mode, pretrain_lines, resolve_console_mode
from bertkit.utils import logging as bertkit_logging

ROWS = [{"input_ids": [2, 5 + i % 7, 9 + i % 3, 3], "attention_mask": [1, 1, 1, 1], "label": i % 2} for i in range(40)]


def train(tmp_path, capsys, **arguments) -> tuple[list[str], list[dict]]:
    """20 steps of a tiny classifier; (the console's table and dict lines, the metrics.jsonl rows)."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=2)
    values = {"per_device_train_batch_size": 2, "num_train_epochs": 1, "save_strategy": "no", "device": "cpu",
              "disable_tqdm": True, "seed": 0, **arguments}
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
    trainer = Trainer(model=BertForSequenceClassification(config), args=TrainingArguments(str(tmp_path / "run"), **values),
                      train_dataset=ROWS, eval_dataset=ROWS[:8])
    capsys.readouterr()
    trainer.train()
    printed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    return printed, rows


def step_rows(printed: list[str]) -> list[int]:
    return [int(line.split("\t")[0]) for line in printed if line.split("\t")[0].isdigit()]


def test_an_explicit_logging_steps_prints_every_row_as_hf_does(tmp_path, capsys):
    printed, rows = train(tmp_path, capsys, logging_steps=1)
    assert printed[0] == "Step\tTraining Loss"
    assert step_rows(printed) == list(range(1, 21))
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 21))


def test_summary_mode_keeps_about_ten_rows_and_the_log_keeps_all(tmp_path, capsys):
    with console_mode("summary"):
        printed, rows = train(tmp_path, capsys, logging_steps=1)
    steps = step_rows(printed)
    assert 2 <= len(steps) <= 11 and steps[-1] == 20  # periodic, and the last step
    assert [r["step"] for r in rows if r["split"] == "train"] == list(range(1, 21))  # every row in metrics.jsonl


def test_bar_mode_prints_no_rows(tmp_path, capsys):
    with console_mode("bar"):
        printed, rows = train(tmp_path, capsys, logging_steps=1, eval_strategy="epoch")
    assert printed == []
    assert any(r["split"] == "eval" for r in rows) and sum(r["split"] == "train" for r in rows) == 20


def test_the_default_prints_a_row_per_evaluation_not_per_step(tmp_path, capsys):
    printed, _ = train(tmp_path, capsys, num_train_epochs=2, eval_strategy="epoch", logging_strategy="steps")
    assert printed[0].startswith("Epoch\tTraining Loss\tValidation Loss")
    assert [line.split("\t")[0] for line in printed[1:]] == ["1", "2"]


def test_verbose_prints_the_logging_steps_between_the_evaluations(tmp_path, capsys):
    with console_mode("rows"):
        printed, _ = train(tmp_path, capsys, eval_strategy="epoch", logging_steps=5)
    assert sum(line.startswith("{'loss': ") for line in printed) == 4  # steps 5, 10, 15, 20
    assert printed[-1].startswith("1\t")  # the epoch's evaluation row


def test_info_verbosity_asks_for_rows():
    args = TrainingArguments("x")
    assert resolve_console_mode(args) == "summary"
    bertkit_logging.set_verbosity_info()
    try:
        assert resolve_console_mode(args) == "rows"
    finally:
        bertkit_logging.set_verbosity_warning()
    with console_mode("bar"):
        assert resolve_console_mode(TrainingArguments("x", logging_steps=1)) == "bar"  # the caller's mode wins
    with pytest.raises(ValueError, match="console mode"):
        with console_mode("loud"):
            pass


def test_pretraining_prints_evaluations_by_default_and_training_rows_when_verbose():
    assert pretrain_lines("summary") == (False, True)
    assert pretrain_lines("rows") == (True, True)
    assert pretrain_lines("bar") == (False, False)


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory, minilm_dir):
    """A tiny random BERT with MiniLM's vocabulary, in HF layout (fast to fine-tune on the bundled sample)."""
    folder = tmp_path_factory.mktemp("tiny-classifier")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32)
    BertForSequenceClassification(config).save_pretrained(folder)
    shutil.copy(minilm_dir / "vocab.txt", folder / "vocab.txt")
    return folder


@pytest.mark.parametrize("flags, per_step", [
    (["--epochs", "3", "--batch-size", "1"], 0),  # 132 steps, logged every 50 (the recipes' default): not printed
    (["--epochs", "3", "--batch-size", "1", "--verbose"], 3),  # steps 50, 100, 132
    (["--epochs", "1", "--batch-size", "4", "--logging-steps", "1"], 11),  # asked for: every step
])
def test_finetune_command_prints_per_step_rows_only_when_asked(classifier_folder, tmp_path, capsys, flags, per_step):
    from bertkit.demo.plan import TASKS

    assert cli_main(["finetune", "classify", "--model", str(classifier_folder), "--train",
                     str(TASKS / "sentiment_train.tsv"), "--eval", str(TASKS / "sentiment_dev.tsv"), "--output",
                     str(tmp_path / "out"), "--device", "cpu", *flags]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("{'loss': ") for line in printed) == per_step, printed
    assert any(line.startswith("Epoch\tTraining Loss") for line in printed)  # a row per evaluation, always
    logged = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["split"] == "train" for r in logged) >= 1
