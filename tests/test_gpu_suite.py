"""benchmarks/gpu_suite.py --smoke: every part of the one-shot GPU proof runs on CPU with tiny sizes, so the script
that runs once on the device cannot rot here."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from bertkit import BertTokenizer
from bertkit.model import BertForMaskedLM

REPO = Path(__file__).resolve().parents[1]
WIKI = REPO.parent / "shared" / "data" / "text-en-wikipedia" / "enwiki-wikitasks-text-AA.tar.xz"
PARTS = ["correctness", "inference", "small_bert", "pretrain_throughput"]  # the order they run in


def numbers(value) -> list:
    """Every number in a JSON value (the suite writes a NaN or inf as null: the figures that must exist are
    checked by name below)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.skipif(not WIKI.is_file(), reason=f"the small BERT's text ({WIKI}) is not beside the checkout")
def test_smoke_run_covers_every_part(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_suite.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_part = {row["part"]: row for row in rows}
    assert list(by_part) == [*PARTS, "summary"]
    for name in PARTS:
        row = by_part[name]
        assert row["status"] == "ok", row
        values = numbers(row)
        assert values and all(math.isfinite(v) for v in values), row
    # the parts' figures are there (printed too: the same lines are on stdout)
    printed = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"part"')]
    assert [row["part"] for row in printed] == [*PARTS, "summary"]

    correctness = by_part["correctness"]
    assert set(correctness["hidden_max_abs_diff"]) == {"fp32_padded", "fp32_unpadded", "bf16_padded", "bf16_unpadded"}
    assert correctness["grad"]["fp32"]["rel_diff"] <= 1e-3
    pretrain = by_part["pretrain_throughput"]
    assert set(pretrain["seqs_per_s"]) == {"hf_eager", "hf_compiled", "bertkit_eager", "bertkit_compiled"}
    assert all(v > 0 for v in pretrain["seqs_per_s"].values()) and isinstance(pretrain["large"], dict)
    inference = by_part["inference"]
    assert min(inference[k] for k in ("hf_real_tokens_per_s", "bertkit_real_tokens_per_s",
                                      "bertkit_padded_real_tokens_per_s")) > 0

    small = by_part["small_bert"]
    assert small["steps"] > 0 and [r for r in small["curve"] if r["split"] == "eval"]
    assert small["heldout_mlm_acc_final"] > small["heldout_mlm_acc_first"]  # it learned something in seconds
    # the saved checkpoint: HF layout, bf16, loads back in bertkit (same held-out accuracy) and in transformers
    assert small["reloaded"]["hf_missing_keys"] == []
    assert small["reloaded"]["hf_vs_bertkit_logits_max_abs_diff"] < 1e-3
    assert small["reloaded"]["bertkit_heldout_mlm_acc"] == pytest.approx(small["heldout_mlm_acc_final"], abs=0.02)
    folder = out / "small_bert"
    assert {"config.json", "vocab.txt"} <= {p.name for p in folder.iterdir()}
    model = BertForMaskedLM.from_pretrained(folder)
    assert model.config.vocab_size == len(BertTokenizer.from_pretrained(folder))
    with safe_open(str(next(folder.glob("*.safetensors"))), framework="pt") as weights:
        assert {weights.get_tensor(key).dtype for key in weights.keys()} == {torch.bfloat16}
    assert (out / "small_bert_curve.png").stat().st_size > 0

    # what the device hands back: at most 8 files (log.txt, written by tee there, is the 8th), 16 MiB each
    limits = json.loads([line for line in proc.stdout.splitlines() if line.startswith('{"part": "summary"')][0])["out"]
    assert limits["within_limits"] and limits["files"] <= 7 and limits["max_depth"] <= 2

    # back on CPU: what the checkpoint learned (fill-mask on held-out text, a short SST-2 fine-tune), beside random
    learned = subprocess.run([sys.executable, str(REPO / "benchmarks" / "what_it_learned.py"), "--model", str(folder),
                              "--mask-sentences", "20", "--show", "2", "--train-examples", "32", "--eval-examples", "32",
                              "--epochs", "1"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert learned.returncode == 0, learned.stderr[-3000:]
    report = json.loads(learned.stdout.strip().splitlines()[-1])
    assert report["masked_sentences"] == 20
    for side in ("pretrained", "random"):
        assert 0 <= report["fill_mask"][side]["top1_acc"] <= report["fill_mask"][side]["top5_acc"] <= 1
        assert 0 <= report["sst2"][side]["dev_accuracy"] <= 1 and report["sst2"][side]["eval_examples"] == 32
    shown = report["fill_mask"]["pretrained"]["examples"]
    assert len(shown) == 2 and all("[MASK]" in e["text"] and len(e["top5"]) == 5 for e in shown)
