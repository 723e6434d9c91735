"""Pretraining step speed: HuggingFace BertForPreTraining vs bertkit, same config, same process, same device.

    python benchmarks/bench_pretrain.py                       # GPU: BERT-base, seq 128, batch 256, bf16, fused AdamW
    python benchmarks/bench_pretrain.py --compile             # + torch.compile on both sides
    python benchmarks/bench_pretrain.py --size large --seq 512 --batch 32
    python benchmarks/bench_pretrain.py --device cpu          # CPU: tiny model, small batch, fp32 (shows it runs)

Both sides train on the same random tokens (15% of positions masked with [MASK] and labelled, random NSP
labels, no padding) with AdamW (fused on GPU) and the same autocast. HF runs `model(..., labels=...,
next_sentence_label=...)` (full [batch, seq, vocab] logits); bertkit runs its recipe's `train_step`
(encoder, then the MLM head on masked rows only). Prints ONE JSON line: sequences/s of both, the ratio, and
the model-FLOPs utilisation (MFU) of both against the GPU's dense bf16 peak (the FLOPs a step needs: the
encoder, attention, and the MLM head on the masked positions; the same count for both sides).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bertkit.model import BertConfig, BertForPreTraining  # noqa: E402
from bertkit.model.inference import autocast  # noqa: E402
from bertkit.train.optim import build_optimizer  # noqa: E402
from bertkit.train.pretrain_recipe import PretrainingObjective, train_step  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}
MASK_ID = 103


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            if key == "H100" and "PCIe" in name:
                return 756e12
            return tflops * 1e12
    return None


def step_flops(config: BertConfig, batch: int, seq: int, masked: int) -> float:
    """Training FLOPs (3x forward) of the work a pretraining step needs."""
    h, layers, inter, vocab = config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size
    tokens = batch * seq
    per_token_layer = 2 * (4 * h * h + 2 * h * inter) + 2 * 2 * seq * h  # projections + FFN, QK^T and AV
    forward = tokens * layers * per_token_layer
    forward += masked * 2 * (h * h + h * vocab)  # MLM transform + decoder on masked positions
    forward += batch * 2 * (h * h + 2 * h)  # pooler + NSP
    return 3.0 * forward


def random_batch(batch: int, seq: int, vocab: int, device: torch.device, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.randint(1000, vocab, (batch, seq), generator=g)
    chosen = torch.rand(batch, seq, generator=g) < 0.15
    chosen[:, 0] = False
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    ids = torch.where(chosen, torch.full_like(ids, MASK_ID), ids)
    types = torch.zeros_like(ids)
    types[:, seq // 2:] = 1
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": types, "labels": labels,
           "next_sentence_label": torch.randint(0, 2, (batch,), generator=g)}
    return {k: v.to(device) for k, v in out.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, device: torch.device, warmup: int, steps: int) -> float:
    """Seconds per step (after warmup steps, which include torch.compile's)."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - start) / max(steps, 1)


def hf_step(config: BertConfig, batch: dict, device, precision: str, compile_model: bool, backend: str = "inductor"):
    """A closure running one HF training step."""
    import transformers

    hf_config = transformers.BertConfig(**{k: getattr(config, k) for k in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "max_position_embeddings", "hidden_dropout_prob", "attention_probs_dropout_prob")})
    torch.manual_seed(0)
    model = transformers.BertForPreTraining._from_config(hf_config, attn_implementation="sdpa").to(device).train()
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-4, eps=1e-6, fused=fused or None)
    forward = torch.compile(model, backend=backend) if compile_model else model

    def step():
        with autocast(device, precision):
            loss = forward(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def bertkit_step(config: BertConfig, batch: dict, device, precision: str, compile_model: bool,
                 backend: str = "inductor"):
    """A closure running one bertkit training step (the recipe's train_step)."""
    torch.manual_seed(0)
    model = BertForPreTraining(config).to(device).train()
    optimizer = build_optimizer(model, "adamw", lr=1e-4, weight_decay=0.01)  # fused on CUDA
    if compile_model:
        model.bert.compile(backend=backend)
        model.cls.predictions.compile(dynamic=True, backend=backend)  # the number of masked rows varies per batch
    objective = PretrainingObjective(model)
    micro = [batch]

    def step():
        train_step(objective, micro, optimizer, device, precision, max_grad_norm=1.0)

    return step


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="named size (default: base on GPU, tiny on CPU)")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=None, help="default: 256 on GPU, 8 on CPU")
    parser.add_argument("--precision", default=None, choices=["fp32", "bf16"], help="default: bf16 on GPU, fp32 on CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--compile-backend", default="inductor",
                        help="torch.compile backend (inductor; 'eager' only traces, for a quick CPU check of the path)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds, alternating the two sides; the best counts")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    """Build both sides, time them in alternation, return the result row (what main prints)."""
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    size = args.size or ("base" if gpu else "tiny")
    batch_size = args.batch or (256 if gpu else 8)
    precision = args.precision or ("bf16" if gpu else "fp32")
    warmup = args.warmup if args.warmup is not None else (10 if args.compile else 5) if gpu else 2
    steps = args.steps or (30 if gpu else 5)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    config = BertConfig.from_size(size, max_position_embeddings=max(512, args.seq))
    batch = random_batch(batch_size, args.seq, config.vocab_size, device)
    masked = int((batch["labels"] != -100).sum())
    flops = step_flops(config, batch_size, args.seq, masked)
    peak = peak_flops(device)

    # both sides built once, then timed in alternation (ours, HF, ours, HF...) so that drift or noise on a
    # shared machine does not favour either; each side's best round counts
    sides = {"bertkit": bertkit_step(config, batch, device, precision, args.compile, args.compile_backend),
             "hf": hf_step(config, batch, device, precision, args.compile, args.compile_backend)}
    for name, step in sides.items():
        time_steps(step, device, warmup, 0)  # warmup (and compilation) outside the timed rounds
    best = {name: float("inf") for name in sides}
    for _ in range(args.repeats):
        for name, step in sides.items():
            best[name] = min(best[name], time_steps(step, device, 0, steps))
    ours, theirs = best["bertkit"], best["hf"]
    return {
        "benchmark": "pretrain_step",
        "device": torch.cuda.get_device_name(device) if gpu else f"cpu ({torch.get_num_threads()} threads)",
        "size": size, "seq": args.seq, "batch": batch_size, "precision": precision, "compile": args.compile,
        "fused_adamw": gpu, "steps": steps, "repeats": args.repeats,
        "bertkit_seqs_per_s": round(batch_size / ours, 2),
        "hf_seqs_per_s": round(batch_size / theirs, 2),
        "ratio": round(theirs / ours, 3),
        "bertkit_mfu": round(flops / ours / peak, 4) if peak else None,
        "hf_mfu": round(flops / theirs / peak, 4) if peak else None,
        "bertkit_tflops": round(flops / ours / 1e12, 3),
        "hf_tflops": round(flops / theirs / 1e12, 3),
        "torch": torch.__version__,
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(measure(args)))

if __name__ == "__main__":
    main()
