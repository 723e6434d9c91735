"""The whole GPU proof in ONE run (issue 13): correctness against HuggingFace, pretraining and inference
throughput against HuggingFace, and a real small BERT pretrained for a fixed wall-clock budget. Under 9
minutes on one H200; every part is guarded (a failure is logged with its traceback and the next part runs).

On the device (run tool: carry [".gpu_shards"], timeout_s 600; nothing is installed there, no network):

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_suite.py --out $OUT --shards .gpu_shards 2>&1 | tee $OUT/log.txt

Afterwards, back on CPU, what the small BERT learned (fill-mask on held-out WikiText-2, a short SST-2 fine-tune,
each beside the same architecture with random weights):

    python benchmarks/what_it_learned.py --model <the returned folder>/small_bert

Before the device run, here on CPU, once (about a minute on 2 cores; the folder is git-ignored and travels only
because the run carries it; ../shared does not travel):

    python benchmarks/gpu_suite.py --prepare-shards .gpu_shards

    It trains a 4,096-token uncased WordPiece vocabulary on the first documents of English Wikipedia
    (../shared/data/text-en-wikipedia, CC BY-SA 3.0) and tokenizes the whole extract into uint16 token shards
    (`bertkit prepare-corpus` format: about 15 M tokens, about 34 MiB; 2% of the documents held out).
    Why not bert-base-uncased's 30,522-token vocabulary: BERT-small's word-embedding matrix alone would be
    30,522 x 512 bf16 = 29.8 MiB, one tensor, and no file may exceed 16 MiB; with 4,096 tokens the bf16
    checkpoint (15.2 M parameters, 29 MiB) fits in two safetensors shards.

CPU smoke run (tiny sizes, every part, about a minute on 2 cores; tests/test_gpu_suite.py runs it; it
prepares its own small shards in a temporary folder unless --shards is given):

    python benchmarks/gpu_suite.py --smoke --out /tmp/suite

Parts, in the order they run (default budgets; --budget-scale multiplies them; --deadline-s, counted from the
start of the process, caps the whole run: a part never gets more than what is left after the budgets of the
parts still to come):

1. correctness (30 s): bertkit vs transformers on the same random BERT-base weights (dropout off), fp32 (TF32
   off) and bf16 autocast, bertkit's padded and unpadded paths, a batch with padding: max abs diff of the last
   hidden states on real tokens and of the MLM+NSP loss, and of every parameter's gradient after one backward.
2. inference (60 s): BERT-base bf16, batch 256, lengths 32..128, real tokens/s of HF (SDPA), bertkit padded and
   bertkit unpadded (bench_inference.bench_synthetic).
3. small_bert (240 s): BERT-small (4 layers, 512 wide, 8 heads, intermediate 2048) pretrained with MLM (full
   sentences, no NSP) at seq 128, batch 256, bf16, on the shards, for a fixed wall-clock budget; held-out MLM
   accuracy every 30 s; the checkpoint saved in bf16 in HF layout and loaded back by bertkit and transformers.
4. pretrain_throughput (150 s, compilation included): BertForPreTraining, BERT-base, seq 128, batch 256, bf16
   autocast, fused AdamW, in this one process: HF eager, HF torch.compile, bertkit eager, bertkit compiled
   (bench_pretrain.measure); then BERT-large seq 512 batch 32, eager, if 25 s of the budget are left. FLOPs as
   bench_pretrain.step_flops counts them (FLOPS_COUNTING below); MFU against dense bf16 989 TFLOP/s. Last,
   because torch.compile is the one step whose time nothing bounds: were it to run away, the other parts'
   lines would already be in results.jsonl when the device's limit stops the run.

Output folder (the device returns at most 8 files of at most 16 MiB, 64 MiB together, 2 folders deep):

    log.txt                      written by `tee` (stdout and stderr: tracebacks, progress)
    results.jsonl                one JSON line per part (as printed), then a summary line; the small BERT's
                                 line holds its curve (train and eval rows)
    small_bert_curve.png         the curve (skipped if matplotlib is missing)
    small_bert/                  config.json, vocab.txt, model.safetensors.index.json + 2 safetensors shards (bf16)
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

STARTED = time.perf_counter()  # the deadline counts torch's and transformers' imports too
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the device has no network: transformers must never wait on the Hub

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_inference  # noqa: E402
import bench_pretrain  # noqa: E402

from bertkit import BertTokenizer  # noqa: E402
from bertkit.data.corpus import TokenShards, iter_documents, prepare_corpus  # noqa: E402
from bertkit.data.masking import PretrainingCollator  # noqa: E402
from bertkit.data.pretraining import PretrainingDataset, PretrainingSampler  # noqa: E402
from bertkit.model import BertConfig, BertForMaskedLM, BertForPreTraining  # noqa: E402
from bertkit.model.inference import autocast  # noqa: E402
from bertkit.train import distributed as dist_utils  # noqa: E402
from bertkit.train.curves import plot_metrics  # noqa: E402
from bertkit.train.metrics_log import MetricsLogger, json_safe, read_metrics  # noqa: E402
from bertkit.train.optim import build_optimizer  # noqa: E402
from bertkit.train.pretrain_recipe import (  # noqa: E402
    PretrainConfig,
    PretrainingObjective,
    _eval_loader,
    build_masker,
    evaluate,
    micro_batch_stream,
    train_step,
)

WIKI_ARCHIVE = REPO.parent / "shared" / "data" / "text-en-wikipedia" / "enwiki-wikitasks-text-AA.tar.xz"

# what the device hands back from $OUT
MAX_OUT_FILES = 8
MAX_OUT_FILE_BYTES = 16 * 2**20
MAX_OUT_BYTES = 64 * 2**20
# safetensors shard size: under the file limit with room for the shard's JSON header
SHARD_BYTES = MAX_OUT_FILE_BYTES - 2**20

FLOPS_COUNTING = ("training FLOPs = 3 x forward FLOPs (multiply-add = 2); forward per token and layer: "
                  "2*(4h^2 + 2*h*intermediate) for the projections and FFN + 4*seq*h for QK^T and AV; plus the MLM "
                  "head (transform h^2 + decoder h*vocab) on the masked positions only and the pooler + NSP per "
                  "sequence; the same count for both sides (HF's full-vocabulary logits on every position are "
                  "not credited); MFU = that / step time / dense bf16 peak (989 TFLOP/s H100/H200 SXM)")
ANCHORS_H100 = {"pretrain_hf_eager_seqs_per_s": 2518, "pretrain_hf_compiled_seqs_per_s": 3803,
                "inference_hf_sdpa_real_tokens_per_s": 1.34e6}
TARGETS = {"pretrain_vs_hf_eager": 2.0, "pretrain_vs_hf_compiled": 1.3, "inference_vs_hf_sdpa": 2.0}


@dataclass
class Plan:
    """Sizes and budgets of one run: the device's defaults, or the smoke run's tiny ones."""

    device: str
    smoke: bool
    # correctness
    correct_size: str = "base"
    correct_batch: int = 16
    correct_seq: int = 128
    # pretraining throughput
    pretrain_size: str = "base"
    pretrain_seq: int = 128
    pretrain_batch: int = 256
    pretrain_steps: int = 20
    pretrain_warmup: int = 3
    compile_warmup: int = 4
    compile_backend: str = "inductor"
    large: tuple[str, int, int] | None = ("large", 512, 32)  # size, seq, batch
    large_min_s: float = 25.0  # budget left that the large run needs
    compile_reserve_s: float = 90.0  # of the pretraining budget, kept for the compiled pair after the large run
    # inference
    infer_size: str = "base"
    infer_batch: int = 256
    infer_steps: int = 20
    infer_repeats: int = 5
    # small BERT
    small_size: str = "small"
    small_seq: int = 128
    small_batch: int = 256
    small_lr: float = 5e-4
    small_warmup_fraction: float = 0.06
    eval_every_s: float = 30.0
    log_every_s: float = 10.0
    eval_examples: int = 2048
    num_workers: int = 6
    vocab_size: int = 4096
    shard_bytes: int = SHARD_BYTES
    # budgets, seconds
    correctness_s: float = 30.0
    pretrain_s: float = 150.0
    inference_s: float = 60.0
    small_bert_s: float = 240.0
    deadline_s: float = 525.0  # the whole run from the process's start: 8 min 45 s
    save_reserve_s: float = 20.0

    @classmethod
    def smoke_plan(cls) -> "Plan":
        return cls(device="cpu", smoke=True, correct_size="tiny", correct_batch=4, correct_seq=32,
                   pretrain_size="tiny", pretrain_seq=32, pretrain_batch=4, pretrain_steps=2, pretrain_warmup=1,
                   compile_warmup=1, compile_backend="eager",  # eager: traces with Dynamo, no C++ build on CPU
                   large=("tiny", 64, 2), large_min_s=0.0, compile_reserve_s=0.0,
                   infer_size="tiny", infer_batch=16, infer_steps=2, infer_repeats=1,
                   small_size="tiny", small_seq=64, small_batch=16, small_lr=1e-3, eval_every_s=3.0,
                   # one loader worker and small shards: the device's code paths (worker processes reading the
                   # memory-mapped corpus, a sharded checkpoint with its index), at the smoke's size
                   log_every_s=2.0, eval_examples=64, num_workers=1, vocab_size=1000, shard_bytes=800_000,
                   correctness_s=30.0, pretrain_s=60.0, inference_s=30.0, small_bert_s=8.0, deadline_s=300.0,
                   save_reserve_s=2.0)

    def scale(self, factor: float) -> None:
        for name in ("correctness_s", "pretrain_s", "inference_s", "small_bert_s", "eval_every_s", "log_every_s",
                     "deadline_s", "large_min_s", "compile_reserve_s"):
            setattr(self, name, getattr(self, name) * factor)


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise TimeoutError in the main thread after `seconds` (SIGALRM): for torch.compile, whose time nothing else
    bounds. Inductor waits on its compile workers in Python, so the alarm interrupts it."""
    if seconds <= 0:
        raise TimeoutError("no time left before the run's deadline")

    def alarm(*_: Any) -> None:
        raise TimeoutError(f"still running after {seconds:.1f} s, the time left before the run's deadline")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------------------------------ shards
