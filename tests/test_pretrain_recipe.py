"""The pretraining recipe on real text: loss falls, SIGKILL + resume is exact, 2-process DDP equals 1 process,
gradient accumulation equals one big batch, checkpoints load in HF transformers with the same outputs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_data_corpus import make_wiki_corpus

from bertkit.cli import main as cli_main
from bertkit.train.metrics_log import read_metrics
from bertkit.train.pretrain_recipe import PretrainConfig, PretrainingObjective, build_model, pretrain, train_step

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data, minilm_dir) -> Path:
    return make_wiki_corpus(shared_data, minilm_dir, tmp_path_factory.mktemp("wiki"), documents=150, valid_fraction=0.1)


def tiny(corpus: Path, out: Path, **overrides) -> dict:
    config = dict(data=str(corpus), out=str(out), model_size="tiny", hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=2, max_seq_length=64, batch_size=4, max_steps=14, lr=1e-2, warmup_steps=2,
                  log_every=1, eval_every=7, eval_examples=16, save_every=3, keep_last=3, seed=0, progress=False,
                  threads=1)
    config.update(overrides)
    return config


def as_flags(config: dict) -> list[str]:
    flags = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def train_losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["split"] == "train"}


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def reference_run(corpus, tmp_path_factory) -> Path:
    """An uninterrupted tiny run (dropout on), in this process."""
    out = tmp_path_factory.mktemp("reference")
    pretrain(tiny(corpus, out))
    return out


def test_loss_falls_and_everything_is_logged(reference_run):
    rows = read_metrics(reference_run / "metrics.jsonl")
    train = [r for r in rows if r["split"] == "train"]
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in train] == list(range(1, 15))
    assert [r["step"] for r in evals] == [7, 14]
    for key in ("loss", "mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc", "lr", "tokens_per_s", "grad_norm"):
        assert all(isinstance(r[key], float) for r in train), key
    assert sum(r["mlm_loss"] for r in train[-3:]) / 3 < sum(r["mlm_loss"] for r in train[:3]) / 3 - 0.5
    assert evals[-1]["mlm_loss"] < evals[0]["mlm_loss"]
    assert {"mlm_loss", "mlm_acc", "nsp_acc"} <= set(evals[0])
    lrs = [r["lr"] for r in train]
    assert lrs.index(max(lrs)) == 2 and lrs[-1] < lrs[3]  # warmup then decay
    assert json.loads((reference_run / "config.json").read_text())["hidden_size"] == 32


def test_sigkill_and_resume_gives_the_same_losses(corpus, reference_run, tmp_path, monkeypatch):
    out = tmp_path / "killed"
    config = tiny(corpus, out)
    process = subprocess.Popen([sys.executable, "-m", "bertkit", "pretrain", *as_flags(config)], env=env(), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed_after = None
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        steps = train_losses(out) if (out / "metrics.jsonl").exists() else {}
        if steps and max(steps) >= 7:  # step 7 is logged after the step-6 checkpoint is complete
            process.send_signal(signal.SIGKILL)
            killed_after = max(steps)
            break
        time.sleep(0.005)
    process.wait(timeout=30)
    assert killed_after is not None and killed_after < 14, f"the run was not killed mid-way: {process.stderr.read()[-2000:]}"
    assert process.returncode == -signal.SIGKILL

    import bertkit.train.pretrain_recipe as recipe

    checkpoint_step = int((out / "latest").read_text().strip().split("-")[1])
    assert checkpoint_step in (6, 9, 12) and checkpoint_step <= killed_after
    calls = []
    monkeypatch.setattr(recipe, "train_step", lambda *a, **k: calls.append(1) or train_step(*a, **k))
    pretrain(config)  # same command again: resumes from `latest`
    assert len(calls) == 14 - checkpoint_step  # it resumed; it did not start over
    resumed, expected = train_losses(out), train_losses(reference_run)
    assert sorted(resumed) == list(range(1, 15))
    for step in expected:  # step for step (the killed steps after the checkpoint were re-run identically)
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    a = torch.load(out / "step-00000014" / "training_state.pt", weights_only=True)
    assert a["step"] == 14


def test_two_processes_equal_one_with_the_same_global_batch(corpus, tmp_path):
    single = tmp_path / "single"
    pretrain(tiny(corpus, single, batch_size=8, max_steps=5, dropout=0.0, save_every=5))
    double = tmp_path / "ddp"
    config = tiny(corpus, double, batch_size=4, max_steps=5, dropout=0.0, save_every=5)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "bertkit", "pretrain", *as_flags(config)], env=env(), cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = train_losses(single), train_losses(double)
    assert sorted(one) == sorted(two) == [1, 2, 3, 4, 5]
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4), step
    eval_one = [r for r in read_metrics(single / "metrics.jsonl") if r["split"] == "eval"][-1]
    eval_two = [r for r in read_metrics(double / "metrics.jsonl") if r["split"] == "eval"][-1]
    assert eval_two["mlm_loss"] == pytest.approx(eval_one["mlm_loss"], rel=1e-4)
    from safetensors.torch import load_file

    w1, w2 = load_file(single / "step-00000005" / "model.safetensors"), load_file(double / "step-00000005" / "model.safetensors")
    assert w1.keys() == w2.keys()
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=2e-5, msg=name)


def test_gradient_accumulation_and_checkpointing_equal_one_big_batch(corpus):
    from bertkit.data.corpus import TokenShards
    from bertkit.data.masking import Masker, PretrainingCollator
    from bertkit.data.pretraining import PretrainingDataset
    from bertkit.tokenizer import BertTokenizer
    from bertkit.train.optim import build_optimizer

    shards = TokenShards(corpus)
    tokenizer = BertTokenizer.from_pretrained(shards.tokenizer_folder)
    dataset = PretrainingDataset(shards, 64)
    collate = PretrainingCollator(Masker.from_tokenizer(tokenizer), tokenizer.pad_token_id)
    examples = [dataset[i] for i in range(8)]
    config = PretrainConfig(data="x", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, dropout=0.0)
    results = []
    splits = ([examples], [examples[:4], examples[4:]], [examples[:3], examples[3:5], examples[5:]], [examples])
    for i, micro in enumerate(splits):
        torch.manual_seed(0)
        model = build_model(config, len(tokenizer))
        if i == 3:  # recomputing activations in backward changes nothing either
            model.gradient_checkpointing_enable()
        optimizer = build_optimizer(model, lr=1e-3)
        stats = train_step(PretrainingObjective(model), [collate(m) for m in micro], optimizer, torch.device("cpu"))
        results.append((model, stats))
    (ref, ref_stats), *others = results
    for model, stats in others:
        assert float(stats["mlm_loss_sum"]) == pytest.approx(float(ref_stats["mlm_loss_sum"]), rel=1e-5)
        for (name, a), (_, b) in zip(ref.named_parameters(), model.named_parameters()):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)


def test_fast_step_equals_the_full_model_loss(corpus):
    """MLM head on the masked rows only gives HF's loss (full logits, then cross-entropy with -100)."""
    from bertkit.data.corpus import TokenShards
    from bertkit.data.masking import Masker, PretrainingCollator
    from bertkit.data.pretraining import PretrainingDataset
    from bertkit.tokenizer import BertTokenizer

    shards = TokenShards(corpus)
    tokenizer = BertTokenizer.from_pretrained(shards.tokenizer_folder)
    dataset = PretrainingDataset(shards, 64)
    batch = PretrainingCollator(Masker.from_tokenizer(tokenizer), tokenizer.pad_token_id)([dataset[i] for i in range(6)])
    torch.manual_seed(0)
    model = build_model(PretrainConfig(data="x", hidden_size=32, num_hidden_layers=2, num_attention_heads=2), len(tokenizer)).eval()
    with torch.no_grad():
        full = model(**batch)
        fast = PretrainingObjective(model)(**batch)
    expected = full.loss.item()
    got = (fast["mlm_loss_sum"] / fast["mlm_count"] + fast["nsp_loss_sum"] / fast["nsp_count"]).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_checkpoint_loads_in_transformers_with_the_same_outputs(reference_run):
    transformers = pytest.importorskip("transformers")
    from bertkit.model import BertForPreTraining

    folder = reference_run / "step-00000014"
    ours = BertForPreTraining.from_pretrained(folder).eval()
    theirs = transformers.BertForPreTraining.from_pretrained(folder).eval()
    tokenizer = transformers.BertTokenizerFast.from_pretrained(folder)  # the vocabulary was saved alongside
    enc = tokenizer(["The cat sat on the [MASK].", "Paris is the capital of France."],
                    ["It purred.", "The river Seine flows through it."], padding=True, return_tensors="pt")
    with torch.no_grad():
        a, b = ours(**enc), theirs(**enc)
    torch.testing.assert_close(a.prediction_logits, b.prediction_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a.seq_relationship_logits, b.seq_relationship_logits, rtol=1e-4, atol=1e-4)


def test_full_sentence_mode_and_config_file(corpus, tmp_path, capsys):
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps(tiny(corpus, tmp_path / "full", mode="full", max_steps=2, eval_every=2, save_every=2)))
    assert cli_main(["pretrain", "--config", str(config_file), "--max-steps", "3"]) == 0  # the flag wins
    rows = read_metrics(tmp_path / "full" / "metrics.jsonl")
    train = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3] and "nsp_acc" not in train[0]
    assert "step-00000003" in capsys.readouterr().out
    config_file.write_text(json.dumps({"data": str(corpus), "learning_rate": 1.0}))
    assert cli_main(["pretrain", "--config", str(config_file)]) == 2
    assert "unknown pretraining option(s) learning_rate" in capsys.readouterr().err
    assert cli_main(["pretrain", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "prepare-corpus" in capsys.readouterr().err


def test_plot_writes_a_png(reference_run, tmp_path):
    out = tmp_path / "curves.png"
    assert cli_main(["plot", str(reference_run / "metrics.jsonl"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
