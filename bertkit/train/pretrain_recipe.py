"""`bertkit pretrain`: BERT pretraining (MLM + NSP, or MLM only on full sentences) from prepared shards.

    bertkit prepare-corpus wiki.tar.xz --tokenizer vocab-folder --out data/wiki
    bertkit pretrain --data data/wiki --out runs/tiny --model-size tiny --max-steps 2000
    torchrun --nproc_per_node 8 -m bertkit pretrain --config pretrain.json      # same recipe, DDP

    from bertkit.train.pretrain_recipe import PretrainConfig, pretrain
    checkpoint = pretrain(PretrainConfig(data="data/wiki", out="runs/tiny", max_steps=200))

The run folder holds `step-*/` checkpoints (HF layout: `BertForPreTraining.from_pretrained(folder)` works in
bertkit and transformers), `latest`, `config.json` of the run and `metrics.jsonl`. Launched again on the
same folder, a run resumes from `latest` exactly where it stopped (same losses, step for step).

The step: `model.bert(...)` runs the encoder, then the MLM head only on the masked positions (gathered
[n_masked, hidden] rows; ~15% of the tokens, so the vocabulary projection costs ~7x less than HF's full
[batch, seq, vocab] logits) and the NSP head on the pooled [CLS]. Losses are sums normalised by the masked
tokens / sequences of the whole optimizer step (all micro-batches, all ranks), so gradient accumulation and
DDP give the same update as one big batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bertkit.data.corpus import TokenShards
from bertkit.data.masking import Masker, PretrainingCollator
from bertkit.data.pretraining import MODES, PretrainingDataset, PretrainingSampler
from bertkit.errors import MissingFileError, UserError
from bertkit.files import read_json_object, require_output_folder
from bertkit.model.inference import PRECISIONS, autocast, resolve_precision
from bertkit.tokenizer import BertTokenizer
from bertkit.train import distributed as dist_utils
from bertkit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from bertkit.train.console import pretrain_lines
from bertkit.train.metrics_log import MetricsLogger
from bertkit.train.optim import OPTIMIZERS, build_optimizer, linear_warmup_decay, optimizer_step

# the sums and counts PretrainingObjective returns (NSP ones only in pairs mode)
OBJECTIVE_SUMS = ("mlm_loss_sum", "mlm_correct", "mlm_count", "nsp_loss_sum", "nsp_correct", "nsp_count")


@dataclass
class PretrainConfig:
    """Every knob of a pretraining run (JSON config keys and `--flags` have these names, `_` or `-`)."""

    data: str = ""  # folder written by `bertkit prepare-corpus`
    out: str = "runs/pretrain"
    # model: a named size (tiny, mini, small, medium, base, large) and/or explicit numbers
    model_size: str = "tiny"
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    intermediate_size: int | None = None
    dropout: float | None = None  # hidden and attention dropout (BERT: 0.1)
    init_from: str | None = None  # start from an HF-layout folder instead of random weights
    # examples and masking
    max_seq_length: int = 128
    mode: str = "pairs"  # "pairs": BERT MLM+NSP; "full": RoBERTa full sentences, MLM only
    short_seq_prob: float = 0.1
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    # optimisation
    batch_size: int = 32  # sequences per device per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step; global batch = batch_size * grad_accum * ranks
    max_steps: int = 1000
    optimizer: str = "adamw"
    lr: float = 1e-4
    warmup_steps: float = 0.01  # steps, or a fraction of max_steps when below 1
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-6
    max_grad_norm: float = 1.0  # 0 disables clipping
    # speed
    precision: str = "auto"  # auto: bf16 on a GPU that has it (else fp16), fp32 on CPU
    gradient_checkpointing: bool = False
    compile: bool = False  # torch.compile the encoder (GPU)
    unpad: bool = True  # token-wise layers skip padding
    device: str = "auto"
    threads: int | None = None  # CPU threads for torch (1 avoids OpenMP spin-waits on an oversubscribed machine)
    num_workers: int = 0
    # bookkeeping
    seed: int = 0
    log_every: int = 10
    eval_every: int = 200
    eval_examples: int = 512
    save_every: int = 500
    keep_last: int = 2
    resume: bool = True
    progress: bool = True

    def validate(self) -> None:
        if not self.data:
            raise UserError("no training data: pass --data with a folder made by `bertkit prepare-corpus`")
        require_output_folder(self.out, "--output")
        if self.mode not in MODES:
            raise UserError(f"mode must be 'pairs' (MLM+NSP) or 'full' (MLM only), got {self.mode!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("batch_size", "grad_accum", "max_steps", "max_seq_length", "log_every", "eval_every", "save_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PretrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k.replace("-", "_"): v for k, v in values.items()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown pretraining option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "PretrainConfig":
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"config file {path} does not exist")
        return cls.from_dict(read_json_object(path, "fix the pretraining config file"))


# ------------------------------------------------------------------------------------------ the step
class PretrainingObjective(nn.Module):
    """MLM (+ NSP) loss sums of a BertForPreTraining, computing the vocabulary logits on masked rows only.

    A module (not a function) so that DDP wraps it: gradients are synchronised through its forward.
    Returns sums and counts; the caller divides by the counts of the whole optimizer step.
    """

    def __init__(self, model: nn.Module, unpad: bool = True) -> None:
        super().__init__()
        self.model = model
        self.unpad = unpad

    def forward(self, input_ids, attention_mask, token_type_ids, labels, next_sentence_label=None) -> dict[str, torch.Tensor]:
        out = self.model.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                              return_dict=True, unpad=self.unpad)
        hidden = out.last_hidden_state  # [B, S, H] (zeros on padding when unpadded)
        flat_labels = labels.reshape(-1)  # [B*S], -100 where nothing is predicted
        positions = (flat_labels != -100).nonzero().squeeze(1)  # [M] flat positions of the masked tokens
        masked_hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)  # [M, H]
        logits = self.model.cls.predictions(masked_hidden).float()  # [M, V]: the vocabulary only where it counts
        targets = flat_labels.index_select(0, positions)  # [M]
        result = {
            "mlm_loss_sum": F.cross_entropy(logits, targets, reduction="sum"),
            "mlm_correct": (logits.argmax(-1) == targets).sum(),
            "mlm_count": torch.tensor(positions.numel(), device=logits.device),
        }
        if next_sentence_label is not None:
            nsp_logits = self.model.cls.seq_relationship(out.pooler_output).float()
            result["nsp_loss_sum"] = F.cross_entropy(nsp_logits, next_sentence_label, reduction="sum")
            result["nsp_correct"] = (nsp_logits.argmax(-1) == next_sentence_label).sum()
            result["nsp_count"] = torch.tensor(next_sentence_label.numel(), device=nsp_logits.device)
        return result


def train_step(
    objective: nn.Module,
    micro_batches: list[dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    max_grad_norm: float = 1.0,
    world_size: int = 1,
) -> dict[str, float | torch.Tensor]:
    """One optimizer step over `micro_batches` (gradient accumulation): forward/backward each, clip, step.

    The MLM loss of the step is (sum of masked-token losses) / (masked tokens in the global batch), the
    NSP loss likewise per sequence; DDP averages gradients over ranks, hence the `world_size` factor.
    Returns loss sums and counts of this rank (tensors) and the gradient norm.
    """
    has_nsp = "next_sentence_label" in micro_batches[0]
    # counted on the batches as given (host memory in the recipe): alone, no device copy and no wait for the GPU
    global_masked = float(sum(int((b["labels"] != -100).sum()) for b in micro_batches))
    global_sequences = float(sum(len(b["input_ids"]) for b in micro_batches))
    if dist_utils.initialized():  # every rank divides by the global counts
        counts = dist_utils.all_reduce_sum(torch.tensor([global_masked, global_sequences], dtype=torch.float64,
                                                        device=device))
        global_masked, global_sequences = counts.tolist()
    totals: dict[str, torch.Tensor] = {}
    for i, batch in enumerate(micro_batches):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        last = i == len(micro_batches) - 1
        # skip the gradient all-reduce on all but the last micro-batch
        sync = contextlib.nullcontext() if last or not hasattr(objective, "no_sync") else objective.no_sync()
        with sync:
            with autocast(device, precision):
                out = objective(**batch)
            loss = out["mlm_loss_sum"] / max(global_masked, 1.0)
            if has_nsp:
                loss = loss + out["nsp_loss_sum"] / max(global_sequences, 1.0)
            loss = loss * world_size
            (scaler.scale(loss) if scaler is not None else loss).backward()
        for key, value in out.items():
            totals[key] = totals.get(key, 0) + value.detach()
    grad_norm = optimizer_step(optimizer, max_grad_norm, scaler, always_norm=True)
    totals["grad_norm"] = grad_norm.detach()
    totals["tokens"] = torch.tensor(float(sum(int(b["attention_mask"].sum()) for b in micro_batches)))
    return totals


# ------------------------------------------------------------------------------------------ pieces of the recipe
def build_model(config: PretrainConfig, vocab_size: int):
    from bertkit.model import BertConfig, BertForPreTraining

    if config.init_from:
        model = BertForPreTraining.from_pretrained(config.init_from)
        if model.config.vocab_size != vocab_size:
            raise UserError(f"--init-from {config.init_from} has vocab_size {model.config.vocab_size}, the corpus "
                             f"tokenizer has {vocab_size}; prepare the corpus with that model's tokenizer")
        return model
    overrides = {k: getattr(config, k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
                 if getattr(config, k) is not None}
    if config.hidden_size is not None and config.intermediate_size is None:
        overrides["intermediate_size"] = 4 * config.hidden_size
    if config.dropout is not None:
        overrides["hidden_dropout_prob"] = overrides["attention_probs_dropout_prob"] = config.dropout
    bert_config = BertConfig.from_size(config.model_size, vocab_size=vocab_size,
                                       max_position_embeddings=max(512, config.max_seq_length), **overrides)
    return BertForPreTraining(bert_config)


def build_masker(tokenizer, config: PretrainConfig):
    return Masker.from_tokenizer(tokenizer, whole_word=config.whole_word_mask, mlm_probability=config.mlm_probability)


def micro_batch_stream(loader, dataset, sampler, epoch: int, consumed: int, batch_size: int) -> Iterator[tuple[dict, int, int]]:
    """Micro-batches forever, epoch after epoch; yields (batch, epoch, examples consumed in that epoch after it)."""
    while True:
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch, start=consumed)
        for batch in loader:
            consumed += batch_size
            yield batch, epoch, consumed
        epoch, consumed = epoch + 1, 0


def _objective_metrics(s: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """MLM loss / accuracy, and NSP loss / accuracy ({} without NSP), from summed OBJECTIVE_SUMS."""
    mlm = {"mlm_loss": s["mlm_loss_sum"] / max(s["mlm_count"], 1), "mlm_acc": s["mlm_correct"] / max(s["mlm_count"], 1)}
    nsp = {"nsp_loss": s["nsp_loss_sum"] / s["nsp_count"], "nsp_acc": s["nsp_correct"] / s["nsp_count"]} if s["nsp_count"] else {}
    return mlm, nsp


@torch.no_grad()
def evaluate(objective: nn.Module, loader, device: torch.device, precision: str) -> dict[str, float]:
    """Held-out MLM loss / accuracy (and NSP loss / accuracy) summed over every rank's part."""
    was_training = objective.training
    objective.eval()
    keys = OBJECTIVE_SUMS
    sums = torch.zeros(len(keys), dtype=torch.float64, device=device)
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, precision):
            out = objective(**batch)
        sums += torch.stack([out[k].double() if k in out else torch.zeros((), dtype=torch.float64, device=device) for k in keys])
    dist_utils.all_reduce_sum(sums)
    objective.train(was_training)
    mlm, nsp = _objective_metrics(dict(zip(keys, sums.tolist())))
    return {**mlm, "mlm_perplexity": math.exp(min(mlm["mlm_loss"], 50.0)), **nsp}