def prepare_shards(folder: str | os.PathLike, vocab_size: int = 4096, tokenizer_documents: int = 6000,
                   max_documents: int | None = None, valid_fraction: float = 0.02, progress: bool = True) -> dict:
    """Train a WordPiece vocabulary on the first documents of the Wikipedia extract, then tokenize the extract
    (or its first `max_documents` documents) into `bertkit prepare-corpus` shards; returns the corpus header."""
    from itertools import islice

    from bertkit.tokenizer.vocab_trainer import train_wordpiece

    if not WIKI_ARCHIVE.is_file():
        raise FileNotFoundError(f"{WIKI_ARCHIVE} is missing: the shards are made from ../shared/data beside the checkout")
    documents = islice(iter_documents([WIKI_ARCHIVE], "wikiextractor"), tokenizer_documents)
    sentences = [sentence for document in documents for sentence in document]
    # a small alphabet: rare characters would spend the small vocabulary on themselves (they become [UNK])
    tokenizer = train_wordpiece(sentences, vocab_size=vocab_size, limit_alphabet=150, show_progress=progress)
    return prepare_corpus([WIKI_ARCHIVE], folder, tokenizer, fmt="wikiextractor", valid_fraction=valid_fraction,
                          max_documents=max_documents, progress=progress)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------ helpers
