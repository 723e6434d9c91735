"""The one fine-tuning loop, shared by classification, NER and QA.

    config = FinetuneConfig(output_dir="runs/sst2", epochs=2, batch_size=16, learning_rate=5e-5)
    result = finetune(model, train_features, config, evaluate=lambda m: {"accuracy": ...}, tokenizer=tokenizer)

A feature is a dict of python lists (input_ids, token_type_ids, attention_mask and the task's targets:
`labels` or `start_positions`/`end_positions`); `PaddingCollator` pads each batch to its longest row.
`evaluate(model) -> dict` is the task's evaluation (it may use `predict` below); it runs every epoch or
every `eval_every` steps, its numbers are logged to `output_dir/metrics.jsonl`, the best one (by
`metric_for_best`) is checkpointed with `bertkit.train.checkpoint`, early stopping counts evaluations
without improvement, and at the end the best weights are back in `model` and saved to `output_dir`.
The optimizer (`bertkit.train.optim.build_optimizer`: AdamW, fused, no decay on LayerNorm/bias) and the warmup +
linear decay schedule (`bertkit.train.optim.linear_warmup_decay`) are the ones pretraining uses.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bertkit.train.checkpoint import load_model_weights, save_checkpoint
from bertkit.train.logging import MetricsLogger
from bertkit.train.optim import build_optimizer, linear_warmup_decay

# what a feature may hand to the model; everything else in a feature is for post-processing
MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels", "start_positions", "end_positions")
# metrics where smaller is better; everything else (accuracy, f1, exact_match, ...) is maximized
LOWER_IS_BETTER = ("loss", "eval_loss", "mse")


@dataclass
class FinetuneConfig:
    output_dir: str = "runs/finetune"
    epochs: float = 3.0
    batch_size: int = 16
    eval_batch_size: int = 64
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.0  # fraction of all steps spent warming up ...
    warmup_steps: int = 0  # ... or a number of steps (wins when > 0; the seed uses 500)
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-8  # HuggingFace Trainer's default
    max_grad_norm: float = 1.0  # 0 turns clipping off
    max_steps: int = 0  # > 0 stops after that many optimizer steps (overrides epochs)
    eval_every: int = 0  # evaluate every N steps; 0 = at the end of each epoch
    log_every: int = 50  # log the running train loss every N steps
    metric_for_best: str | None = None  # a key of evaluate()'s dict; None = the recipe's usual one, else loss
    early_stopping_patience: int = 0  # stop after this many evaluations without improvement; 0 = never
    freeze_encoder: bool = False  # feature-extractor mode: only the task head trains
    seed: int = 42
    device: str = "auto"  # "auto" = cuda when available, else cpu
    bf16: bool | None = None  # bf16 autocast; None = on where the GPU supports it
    save_best: bool = True  # keep the best evaluation's weights (else the last)


# ----------------------------------------------------------------------------------------------
# batching


class PaddingCollator:
    """Pads a list of features to the batch's longest sequence and returns tensors.

    input_ids get the tokenizer's pad id, masks and segment ids 0, token-level labels -100 (ignored by the
    loss); sequence-level labels, multi-hot vectors and start/end positions are stacked as they are.
    """

    def __init__(self, pad_token_id: int = 0) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        pad_values = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0}
        batch: dict[str, torch.Tensor] = {}
        for key in features[0]:
            if key not in MODEL_KEYS:
                continue  # offsets, example ids, word ids: kept for post-processing, not model inputs
            values = [f[key] for f in features]
            if key in pad_values or (key == "labels" and _is_token_level(values, features)):
                pad = pad_values.get(key, -100)
                batch[key] = torch.tensor([list(v) + [pad] * (length - len(v)) for v in values], dtype=torch.long)
            elif key == "labels" and isinstance(values[0], (float, list)):
                batch[key] = torch.tensor(values, dtype=torch.float)  # regression / multi-hot (BCE wants floats)
            else:
                batch[key] = torch.tensor(values, dtype=torch.long)  # class ids, start/end positions
        return batch


def _is_token_level(values: list, features: Sequence[dict[str, Any]]) -> bool:
    # token labels are int lists as long as input_ids (multi-hot vectors are float lists)
    first = values[0]
    return isinstance(first, list) and (not first or isinstance(first[0], int)) and len(first) == len(features[0]["input_ids"])


def batches(features: Sequence[dict], batch_size: int, collator: Callable, shuffle: bool = False,
            generator: random.Random | None = None):
    order = list(range(len(features)))
    if shuffle:
        (generator or random).shuffle(order)
    for start in range(0, len(order), batch_size):
        yield collator([features[i] for i in order[start : start + batch_size]])


# ----------------------------------------------------------------------------------------------
# devices


def select_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for but CUDA is not available here; use --device cpu")
    return device


def autocast(device: torch.device, bf16: bool | None):
    """bf16 autocast on a GPU that supports it (None = automatic); plain fp32 on CPU."""
    if bf16 is None:
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if bf16 and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ----------------------------------------------------------------------------------------------
# inference over features


@torch.inference_mode()
def predict(model: torch.nn.Module, features: Sequence[dict], collator: Callable, batch_size: int = 64,
            bf16: bool | None = None, progress: bool = False) -> dict[str, Any]:
    """Run the model over features. Returns {"loss": mean loss or None, "<output>": one numpy array per
    feature} for logits / start_logits / end_logits; token-level outputs are cut to each feature's length."""
    model.eval()
    device = next(model.parameters()).device
    outputs: dict[str, list[np.ndarray]] = {}
    loss_sum, loss_count = 0.0, 0
    for batch in tqdm(list(range(0, len(features), batch_size)), desc="predict", disable=not progress, leave=False):
        chunk = features[batch : batch + batch_size]
        inputs = {k: v.to(device) for k, v in collator(chunk).items()}
        with autocast(device, bf16):
            out = model(**inputs, return_dict=True)
        if getattr(out, "loss", None) is not None:
            loss_sum += float(out.loss) * len(chunk)
            loss_count += len(chunk)
        for name in ("logits", "start_logits", "end_logits"):
            tensor = getattr(out, name, None)
            if tensor is None:
                continue
            tensor = tensor.float().cpu().numpy()
            token_level = name != "logits" or tensor.ndim == 3
            for row, feature in zip(tensor, chunk):
                outputs.setdefault(name, []).append(row[: len(feature["input_ids"])] if token_level else row)
    return {"loss": loss_sum / loss_count if loss_count else None, **outputs}