# ------------------------------------------------------------------------------------------ the recipe
def pretrain(config: PretrainConfig | dict[str, Any]) -> Path:
    """Run (or resume) a pretraining run; returns the folder of its final checkpoint."""
    if isinstance(config, dict):
        config = PretrainConfig.from_dict(config)
    config.validate()
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    ctx = dist_utils.setup(config.device)
    try:
        return _pretrain(config, ctx)
    finally:
        dist_utils.cleanup()
        torch.set_num_threads(threads)  # the caller's setting again (the API may run inside a bigger program)


def _pretrain(config: PretrainConfig, ctx: dist_utils.DistContext) -> Path:
    from tqdm.auto import tqdm

    out = Path(config.out)
    device = ctx.device
    precision = resolve_precision(config.precision, device)
    train_shards = TokenShards(config.data, "train")
    tokenizer = BertTokenizer.from_pretrained(str(train_shards.tokenizer_folder))
    vocab_size = int(train_shards.header["vocab_size"])

    # identical initial weights on every rank (DDP also broadcasts rank 0's at wrap time)
    torch.manual_seed(config.seed)
    model = build_model(config, vocab_size)
    if config.mode == "full":
        # RoBERTa-style: no NSP, so the pooler and NSP classifier get no gradient; freeze them (DDP requires
        # every trainable parameter to receive one) - they are saved as initialised.
        for module in (model.bert.pooler, model.cls.seq_relationship):
            module.requires_grad_(False)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(device)

    optimizer = build_optimizer(model, config.optimizer, lr=config.lr, weight_decay=config.weight_decay,
                                betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps)
    # a warmup below 1 is a fraction of max_steps (linear_warmup_decay converts it)
    scheduler = linear_warmup_decay(optimizer, config.warmup_steps, config.max_steps, config.min_lr_ratio)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    # resume
    step, epoch, consumed = 0, 0, 0
    checkpoint = latest_checkpoint(out) if config.resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, fallback=True)  # a damaged one: the one before
        checkpoint, step = state["path"], state["step"]
        epoch = int(state["extra"].get("epoch", 0))
        consumed = int(state["extra"].get("consumed", 0))
        if scaler is not None and "scaler" in state["extra"]:
            scaler.load_state_dict(state["extra"]["scaler"])
        dist_utils.print0(f"resuming from {checkpoint} (step {step}, epoch {epoch})", file=sys.stderr)
    elif ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n", encoding="utf-8")

    if config.compile:
        model.bert.compile(dynamic=None)  # in place: state-dict names stay HF's
    objective = dist_utils.wrap_ddp(PretrainingObjective(model, unpad=config.unpad), ctx)
    objective.train()

    # data: deterministic from (seed, epoch, position), so resume and DDP reproduce a single run
    masker = build_masker(tokenizer, config)
    collator = PretrainingCollator(masker, pad_token_id=tokenizer.pad_token_id,
                                   pad_to_multiple_of=8 if device.type == "cuda" else None)
    dataset = PretrainingDataset(train_shards, config.max_seq_length, config.mode, config.short_seq_prob, seed=config.seed)
    sampler = PretrainingSampler(dataset, ctx.rank, ctx.world_size, seed=config.seed)
    # own generator: the DataLoader must not draw from the global torch RNG (dropout's), or a resumed run diverges
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, collate_fn=collator,
                                         drop_last=True, num_workers=config.num_workers,
                                         pin_memory=device.type == "cuda", generator=torch.Generator())
    if len(sampler) // config.batch_size < 1 and consumed == 0:
        raise UserError(f"the corpus gives {len(dataset)} examples, fewer than one batch of {config.batch_size} per rank; "
                         "lower --batch-size or prepare more text")
    eval_loader = _eval_loader(config, ctx, collator)

    logger = MetricsLogger(out / "metrics.jsonl", resume_step=step if checkpoint is not None else None, enabled=ctx.is_main)
    stream = micro_batch_stream(loader, dataset, sampler, epoch, consumed, config.batch_size)
    bar = tqdm(total=config.max_steps, initial=step, desc="pretrain", unit="step", disable=not (config.progress and ctx.is_main),
               dynamic_ncols=True)
    window: dict[str, float] = {}
    window_start, window_steps = time.perf_counter(), 0
    print_rows, print_evaluations = pretrain_lines()  # the console's mode (train/console.py)
    while step < config.max_steps:
        micro = []
        for _ in range(config.grad_accum):
            batch, epoch, consumed = next(stream)
            micro.append(batch)
        stats = train_step(objective, micro, optimizer, device, precision, scaler, config.max_grad_norm, ctx.world_size)
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        step += 1
        window_steps += 1
        for key, value in stats.items():
            window[key] = window.get(key, 0.0) + float(value)
        bar.update(1)

        if step % config.log_every == 0 or step == config.max_steps:
            row = _train_metrics(window, window_steps, time.perf_counter() - window_start, ctx, config)
            row.update(lr=lr, epoch=epoch)
            logger.log(step=step, split="train", **row)
            bar.set_postfix(loss=f"{row['loss']:.3f}", mlm_acc=f"{row['mlm_acc']:.3f}")
            if print_rows and ctx.is_main:
                bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
            window, window_start, window_steps = {}, time.perf_counter(), 0
        if eval_loader is not None and (step % config.eval_every == 0 or step == config.max_steps):
            metrics = evaluate(objective, eval_loader, device, precision)
            logger.log(step=step, split="eval", **metrics)
            if ctx.is_main and print_evaluations:
                bar.write(f"step {step}: " + ", ".join(f"eval {k} {v:.4f}" for k, v in metrics.items()))
        if step % config.save_every == 0 or step == config.max_steps:
            extra = {"epoch": epoch, "consumed": consumed}
            if scaler is not None:
                extra["scaler"] = scaler.state_dict()
            save_checkpoint(out, step, model, tokenizer, optimizer, scheduler, extra, keep_last=config.keep_last)
    bar.close()
    logger.close()
    return latest_checkpoint(out)