def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def padded_batch(batch: int, seq: int, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    """bench_pretrain's random MLM+NSP batch with random lengths in [seq/4, seq]: padding on most rows, so that
    the padded and unpadded paths really differ."""
    out = bench_pretrain.random_batch(batch, seq, vocab, torch.device("cpu"), seed=1)
    g = torch.Generator().manual_seed(2)
    lengths = torch.randint(seq // 4, seq + 1, (batch,), generator=g)
    lengths[0] = seq  # one full row: the longest decides the width
    real = torch.arange(seq)[None] < lengths[:, None]
    out["attention_mask"] = real.long()
    out["input_ids"] = out["input_ids"] * real
    out["token_type_ids"] = out["token_type_ids"] * real
    out["labels"] = torch.where(real, out["labels"], torch.full_like(out["labels"], -100))
    return {k: v.to(device) for k, v in out.items()}


# ------------------------------------------------------------------------------------------ correctness
# (precision) -> max abs diff allowed; fp32 with TF32 off; bf16 autocast rounds every matmul input to 8 bits
HIDDEN_TOL = {"fp32": 1e-3, "bf16": 0.1}
LOSS_TOL = {"fp32": 1e-4, "bf16": 2e-2}
GRAD_REL_TOL = {"fp32": 1e-3, "bf16": 5e-2}  # |g_ours - g_hf| / |g_hf| over all parameters together


def part_correctness(plan: Plan, budget_s: float) -> dict[str, Any]:
    import transformers

    device = torch.device(plan.device)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 must mean fp32 on both sides
    try:
        config = BertConfig.from_size(plan.correct_size, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        torch.manual_seed(0)
        hf = transformers.BertForPreTraining._from_config(bench_inference.hf_config(config),
                                                          attn_implementation="sdpa").to(device)
        ours = BertForPreTraining(config).to(device)
        ours.load_state_dict(hf.state_dict())  # the same random weights on both sides
        # the training path (dropout is off, so outputs are deterministic)
        hf.train()
        ours.train()
        batch = padded_batch(plan.correct_batch, plan.correct_seq, config.vocab_size, device)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        real = batch["attention_mask"].bool()

        hidden, loss, grads, ok = {}, {}, {}, True
        for precision in ("fp32", "bf16"):
            with torch.no_grad(), autocast(device, precision):
                ref = hf.bert(**inputs).last_hidden_state[real].float()
                hf_loss = float(hf(**batch).loss)
            for unpad in (False, True):
                key = f"{precision}_{'unpadded' if unpad else 'padded'}"
                objective = PretrainingObjective(ours, unpad=unpad)
                with torch.no_grad(), autocast(device, precision):
                    got = ours.bert(**inputs, unpad=unpad).last_hidden_state[real].float()
                    sums = objective(**batch)
                our_loss = float(mean_loss(sums))
                hidden[key] = float((got - ref).abs().max())
                loss[key] = abs(our_loss - hf_loss)
                ok &= hidden[key] <= HIDDEN_TOL[precision] and loss[key] <= LOSS_TOL[precision]
            # one training step's gradients: HF's loss vs the recipe's objective (unpadded, as train_step runs it)
            grads[precision] = gradient_diff(hf, ours, batch, device, precision)
            ok &= grads[precision]["rel_diff"] <= GRAD_REL_TOL[precision]
        return {"status": "ok" if ok else "fail", "size": plan.correct_size, "batch": plan.correct_batch,
                "seq": plan.correct_seq, "padding_fraction": round(1 - float(real.float().mean()), 3),
                "hidden_max_abs_diff": hidden, "loss_abs_diff": loss, "grad": grads,
                "tolerances": {"hidden": HIDDEN_TOL, "loss": LOSS_TOL, "grad_rel": GRAD_REL_TOL}}
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def mean_loss(sums: dict[str, torch.Tensor]) -> torch.Tensor:
    """The objective's summed losses as HF's loss: mean MLM loss over masked tokens + mean NSP loss."""
    return sums["mlm_loss_sum"] / sums["mlm_count"] + sums["nsp_loss_sum"] / sums["nsp_count"]


def gradient_diff(hf, ours, batch: dict, device: torch.device, precision: str) -> dict[str, Any]:
    """Backward once on both sides; the difference of every parameter's gradient (matched by name)."""
    hf.zero_grad(set_to_none=True)
    ours.zero_grad(set_to_none=True)
    with autocast(device, precision):
        hf_loss = hf(**batch).loss
    hf_loss.backward()
    with autocast(device, precision):
        sums = PretrainingObjective(ours, unpad=True)(**batch)
    mean_loss(sums).backward()
    theirs = dict(hf.named_parameters())
    pairs = [(name, p.grad.float(), theirs[name].grad.float()) for name, p in ours.named_parameters()
             if p.grad is not None and name in theirs and theirs[name].grad is not None]
    ref_norm = math.sqrt(sum(float(g.pow(2).sum()) for _, _, g in pairs))
    diff_norm = math.sqrt(sum(float((a - b).pow(2).sum()) for _, a, b in pairs))
    # per parameter, only gradients that are not ~0 in exact arithmetic (the attention key bias's is: softmax
    # ignores a constant shift), whose relative difference would be pure rounding noise
    per_param = {name: float((a - b).norm() / b.norm()) for name, a, b in pairs if float(b.norm()) > 1e-6 * ref_norm}
    worst = max(per_param, key=per_param.get)
    hf.zero_grad(set_to_none=True)
    ours.zero_grad(set_to_none=True)
    return {"rel_diff": diff_norm / max(ref_norm, 1e-30), "max_abs_diff": max(float((a - b).abs().max()) for _, a, b in pairs),
            "worst_param_rel_diff": per_param[worst], "worst_param": worst, "params_compared": len(pairs)}


# ------------------------------------------------------------------------------------------ pretraining speed
def part_pretrain(plan: Plan, budget_s: float) -> dict[str, Any]:
    start = time.perf_counter()
    base = ["--device", plan.device, "--size", plan.pretrain_size, "--seq", str(plan.pretrain_seq),
            "--batch", str(plan.pretrain_batch), "--steps", str(plan.pretrain_steps), "--repeats", "2"]
    eager = bench_pretrain.measure(bench_pretrain.parse_args(base + ["--warmup", str(plan.pretrain_warmup)]))
    print(json.dumps({"pretrain_eager": eager}), flush=True)
    free_memory()
    result: dict[str, Any] = {"size": plan.pretrain_size, "seq": plan.pretrain_seq, "batch": plan.pretrain_batch,
                              "precision": eager["precision"], "fused_adamw": eager["fused_adamw"],
                              "flops_counting": FLOPS_COUNTING, "eager": eager}
    # BERT-large eager before any compile: it is bounded, compilation is not
    left = budget_s - plan.compile_reserve_s - (time.perf_counter() - start)
    if plan.large is None or left < plan.large_min_s:
        result["large"] = f"skipped: {left:.0f} s of the budget left"
    else:
        size, large_seq, large_batch = plan.large
        try:
            large = bench_pretrain.measure(bench_pretrain.parse_args(
                ["--device", plan.device, "--size", size, "--seq", str(large_seq), "--batch", str(large_batch),
                 "--steps", str(max(2, plan.pretrain_steps // 2)), "--warmup", str(plan.pretrain_warmup), "--repeats", "1"]))
            result["large"] = {k: large[k] for k in ("size", "seq", "batch", "bertkit_seqs_per_s", "hf_seqs_per_s",
                                                     "ratio", "bertkit_mfu", "hf_mfu")}
        except Exception as error:
            traceback.print_exc()
            result["large"] = f"error: {type(error).__name__}: {error}"
        free_memory()
    compiled = None
    try:  # compilation is the fragile part and nothing bounds its time: keep the eager figures if it breaks
        with deadline(plan.deadline_s - (time.perf_counter() - STARTED) - 5):
            compiled = bench_pretrain.measure(bench_pretrain.parse_args(
                base + ["--compile", "--compile-backend", plan.compile_backend, "--warmup", str(plan.compile_warmup)]))
        print(json.dumps({"pretrain_compiled": compiled}), flush=True)
    except Exception as error:  # reported in the row, traceback in the log
        traceback.print_exc()
        result["compile_error"] = f"{type(error).__name__}: {error}"
    free_memory()
    result["compiled"] = compiled

    seq = plan.pretrain_seq
    figures = {"hf_eager": eager["hf_seqs_per_s"], "bertkit_eager": eager["bertkit_seqs_per_s"]}
    mfu = {"hf_eager": eager["hf_mfu"], "bertkit_eager": eager["bertkit_mfu"]}
    if compiled:
        figures.update(hf_compiled=compiled["hf_seqs_per_s"], bertkit_compiled=compiled["bertkit_seqs_per_s"])
        mfu.update(hf_compiled=compiled["hf_mfu"], bertkit_compiled=compiled["bertkit_mfu"])
    result["seqs_per_s"] = figures
    result["tokens_per_s"] = {k: round(v * seq) for k, v in figures.items()}
    result["mfu"] = mfu
    best = max(v for k, v in figures.items() if k.startswith("bertkit"))
    result["bertkit_best_seqs_per_s"] = best
    result["ratio_vs_hf_eager"] = round(best / figures["hf_eager"], 3)
    if "hf_compiled" in figures:
        result["ratio_vs_hf_compiled"] = round(best / figures["hf_compiled"], 3)
    result["targets"] = {"vs_hf_eager": TARGETS["pretrain_vs_hf_eager"], "vs_hf_compiled": TARGETS["pretrain_vs_hf_compiled"]}
    result["targets_met"] = (result["ratio_vs_hf_eager"] >= TARGETS["pretrain_vs_hf_eager"]
                             and result.get("ratio_vs_hf_compiled", 0.0) >= TARGETS["pretrain_vs_hf_compiled"])
    result["anchors_h100_hf_5_17"] = {"hf_eager": ANCHORS_H100["pretrain_hf_eager_seqs_per_s"],
                                      "hf_compiled": ANCHORS_H100["pretrain_hf_compiled_seqs_per_s"]}

    return result


# ------------------------------------------------------------------------------------------ inference speed
def part_inference(plan: Plan, budget_s: float) -> dict[str, Any]:
    args = bench_inference.parse_args(["--mode", "synthetic", "--device", plan.device, "--size", plan.infer_size,
                                       "--batch", str(plan.infer_batch), "--steps", str(plan.infer_steps),
                                       "--repeats", str(plan.infer_repeats), "--min-len", "32", "--max-len", "128"])
    result = bench_inference.bench_synthetic(args)
    hf = result["hf_real_tokens_per_s"]
    result["ratio_padded"] = result.pop("padded_ratio")
    result["ratio_unpadded"] = result.pop("ratio")
    result["target"] = TARGETS["inference_vs_hf_sdpa"]
    result["target_met"] = max(result["ratio_unpadded"], result["ratio_padded"]) >= TARGETS["inference_vs_hf_sdpa"]
    result["anchor_h100_hf_sdpa_real_tokens_per_s"] = ANCHORS_H100["inference_hf_sdpa_real_tokens_per_s"]
    result["hf_vs_anchor"] = round(hf / ANCHORS_H100["inference_hf_sdpa_real_tokens_per_s"], 3)
    return result


# ------------------------------------------------------------------------------------------ a real small BERT
def part_small_bert(plan: Plan, budget_s: float, shards_folder: Path, out: Path) -> dict[str, Any]:
    device = torch.device(plan.device)
    precision = "bf16" if device.type == "cuda" else "fp32"
    train_shards = TokenShards(shards_folder, "train")
    tokenizer = BertTokenizer.from_pretrained(str(train_shards.tokenizer_folder))
    vocab_size = int(train_shards.header["vocab_size"])
    # the recipe's own settings object, so that its helpers (masker, held-out loader) are used as the recipe uses them
    recipe = PretrainConfig(data=str(shards_folder), mode="full", model_size=plan.small_size,
                            max_seq_length=plan.small_seq, batch_size=plan.small_batch, lr=plan.small_lr,
                            eval_examples=plan.eval_examples, num_workers=plan.num_workers, seed=0)
    ctx = dist_utils.DistContext(device=device)

    torch.manual_seed(recipe.seed)
    # MLM only (RoBERTa's full sentences): BertForMaskedLM has no pooler / NSP head to carry in the checkpoint
    config = BertConfig.from_size(plan.small_size, vocab_size=vocab_size, max_position_embeddings=512)
    model = BertForMaskedLM(config).to(device).train()
    objective = PretrainingObjective(model, unpad=True)
    optimizer = build_optimizer(model, "adamw", lr=plan.small_lr, weight_decay=recipe.weight_decay, eps=recipe.adam_eps)

    collator = PretrainingCollator(build_masker(tokenizer, recipe), pad_token_id=tokenizer.pad_token_id,
                                   pad_to_multiple_of=8 if device.type == "cuda" else None)
    dataset = PretrainingDataset(train_shards, recipe.max_seq_length, recipe.mode, seed=recipe.seed)
    sampler = PretrainingSampler(dataset, seed=recipe.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=recipe.batch_size, sampler=sampler, collate_fn=collator,
                                         drop_last=True, num_workers=recipe.num_workers,
                                         pin_memory=device.type == "cuda", generator=torch.Generator(),
                                         # a stuck worker becomes this part's error, not the whole run's hang
                                         timeout=60 if recipe.num_workers else 0)
    eval_loader = _eval_loader(recipe, ctx, collator)
    if eval_loader is None:
        raise ValueError(f"{shards_folder} has no held-out documents; prepare it again with --prepare-shards")
    stream = micro_batch_stream(loader, dataset, sampler, 0, 0, recipe.batch_size)

    with tempfile.TemporaryDirectory() as tmp:
        curve_path = Path(tmp) / "curve.jsonl"
        logger = MetricsLogger(curve_path)
        step, epoch, tokens_seen = 0, 0, 0
        window: dict[str, torch.Tensor] = {}
        window_steps, window_start = 0, time.perf_counter()
        start = time.perf_counter()
        next_eval, next_log = 0.0, plan.log_every_s

        def run_eval(elapsed: float) -> dict[str, float]:
            metrics = evaluate(objective, eval_loader, device, precision)
            logger.log(step=step, split="eval", seconds=round(elapsed, 1), tokens_seen=tokens_seen, **metrics)
            print(f"small_bert {elapsed:6.1f} s step {step}: held-out MLM accuracy {metrics['mlm_acc']:.4f}, "
                  f"loss {metrics['mlm_loss']:.3f}", flush=True)
            return metrics

        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= budget_s:
                break
            if elapsed >= next_eval:
                run_eval(elapsed)
                next_eval += plan.eval_every_s
            # time-based schedule: linear warmup over the first part of the budget, then linear decay to 0 at its end
            warm = plan.small_warmup_fraction * budget_s
            factor = elapsed / warm if elapsed < warm else max(0.0, (budget_s - elapsed) / (budget_s - warm))
            for group in optimizer.param_groups:
                group["lr"] = plan.small_lr * factor
            batch, epoch, _ = next(stream)
            stats = train_step(objective, [batch], optimizer, device, precision, None, recipe.max_grad_norm)
            step += 1
            window_steps += 1
            tokens_seen += int(batch["attention_mask"].sum())
            # summed where each figure lives (GPU or CPU) and read back only when logging: no copy, no wait per step
            for key, value in stats.items():
                window[key] = window.get(key, 0) + value.detach().double()
            if elapsed >= next_log:
                sums = {k: float(v) for k, v in window.items()}
                seconds = time.perf_counter() - window_start
                logger.log(step=step, split="train", seconds=round(elapsed, 1), epoch=epoch, lr=plan.small_lr * factor,
                           mlm_loss=sums["mlm_loss_sum"] / max(sums["mlm_count"], 1),
                           mlm_acc=sums["mlm_correct"] / max(sums["mlm_count"], 1),
                           tokens_per_s=sums["tokens"] / seconds, seqs_per_s=window_steps * recipe.batch_size / seconds)
                window, window_steps, window_start = {}, 0, time.perf_counter()
                next_log += plan.log_every_s
        train_seconds = time.perf_counter() - start
        if step == 0:
            raise RuntimeError("no training step ran within the budget")
        final = run_eval(train_seconds)  # the weights that are saved
        logger.close()
        curve = read_metrics(curve_path)
        png = out / "small_bert_curve.png"
        try:
            plot_metrics(curve_path, png, title=f"BERT-{plan.small_size}, {budget_s:.0f} s on {device_name(device)}")
        except Exception as error:  # no matplotlib: the curve stays in results.jsonl
            print(f"no curve PNG: {error}", file=sys.stderr)
            png = None

    checkpoint = save_small_bert(model, out / "small_bert", train_shards.tokenizer_folder / "vocab.txt", plan.shard_bytes)
    reloaded = check_checkpoint(out / "small_bert", eval_loader, device, precision)
    evals = [r for r in curve if r.get("split") == "eval"]
    return {
        "size": plan.small_size, "layers": config.num_hidden_layers, "hidden": config.hidden_size,
        "heads": config.num_attention_heads, "intermediate": config.intermediate_size, "vocab_size": vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()), "seq": recipe.max_seq_length,
        "batch": recipe.batch_size, "precision": precision, "objective": "MLM (full sentences, no NSP)",
        "peak_lr": plan.small_lr, "budget_s": round(budget_s, 1), "train_seconds": round(train_seconds, 1),
        "steps": step, "epochs_started": epoch + 1, "tokens_seen": tokens_seen,
        "train_tokens_in_corpus": train_shards.num_tokens,
        "seqs_per_s": round(step * recipe.batch_size / train_seconds, 1),
        "heldout_examples": len(eval_loader.dataset),
        "heldout_mlm_acc_first": round(evals[0]["mlm_acc"], 4), "heldout_mlm_acc_final": round(final["mlm_acc"], 4),
        "heldout_mlm_loss_final": round(final["mlm_loss"], 4),
        "checkpoint": checkpoint, "reloaded": reloaded, "png": png.name if png else None,
        "curve": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()} for row in curve],
        "shards_mib": round(folder_bytes(Path(shards_folder)) / 2**20, 1),
    }


def save_small_bert(model: torch.nn.Module, folder: Path, vocab: Path, shard_bytes: int = SHARD_BYTES) -> dict[str, Any]:
    """bf16 weights in HF layout (config.json + safetensors, sharded under the per-file limit) + vocab.txt only
    (the default uncased BertTokenizer settings fit it; fewer files for the device's 8-file limit)."""
    model = model.to(torch.bfloat16)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())  # tied ones counted twice: an upper bound
    model.save_pretrained(folder, max_shard_size=shard_bytes if weights > shard_bytes else None)
    shutil.copy(vocab, folder / "vocab.txt")
    return {"folder": folder.name, "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir())},
            "dtype": "bfloat16"}


def check_checkpoint(folder: Path, eval_loader, device: torch.device, precision: str) -> dict[str, Any]:
    """Load the saved folder back with bertkit (held-out accuracy again) and with transformers (same logits)."""
    import transformers

    # both in fp32 (TF32 off) for the comparison: the difference then shows the implementations, not rounding
    ours = BertForMaskedLM.from_pretrained(folder, torch_dtype=torch.float32).to(device).eval()
    # .eval() first: evaluate() hands the objective back in the mode it found it in (a new module: training)
    metrics = evaluate(PretrainingObjective(ours, unpad=True).eval(), eval_loader, device, precision)
    theirs, info = transformers.BertForMaskedLM.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    theirs = theirs.to(device).eval()
    batch = next(iter(eval_loader))
    inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")}
    real = inputs["attention_mask"].bool()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            diff = float((ours(**inputs).logits[real] - theirs(**inputs).logits[real]).abs().max())
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return {"bertkit_heldout_mlm_acc": round(metrics["mlm_acc"], 4), "hf_loads": True,
            "hf_missing_keys": list(info["missing_keys"]), "hf_vs_bertkit_logits_max_abs_diff": diff}


# ------------------------------------------------------------------------------------------ the run
def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def out_limits(out: Path) -> dict[str, Any]:
    """Whether the output folder fits what the device returns (files, sizes, depth)."""
    files = [p for p in out.rglob("*") if p.is_file()]
    sizes = [p.stat().st_size for p in files]
    depth = max((len(p.relative_to(out).parts) - 1 for p in files), default=0)
    return {"files": len(files), "max_file_mib": round(max(sizes, default=0) / 2**20, 2),
            "total_mib": round(sum(sizes) / 2**20, 2), "max_depth": depth,
            "within_limits": len(files) <= MAX_OUT_FILES and max(sizes, default=0) <= MAX_OUT_FILE_BYTES
            and sum(sizes) <= MAX_OUT_BYTES and depth <= 2}


def run_part(name: str, fn: Callable[[float], dict[str, Any]], budget_s: float, results: Path) -> dict[str, Any]:
    """Run one part; any failure is printed with its traceback (to the log) and reported, and the run goes on."""
    print(f"=== {name} (budget {budget_s:.0f} s)", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        row = fn(budget_s)
        row = {"part": name, "status": row.pop("status", "ok"), **row}
    except (Exception, SystemExit) as error:  # SystemExit: the benchmarks exit on a disagreement
        traceback.print_exc()
        row = {"part": name, "status": "error", "error": f"{type(error).__name__}: {error}"}
    row["seconds"] = round(time.perf_counter() - start, 1)
    row["budget_s"] = round(budget_s, 1)
    line = json.dumps(json_safe(row), default=str)
    print(line, flush=True)
    with results.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    free_memory()
    return row


# the order of the run: the one part with an unbounded step (torch.compile) goes last, so that if it ever ran
# away the others' lines are already in results.jsonl when the device's limit stops the run
PARTS = ("correctness", "inference", "small_bert", "pretrain_throughput")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="output folder (on the device: $OUT)")
    parser.add_argument("--shards", help="prepared shards (--prepare-shards); the smoke run makes its own without it")
    parser.add_argument("--prepare-shards", metavar="DIR", help="only prepare the small BERT's shards into DIR (CPU)")
    parser.add_argument("--max-documents", type=int, default=None, help="with --prepare-shards: the first N documents only")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, every part (about a minute)")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every time budget")
    for name in ("correctness", "pretrain", "inference", "small-bert", "deadline"):
        parser.add_argument(f"--{name}-s", type=float, default=None, help=f"seconds for {name} (default: the plan's)")
    args = parser.parse_args(argv)
    if not args.prepare_shards and not args.out:
        parser.error("--out is required (or --prepare-shards DIR)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare_shards:
        header = prepare_shards(args.prepare_shards, max_documents=args.max_documents)
        print(json.dumps({"shards": args.prepare_shards, "tokens": header["tokens"], "documents": header["documents"],
                          "vocab_size": header["vocab_size"],
                          "mib": round(folder_bytes(Path(args.prepare_shards)) / 2**20, 1)}))
        return 0

    plan = Plan.smoke_plan() if args.smoke else Plan(device="cuda")
    if args.device:
        plan.device = args.device
    plan.scale(args.budget_scale)
    for name in ("correctness", "pretrain", "inference", "small_bert", "deadline"):
        value = getattr(args, f"{name}_s")
        if value is not None:
            setattr(plan, f"{name}_s", value)
    if plan.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no GPU visible: run on the device, or pass --smoke (CPU, tiny sizes)")
    if plan.device.startswith("cuda"):
        plan.num_workers = min(plan.num_workers, max(0, (os.cpu_count() or 2) - 2))

    start = STARTED
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    results.unlink(missing_ok=True)
    device = torch.device(plan.device)
    print(json.dumps({"suite": "gpu_suite", "smoke": plan.smoke, "device": device_name(device),
                      "torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
                      "parts": args.parts}), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        shards = Path(args.shards) if args.shards else None
        if shards is None and "small_bert" in args.parts:
            if not plan.smoke:
                print("no --shards: the small BERT part will fail (prepare them with --prepare-shards)", file=sys.stderr)
            else:  # a few hundred documents and a small vocabulary: seconds on CPU
                shards = Path(tmp) / "shards"
                prepare_shards(shards, vocab_size=plan.vocab_size, tokenizer_documents=150, max_documents=300,
                               valid_fraction=0.1, progress=False)

        def small_bert(budget_s: float) -> dict[str, Any]:
            if shards is None:
                raise FileNotFoundError("no --shards given; prepare them with --prepare-shards DIR")
            return part_small_bert(plan, budget_s, shards, out)

        calls: dict[str, tuple[Callable[[float], dict[str, Any]], float]] = {
            "correctness": (lambda b: part_correctness(plan, b), plan.correctness_s),
            "inference": (lambda b: part_inference(plan, b), plan.inference_s),
            "small_bert": (small_bert, plan.small_bert_s),
            "pretrain_throughput": (lambda b: part_pretrain(plan, b), plan.pretrain_s),
        }
        rows = {}
        for i, name in enumerate(args.parts):
            fn, budget = calls[name]
            # never past the deadline: a part gets at most what is left after the budgets of the parts still to come
            # (the small BERT also keeps time to evaluate, save and reload its checkpoint)
            later = sum(calls[n][1] for n in args.parts[i + 1:])
            reserve = plan.save_reserve_s if name == "small_bert" else 0.0
            budget = max(1.0, min(budget, plan.deadline_s - (time.perf_counter() - start) - later - reserve))
            rows[name] = run_part(name, fn, budget, results)

    summary = {"part": "summary", "statuses": {name: row["status"] for name, row in rows.items()},
               "seconds": round(time.perf_counter() - start, 1), "deadline_s": plan.deadline_s}
    pretrain, inference = rows.get("pretrain_throughput", {}), rows.get("inference", {})
    summary["pretrain_ratio_vs_hf_eager"] = pretrain.get("ratio_vs_hf_eager")
    summary["pretrain_ratio_vs_hf_compiled"] = pretrain.get("ratio_vs_hf_compiled")
    summary["pretrain_targets_met"] = pretrain.get("targets_met")
    summary["inference_ratio_unpadded"] = inference.get("ratio_unpadded")
    summary["inference_ratio_padded"] = inference.get("ratio_padded")
    summary["inference_target_met"] = inference.get("target_met")
    summary["small_bert_heldout_mlm_acc"] = rows.get("small_bert", {}).get("heldout_mlm_acc_final")
    line = json.dumps(summary)
    with results.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    summary["out"] = out_limits(out)  # after the last write: results.jsonl counted at its final size
    print(json.dumps(summary), flush=True)
    return 0 if all(row["status"] == "ok" for row in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