# ----------------------------------------------------------------------------------------------
# the loop


def freeze_encoder(model: torch.nn.Module) -> int:
    """Feature-extractor mode: freeze the encoder (`model.bert`), train only the head. Returns the number
    of trainable parameters left (1,538 for bert-base with 2 labels, as the seed counts)."""
    encoder = getattr(model, "bert", None)
    if encoder is None:
        raise ValueError(f"{type(model).__name__} has no .bert encoder to freeze")
    for parameter in encoder.parameters():
        parameter.requires_grad = False
    return count_trainable(model)


def count_trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def is_better(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value < best if metric in LOWER_IS_BETTER else value > best


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def finetune(
    model: torch.nn.Module,
    train_features: Sequence[dict],
    config: FinetuneConfig,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    tokenizer: Any = None,
    collator: Callable | None = None,
) -> dict[str, Any]:
    """Train `model` in place; returns {"best_metric", "best_step", "steps", "train_runtime", "history"}."""
    if not train_features:
        raise ValueError("no training examples: the training file gave nothing to train on")
    if config.metric_for_best is None:
        config = replace(config, metric_for_best="loss")
    set_seed(config.seed)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = select_device(config.device)
    model.to(device)
    if config.freeze_encoder:
        freeze_encoder(model)
    collator = collator or PaddingCollator(getattr(tokenizer, "pad_token_id", 0) or 0)

    steps_per_epoch = math.ceil(len(train_features) / config.batch_size)
    total_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * config.epochs))
    warmup = config.warmup_steps or int(math.ceil(config.warmup_ratio * total_steps))
    optimizer = build_optimizer(model, "adamw", lr=config.learning_rate, weight_decay=config.weight_decay,
                                eps=config.adam_epsilon)
    scheduler = linear_warmup_decay(optimizer, min(warmup, total_steps), total_steps)
    checkpoints = output_dir / "checkpoints"
    shutil.rmtree(checkpoints, ignore_errors=True)  # best-of-this-run only

    (output_dir / "finetune_config.json").write_text(json.dumps(asdict(config), indent=2))
    shuffler = random.Random(config.seed)
    history: list[dict] = []
    best_metric, best_step, best_folder, bad_evals = None, 0, None, 0
    step, running_loss, running_count, stop = 0, 0.0, 0, False
    start = time.perf_counter()

    def run_evaluation(epoch: float) -> None:
        nonlocal best_metric, best_step, best_folder, bad_evals, stop
        if evaluate is None:
            return
        metrics = evaluate(model)
        model.train()
        row = logger.log(step=step, split="eval", epoch=round(epoch, 3),
                         **{k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        history.append(row)
        if config.metric_for_best not in metrics:
            raise ValueError(f"metric_for_best {config.metric_for_best!r} is not among the evaluation's "
                             f"metrics {sorted(metrics)}; pick one of those")
        value = float(metrics[config.metric_for_best])
        progress.write(f"step {step} epoch {epoch:.2f}: " + ", ".join(
            f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float))))
        if is_better(value, best_metric, config.metric_for_best):
            best_metric, best_step, bad_evals = value, step, 0
            if config.save_best:
                best_folder = save_checkpoint(checkpoints, step, model, tokenizer=tokenizer,
                                              extra={"metrics": {k: v for k, v in metrics.items()
                                                                 if isinstance(v, (int, float))}}, keep_last=1)
        else:
            bad_evals += 1
            if config.early_stopping_patience and bad_evals >= config.early_stopping_patience:
                progress.write(f"early stopping: {bad_evals} evaluations without a better {config.metric_for_best}")
                stop = True

    model.train()
    with MetricsLogger(output_dir / "metrics.jsonl") as logger, \
            tqdm(total=total_steps, desc="finetune", dynamic_ncols=True) as progress:
        while step < total_steps and not stop:
            for batch in batches(train_features, config.batch_size, collator, shuffle=True, generator=shuffler):
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast(device, config.bf16):
                    loss = model(**batch, return_dict=True).loss
                loss.backward()
                if config.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                running_loss += loss.item()
                running_count += 1
                progress.update(1)
                progress.set_postfix(loss=f"{running_loss / running_count:.4f}")
                if config.log_every and step % config.log_every == 0:
                    history.append(logger.log(step=step, split="train", loss=running_loss / running_count,
                                              lr=scheduler.get_last_lr()[0], epoch=round(step / steps_per_epoch, 3)))
                    running_loss, running_count = 0.0, 0
                if config.eval_every and step % config.eval_every == 0:
                    run_evaluation(step / steps_per_epoch)
                if step >= total_steps or stop:
                    break
            if not config.eval_every and not stop:
                run_evaluation(step / steps_per_epoch)
        if running_count:
            history.append(logger.log(step=step, split="train", loss=running_loss / running_count,
                                      lr=scheduler.get_last_lr()[0], epoch=round(step / steps_per_epoch, 3)))
    train_runtime = time.perf_counter() - start

    if best_folder is not None and best_step != step:
        load_model_weights(model, best_folder)  # back to the best evaluation's weights
    model.save_pretrained(output_dir)
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(output_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the best weights now sit in output_dir itself
    result = {"best_metric": best_metric, "best_step": best_step, "steps": step,
              "train_runtime": round(train_runtime, 3), "metric_for_best": config.metric_for_best,
              "trainable_parameters": count_trainable(model), "history": history}
    return result
