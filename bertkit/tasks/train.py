"""Fine-tuning for the task recipes (classification, NER, QA): `FinetuneConfig` -> `bertkit.Trainer`.

    config = FinetuneConfig(output_dir="runs/sst2", epochs=2, batch_size=16, learning_rate=5e-5)
    result = finetune(model, train_features, config, evaluate=lambda m: {"accuracy": ...}, tokenizer=tokenizer)

A feature is a dict of python lists (input_ids, token_type_ids, attention_mask and the task's targets:
`labels` or `start_positions`/`end_positions`); `PaddingCollator` pads each batch to its longest row.
`evaluate(model) -> dict` is the task's evaluation (it may use `predict` below); it runs every epoch or
every `eval_every` steps, its numbers are logged to `output_dir/metrics.jsonl`, the best one (by
`metric_for_best`) is checkpointed, early stopping counts evaluations without improvement, and at the end
the best weights are back in `model` and saved to `output_dir`. The loop itself is `bertkit.train.trainer`
(the one behind `bertkit.Trainer`): this module only maps the recipes' settings onto `TrainingArguments`.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from bertkit.data.collators import MODEL_KEYS, PaddingCollator  # noqa: F401 (re-exported)
from bertkit.train.trainer import (Trainer, TrainingArguments, forward_in_batches, select_device,  # noqa: F401
                                   set_seed)

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
# devices


def bf16_available(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


# ----------------------------------------------------------------------------------------------
# inference over features


def predict(model: torch.nn.Module, features: Sequence[dict], collator: Callable, batch_size: int = 64,
            bf16: bool | None = None, progress: bool = False) -> dict[str, Any]:
    """Run the model over features. Returns {"loss": mean loss or None, "<output>": one numpy array per
    feature} for logits / start_logits / end_logits; token-level outputs are cut to each feature's length."""
    device = next(model.parameters()).device
    use_bf16 = bf16_available(device) if bf16 is None else bf16 and device.type == "cuda"
    outputs, _, loss = forward_in_batches(model, features, collator, batch_size, "bf16" if use_bf16 else "fp32",
                                          label_names=(), progress=progress)
    return {"loss": loss, **{k: v for k, v in outputs.items() if k in ("logits", "start_logits", "end_logits")}}


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


def finetune(
    model: torch.nn.Module,
    train_features: Sequence[dict],
    config: FinetuneConfig,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    tokenizer: Any = None,
    collator: Callable | None = None,
) -> dict[str, Any]:
    """Train `model` in place through `bertkit.Trainer`; returns {"best_metric", "best_step", "steps",
    "train_runtime", "metric_for_best", "trainable_parameters", "history"}. The best evaluation's weights end up
    in `model` and in `config.output_dir` (with the tokenizer); metrics go to `output_dir/metrics.jsonl`."""
    from bertkit.train.trainer import EarlyStoppingCallback

    if not train_features:
        raise ValueError("no training examples: the training file gave nothing to train on")
    metric = config.metric_for_best or "loss"
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "finetune_config.json").write_text(json.dumps(asdict(replace(config, metric_for_best=metric)), indent=2))
    set_seed(config.seed)
    device = select_device(config.device)
    if config.freeze_encoder:
        freeze_encoder(model)
    evaluation = "no" if evaluate is None else "steps" if config.eval_every else "epoch"
    keep_best = config.save_best and evaluate is not None
    checkpoints = output_dir / "checkpoints"  # best-of-this-run only; removed once the best is in output_dir
    shutil.rmtree(checkpoints, ignore_errors=True)
    args = TrainingArguments(
        output_dir=str(checkpoints), logging_dir=str(output_dir), num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size, learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps, warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay,
        adam_epsilon=config.adam_epsilon, max_grad_norm=config.max_grad_norm, eval_strategy=evaluation,
        eval_steps=config.eval_every or None, save_steps=config.eval_every or 500, logging_steps=config.log_every or 10**9,
        save_strategy=evaluation if keep_best else "no", save_total_limit=1, load_best_model_at_end=keep_best,
        metric_for_best_model=metric, greater_is_better=metric not in LOWER_IS_BETTER, seed=config.seed,
        device=str(device), bf16=config.bf16 if config.bf16 is not None else bf16_available(device),
    )
    callbacks = [EarlyStoppingCallback(config.early_stopping_patience)] if config.early_stopping_patience else []
    trainer = RecipeTrainer(model=model, args=args, train_dataset=list(train_features), data_collator=collator,
                            processing_class=tokenizer, callbacks=callbacks, recipe_evaluate=evaluate)
    output = trainer.train()
    trainer.save_model(output_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)
    state = trainer.state
    best_metric = state.best_metric
    if best_metric is None and evaluate is not None:
        evaluations = [e for e in state.log_history if f"eval_{metric}" in e]
        best_metric = evaluations[-1][f"eval_{metric}"] if evaluations else None
    return {"best_metric": best_metric, "best_step": state.best_global_step or 0, "steps": output.global_step,
            "train_runtime": round(output.metrics["train_runtime"], 3), "metric_for_best": metric,
            "trainable_parameters": count_trainable(model), "history": state.log_history}


class RecipeTrainer(Trainer):
    """The Trainer with a recipe's own evaluation (entity F1 from tags, QA answers from logits): HF recipes
    subclass Trainer the same way (QuestionAnsweringTrainer)."""

    def __init__(self, *args: Any, recipe_evaluate: Callable[[torch.nn.Module], dict] | None = None,
                 **kwargs: Any) -> None:
        self.recipe_evaluate = recipe_evaluate
        super().__init__(*args, **kwargs)

    def has_evaluation(self) -> bool:
        return self.recipe_evaluate is not None or super().has_evaluation()

    def evaluate(self, eval_dataset: Any = None, **kwargs: Any) -> dict[str, float]:
        if self.recipe_evaluate is not None and eval_dataset is None and not self.eval_rows:
            self.eval_rows = [{}]  # the recipe reads its own examples; one placeholder row for the counts
        return super().evaluate(eval_dataset, **kwargs)

    def evaluation_metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if self.recipe_evaluate is None:
            return super().evaluation_metrics(rows)
        return {k: v for k, v in self.recipe_evaluate(self.model).items() if isinstance(v, (int, float))}