def _eval_loader(config: PretrainConfig, ctx: dist_utils.DistContext, collator: PretrainingCollator):
    try:
        shards = TokenShards(config.data, "valid")
    except ValueError:
        return None
    if shards.num_tokens == 0 or (config.mode == "pairs" and shards.num_documents < 2):
        dist_utils.print0("no held-out documents in the corpus (prepare it with --valid-fraction > 0): no evaluation",
                          file=sys.stderr)
        return None
    # a fixed held-out set: epoch 0 of a fixed seed, the first eval_examples examples, masks fixed by mask_seed
    dataset = PretrainingDataset(shards, config.max_seq_length, config.mode, config.short_seq_prob, seed=1234)
    n = min(len(dataset), config.eval_examples)
    subset = torch.utils.data.Subset(dataset, range(n))
    indices = list(range(ctx.rank, n, ctx.world_size))
    return torch.utils.data.DataLoader(torch.utils.data.Subset(subset, indices), batch_size=config.batch_size,
                                       collate_fn=collator, shuffle=False)


def _train_metrics(window: dict[str, float], steps: int, seconds: float, ctx, config) -> dict[str, float]:
    """Averages over the steps since the last log; counts summed over ranks."""
    keys = [*OBJECTIVE_SUMS, "tokens"]
    sums = torch.tensor([window.get(k, 0.0) for k in keys], dtype=torch.float64, device=ctx.device)
    dist_utils.all_reduce_sum(sums)
    s = dict(zip(keys, sums.tolist()))
    mlm, nsp = _objective_metrics(s)
    loss = mlm["mlm_loss"] + nsp["nsp_loss"] if nsp else mlm["mlm_loss"]
    row = {**mlm, "loss": loss, **nsp}
    row["grad_norm"] = window.get("grad_norm", 0.0) / max(steps, 1)
    row["tokens_per_s"] = s["tokens"] / max(seconds, 1e-9)
    row["seqs_per_s"] = steps * config.batch_size * config.grad_accum * ctx.world_size / max(seconds, 1e-9)
    return row
