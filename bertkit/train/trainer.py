"""Fine-tuning with HuggingFace's `Trainer` surface, through bertkit's one training loop.

    from bertkit import BertForSequenceClassification, Trainer, TrainingArguments
    args = TrainingArguments(output_dir="results", num_train_epochs=2, per_device_train_batch_size=8,
                             eval_strategy="epoch", logging_strategy="epoch")
    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=test_set,
                      compute_metrics=lambda p: {"accuracy": (p.predictions.argmax(-1) == p.label_ids).mean()})
    output = trainer.train()        # TrainOutput(global_step, training_loss, metrics)
    trainer.evaluate()              # {'eval_loss', 'eval_accuracy', 'eval_runtime', ..., 'epoch'}
    predictions, label_ids, metrics = trainer.predict(test_set)

The names, arguments and return shapes are HF's; `bertkit finetune` and the demo run the same loop. What
differs, on purpose, is where HF spends time for nothing:
  * batches are grouped by length (`group_by_length`, on by default here) and padded only to their own longest
    row; rows that arrive padded (a tokenizer called with padding=True) lose the all-padding columns;
  * AdamW is torch's fused kernel (on CPU too), the loss stays on the device between log steps (no per-step
    host sync), bf16 autocast runs on a GPU that has it;
  * evaluation runs in length-sorted batches and puts the predictions back in the dataset's order.
A dataset is a HuggingFace `datasets.Dataset` (after `.map(tokenizer)`; a `label` column is taken as
`labels`), a `torch.utils.data.Dataset` of dicts, or a list of dicts; it is read once into memory.
Checkpoints are bertkit's atomic ones (`output_dir/step-00000500/`, see `bertkit.train.checkpoint`) and
`train(resume_from_checkpoint=True)` continues from the newest with the same data order, RNG and losses.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bertkit.data.collators import PaddingCollator
from bertkit.model.inference import LABEL_NAMES, autocast, forward_in_batches, resolve_device, row_length
from bertkit.train.checkpoint import PREFIX, latest_checkpoint, load_checkpoint, load_model_weights, save_checkpoint
from bertkit.train.logging import MetricsLogger
from bertkit.train.optim import build_optimizer, get_scheduler

logger = logging.getLogger("bertkit")

STRATEGIES = ("no", "steps", "epoch")
# HF arguments bertkit accepts but that change nothing here (each said once when set)
NO_EFFECT = {
    "report_to": "only local logging is done (metrics.jsonl and the printed table)",
    "dataloader_num_workers": "batches are built in the main process from in-memory rows",
    "dataloader_pin_memory": "batches are built in the main process",
    "logging_first_step": "the first step is not logged separately",
    "overwrite_output_dir": "output_dir is always written into",
    "do_train": "train() trains", "do_eval": "evaluate() evaluates", "do_predict": "predict() predicts",
    "run_name": "only local logging is done", "push_to_hub": "nothing is uploaded",
    "save_safetensors": "weights are always saved as safetensors", "optim": "the optimizer is fused AdamW",
    "ddp_find_unused_parameters": "use torchrun with bertkit pretrain for DDP", "local_rank": "single process",
    "eval_accumulation_steps": "predictions are gathered on the CPU as they come",
    "disable_tqdm": None, "torch_compile": "the model runs eagerly", "label_smoothing_factor": "no label smoothing",
}


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every GPU), as HF's `set_seed` does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


# ----------------------------------------------------------------------------------------------------------
# arguments


@dataclass(init=False)
class TrainingArguments:
    """HF's `TrainingArguments`, the fields people set. Unknown names are an error; HF names that change nothing
    here (`report_to`, `dataloader_num_workers`, ...) are accepted and said once."""

    output_dir: str = "trainer_output"
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler_type: str = "linear"
    warmup_steps: float = 0  # a number of steps, or (below 1) a fraction of them, as transformers 5 reads it
    warmup_ratio: float = 0.0
    eval_strategy: str = "no"
    eval_steps: int | None = None  # default: logging_steps
    logging_strategy: str = "steps"
    logging_steps: int = 500
    logging_dir: str | None = None  # where metrics.jsonl goes (default: output_dir)
    save_strategy: str = "steps"
    save_steps: int = 500
    save_total_limit: int | None = None
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    seed: int = 42
    bf16: bool = False
    fp16: bool = False
    use_cpu: bool = False
    group_by_length: bool = True  # bertkit's default (HF: False): batches of similar lengths pad little
    remove_unused_columns: bool = True
    gradient_checkpointing: bool = False
    disable_tqdm: bool = False
    label_names: list[str] | None = None
    report_to: Any = None
    dataloader_num_workers: int = 0
    device: str = "auto"  # bertkit: "auto" (cuda when available), "cpu", "cuda", "cuda:1"
    ignored: dict[str, Any] = field(default_factory=dict, repr=False)  # accepted HF names without effect here

    def __init__(self, output_dir: str | None = None, **kwargs: Any) -> None:
        if "evaluation_strategy" in kwargs:  # the seeds' (transformers 4) spelling
            if "eval_strategy" in kwargs:
                raise ValueError("pass eval_strategy or its old name evaluation_strategy, not both")
            kwargs["eval_strategy"] = kwargs.pop("evaluation_strategy")
        if kwargs.pop("no_cuda", False):
            kwargs["use_cpu"] = True
        known = {f.name: f for f in dataclasses.fields(self) if f.name != "ignored"}
        ignored = {k: kwargs.pop(k) for k in list(kwargs) if k in NO_EFFECT and k not in known}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            hints = [f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, known, 1)) else name
                     for name in unknown]
            raise TypeError(f"TrainingArguments got unknown argument(s): {', '.join(hints)}")
        for name, spec in known.items():
            if name in kwargs:
                value = kwargs[name]
            elif spec.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                value = spec.default_factory()  # type: ignore[misc]
            else:
                value = spec.default
            setattr(self, name, value)
        if output_dir is not None:
            self.output_dir = str(output_dir)
        self.ignored = {**ignored, **{k: kwargs[k] for k in ("report_to", "dataloader_num_workers")
                                      if kwargs.get(k) not in (None, 0, "none", [], ["none"])}}
        self._validate()

    def _validate(self) -> None:
        for name in ("eval_strategy", "logging_strategy", "save_strategy"):
            value = getattr(self, name)
            value = getattr(value, "value", value)  # an enum from HF code
            setattr(self, name, value)
            allowed = STRATEGIES + (("best",) if name == "save_strategy" else ())
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.fp16 and self.bf16:
            raise ValueError("pass bf16=True or fp16=True, not both")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.eval_steps is None:
            self.eval_steps = self.logging_steps
        if self.load_best_model_at_end:
            if self.eval_strategy == "no":
                raise ValueError("load_best_model_at_end needs an evaluation: set eval_strategy='epoch' or 'steps'")
            if self.save_strategy not in (self.eval_strategy, "best"):
                raise ValueError(f"load_best_model_at_end needs save_strategy equal to eval_strategy "
                                 f"({self.eval_strategy!r}), got {self.save_strategy!r}")
        metric = self.metric_for_best_model or "loss"
        self.metric_for_best_model = metric if metric.startswith("eval_") else f"eval_{metric}"
        if self.greater_is_better is None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")

    @property
    def train_batch_size(self) -> int:
        return self.per_device_train_batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.per_device_eval_batch_size

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# ----------------------------------------------------------------------------------------------------------
# results and callbacks


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, float]


class EvalPrediction(NamedTuple):
    predictions: Any  # numpy array, or a tuple of them (QA: start and end logits)
    label_ids: Any


class PredictionOutput(NamedTuple):
    predictions: Any
    label_ids: Any
    metrics: dict[str, float]


@dataclass
class TrainerState:
    epoch: float = 0.0
    global_step: int = 0
    max_steps: int = 0
    num_train_epochs: float = 0.0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_global_step: int | None = None
    best_model_checkpoint: str | None = None


@dataclass
class TrainerControl:
    should_training_stop: bool = False


class TrainerCallback:
    """Override the events you need; each gets (args, state, control, **kwargs) as in HF."""

    def on_train_begin(self, args, state, control, **kwargs): ...
    def on_epoch_end(self, args, state, control, **kwargs): ...
    def on_step_end(self, args, state, control, **kwargs): ...
    def on_log(self, args, state, control, logs=None, **kwargs): ...
    def on_evaluate(self, args, state, control, metrics=None, **kwargs): ...
    def on_save(self, args, state, control, **kwargs): ...
    def on_train_end(self, args, state, control, **kwargs): ...


class EarlyStoppingCallback(TrainerCallback):
    """Stop after `early_stopping_patience` evaluations whose `metric_for_best_model` did not improve."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0) -> None:
        self.patience, self.threshold, self.bad_evaluations = early_stopping_patience, early_stopping_threshold, 0
        self.best: float | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(args.metric_for_best_model)
        if value is None:
            return
        sign = 1 if args.greater_is_better else -1
        if self.best is None or sign * (value - self.best) > self.threshold:
            self.best, self.bad_evaluations = value, 0
        else:
            self.bad_evaluations += 1
            control.should_training_stop = self.bad_evaluations >= self.patience


# ----------------------------------------------------------------------------------------------------------
# data: any dataset -> in-memory rows of python values, and length-grouped batch orders


def _plain(value: Any) -> Any:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    return value


def read_rows(dataset: Any, accepted: set[str] | None, what: str) -> list[dict[str, Any]]:
    """Read a dataset into a list of dicts of python values; `label`/`label_ids` become `labels`; columns the
    model does not take are dropped (said once)."""
    if dataset is None:
        return []
    try:
        count = len(dataset)
    except TypeError:
        raise ValueError(f"the {what} dataset has no len(): pass a datasets.Dataset, a torch Dataset or a list "
                         "of dicts") from None
    rows, dropped = [], set()
    for i in range(count):
        row = dataset[i]
        if not isinstance(row, dict) and hasattr(row, "keys"):
            row = dict(row)
        if not isinstance(row, dict):
            hint = (": it holds raw text; map the tokenizer over it first, e.g. rows = [{**tokenizer(text), "
                    "'labels': label} for text, label in ...]") if isinstance(row, str) else ""
            raise ValueError(f"the {what} dataset's item {i} is a {type(row).__name__}, not a dict of columns "
                             "such as {'input_ids': [...], 'labels': 1}" + hint)
        clean = {}
        for key, value in row.items():
            key = "labels" if key in ("label", "label_ids") and "labels" not in row else key
            if accepted is not None and key not in accepted:
                dropped.add(key)
                continue
            clean[key] = _plain(value)
        if "input_ids" not in clean or (clean["input_ids"] and isinstance(clean["input_ids"], str)):
            text = [k for k, v in row.items() if isinstance(v, str)]
            raise ValueError(
                f"the {what} dataset holds no token ids (item {i} has columns {sorted(row)}"
                f"{', text in ' + ', '.join(text) if text else ''}): map the tokenizer over it first, e.g. "
                "dataset.map(lambda batch: tokenizer(batch['text'], truncation=True), batched=True)")
        rows.append(clean)
    if dropped:
        logger.warning(f"The following columns of the {what} dataset are not inputs of the model and were "
                       f"ignored: {', '.join(sorted(dropped))}")
    return rows


def batch_order(lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool) -> list[list[int]]:
    """The batches of one epoch, from a generator seeded by (seed, epoch) so that a resumed run sees the same.

    Grouped: shuffle, cut into mega-batches of 50 batches, sort each by length, cut into batches (which then pad
    little), and shuffle the batches. The last step matters: HF's LengthGroupedSampler keeps each mega-batch
    sorted longest-first, so each stretch of steps sees ever shorter rows and the end of a short run (its
    learning-rate decay) only the shortest, often trivial, ones."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    if not group_by_length:
        return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    mega = batch_size * 50
    order = [i for start in range(0, len(order), mega)
             for i in sorted(order[start:start + mega], key=lambda j: -lengths[j])]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def labelled_tokens_per_row(rows: Sequence[dict[str, Any]]) -> float | None:
    """The mean number of labelled tokens (label != -100) per row when the labels are per token, else None."""
    token_labels = [r["labels"] for r in rows if isinstance(r.get("labels"), list)
                    and len(r["labels"]) == len(r["input_ids"]) and all(isinstance(x, int) for x in r["labels"][:1])]
    if len(token_labels) != len(rows) or not rows:
        return None
    total = sum(sum(1 for label in labels if label != -100) for labels in token_labels)
    return total / len(rows) if total else None


def trim_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop trailing columns that are padding in every row (rows padded to the whole dataset's longest, as
    `tokenizer(..., padding=True)` over a dataset does), unless a label sits there."""
    mask = batch.get("attention_mask")
    if mask is None or mask.dim() != 2 or mask.shape[1] == 0:
        return batch
    used = mask.any(dim=0).nonzero()
    keep = int(used.max()) + 1 if len(used) else 1
    labels = batch.get("labels")
    if labels is not None and labels.dim() == 2 and labels.shape == mask.shape:
        labelled = (labels != -100).any(dim=0).nonzero()
        keep = max(keep, int(labelled.max()) + 1 if len(labelled) else 0)
    if keep == mask.shape[1]:
        return batch
    seq_len = mask.shape[1]
    return {k: (v[:, :keep] if v.dim() >= 2 and v.shape[1] == seq_len and v.shape[0] == mask.shape[0] else v)
            for k, v in batch.items()}


# ----------------------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """HF's Trainer: train(), evaluate(), predict(), save_model(), log_history, callbacks."""

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Callable | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        model_init: Callable[[], torch.nn.Module] | None = None,
        compute_metrics: Callable[[EvalPrediction], dict] | None = None,
        callbacks: Sequence[TrainerCallback] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        tokenizer: Any = None,
        preprocess_logits_for_metrics: Callable | None = None,
    ) -> None:
        self.args = args if args is not None else TrainingArguments()
        if not isinstance(self.args, TrainingArguments):
            raise TypeError(f"args must be bertkit.TrainingArguments, got {type(self.args).__name__}")
        set_seed(self.args.seed)
        if model is None:
            if model_init is None:
                raise ValueError("Trainer needs a model (or a model_init function that builds one)")
            model = model_init()
        self.model = model
        self.processing_class = processing_class if processing_class is not None else tokenizer
        self.tokenizer = self.processing_class
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.callbacks = list(callbacks or [])
        self.optimizer, self.lr_scheduler = optimizers
        self._given_optimizers = optimizers  # a second train() builds fresh ones unless the caller gave them
        self.state = TrainerState()
        self.control = TrainerControl()
        self._training = False  # inside train(): evaluations print a table row
        self._tokens_per_row: float | None = None  # token-level labels: mean labelled tokens per training row
        self._logger: MetricsLogger | None = None
        self.device = resolve_device("cpu" if self.args.use_cpu else self.args.device)
        self.precision = "bf16" if self.args.bf16 else "fp16" if self.args.fp16 else "fp32"
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("fp16=True needs a CUDA GPU; on CPU leave it off (or use bf16=True)")
        pad_id = getattr(self.processing_class, "pad_token_id", None)
        if pad_id is None:
            pad_id = getattr(getattr(model, "config", None), "pad_token_id", 0) or 0
        self.data_collator = data_collator or PaddingCollator(pad_id)
        self.accepted = self._model_inputs() if self.args.remove_unused_columns else None
        self.train_rows = read_rows(train_dataset, self.accepted, "training")
        self.eval_dataset = eval_dataset
        self.eval_rows = read_rows(eval_dataset, self.accepted, "evaluation") if eval_dataset is not None else None
        if self.args.eval_strategy != "no" and not self.has_evaluation():
            raise ValueError(f"eval_strategy={self.args.eval_strategy!r} needs an eval_dataset: pass "
                             "Trainer(..., eval_dataset=...) or set eval_strategy='no'")
        for name, value in self.args.ignored.items():
            if NO_EFFECT.get(name):
                logger.warning(f"TrainingArguments {name}={value!r} has no effect in bertkit: {NO_EFFECT[name]}")
        self.model.to(self.device)

    @property
    def log_history(self) -> list[dict[str, Any]]:
        return self.state.log_history

    # -- setup ------------------------------------------------------------------------------------------
    def has_evaluation(self) -> bool:
        return bool(self.eval_rows)

    def _model_inputs(self) -> set[str] | None:
        params = inspect.signature(self.model.forward).parameters
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return None  # the model takes anything
        return set(params) | set(self.args.label_names or [])

    def _check_training_data(self) -> None:
        """The mistakes that would otherwise surface deep inside torch, or after an hour of training."""
        if not self.train_rows:
            raise ValueError("Trainer.train() needs a train_dataset with at least one row")
        sample = self._collate([self.train_rows[i] for i in range(min(2, len(self.train_rows)))])
        targets = ("labels", "start_positions", "next_sentence_label")
        if not any(t in sample for t in targets):
            raise ValueError(f"the training data has no labels (columns after collation: {sorted(sample)}): add a "
                             "'label' or 'labels' column (QA: start_positions/end_positions), or use a collator "
                             "that makes them (DataCollatorForLanguageModeling)")
        config = getattr(self.model, "config", None)
        num_labels = getattr(config, "num_labels", None)
        if num_labels and num_labels > 1 and hasattr(self.model, "classifier"):
            values = [v for row in self.train_rows + (self.eval_rows or []) for v in _flat_ints(row.get("labels"))]
            high = max(values, default=-1)
            if high >= num_labels:
                raise ValueError(f"labels go up to {high} but the model has num_labels={num_labels}: load it with "
                                 f"num_labels={high + 1} (from_pretrained(..., num_labels={high + 1}))")

    def _collate(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.data_collator(rows)
        batch = dict(batch.items()) if not isinstance(batch, dict) else batch
        return trim_padding(batch)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The model's loss on one batch (HF's hook: override it for a custom loss). Models may return an output
        object or dict with `loss`, or a tuple whose first element is the loss, as HF's Trainer accepts."""
        outputs = model(**inputs)
        loss = outputs["loss"] if hasattr(outputs, "keys") else outputs[0] if isinstance(outputs, (tuple, list)) else None
        if not isinstance(loss, torch.Tensor):
            raise ValueError(f"{type(model).__name__} returned no loss for a training batch with inputs "
                             f"{sorted(inputs)}: pass labels the model uses, or override Trainer.compute_loss")
        return loss

    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        if self.optimizer is None:
            self.optimizer = build_optimizer(self.model, "adamw", lr=self.args.learning_rate,
                                             weight_decay=self.args.weight_decay, eps=self.args.adam_epsilon,
                                             betas=(self.args.adam_beta1, self.args.adam_beta2))
        if self.lr_scheduler is None:
            warmup = self.args.warmup_steps
            if 0 < warmup < 1:
                warmup = math.ceil(warmup * num_training_steps)
            warmup = int(warmup) or math.ceil(self.args.warmup_ratio * num_training_steps)
            self.lr_scheduler = get_scheduler(self.args.lr_scheduler_type, self.optimizer,
                                              num_warmup_steps=warmup, num_training_steps=num_training_steps)

    # -- training ---------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> TrainOutput:
        if kwargs:
            raise TypeError(f"Trainer.train() got unexpected argument(s): {', '.join(sorted(kwargs))}")
        args = self.args
        self._check_training_data()
        lengths = [row_length(r) for r in self.train_rows]
        self._tokens_per_row = labelled_tokens_per_row(self.train_rows)
        batches_per_epoch = math.ceil(len(lengths) / args.per_device_train_batch_size)
        steps_per_epoch = max(1, math.ceil(batches_per_epoch / args.gradient_accumulation_steps))
        max_steps = args.max_steps if args.max_steps > 0 else math.ceil(steps_per_epoch * args.num_train_epochs)
        num_epochs = math.ceil(max_steps / steps_per_epoch)
        self.optimizer, self.lr_scheduler = self._given_optimizers
        self.create_optimizer_and_scheduler(max_steps)
        if args.gradient_checkpointing and hasattr(self.model, "gradient_checkpointing_enable"):
            self.model.gradient_checkpointing_enable()
        scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

        self.state = TrainerState(max_steps=max_steps, num_train_epochs=num_epochs)
        resume_path = self._resume_path(resume_from_checkpoint)
        if resume_path is not None:
            saved = load_checkpoint(resume_path, self.model, self.optimizer, self.lr_scheduler,
                                    fallback=resume_from_checkpoint is True)  # True: the newest intact one
            trainer_state = saved["extra"].get("trainer_state", {})
            self.state = TrainerState(**{**dataclasses.asdict(self.state), **trainer_state,
                                         "max_steps": max_steps, "num_train_epochs": num_epochs})
            if scaler is not None and "scaler" in saved["extra"]:
                scaler.load_state_dict(saved["extra"]["scaler"])
            logger.warning(f"resuming from {saved['path']} at step {self.state.global_step}")
        start_step = self.state.global_step
        log_dir = Path(args.logging_dir or args.output_dir)
        self._table = _Table()
        self._training = True
        self._call("on_train_begin")

        self.model.train()
        total_loss = torch.zeros((), device=self.device)  # summed on the device: no host sync per step
        logged_loss, logged_steps = torch.zeros((), device=self.device), 0
        start = time.perf_counter()
        with MetricsLogger(log_dir / "metrics.jsonl", resume_step=start_step if resume_path else None) as self._logger, \
                tqdm(total=max_steps, initial=start_step, desc="train", dynamic_ncols=True,
                     disable=args.disable_tqdm) as self._progress:
            for epoch in range(start_step // steps_per_epoch, num_epochs):
                order = batch_order(lengths, args.per_device_train_batch_size, args.seed + epoch, args.group_by_length)
                done_in_epoch = self.state.global_step - epoch * steps_per_epoch  # > 0 only when resuming
                for step_in_epoch in range(done_in_epoch, steps_per_epoch):
                    micro = order[step_in_epoch * args.gradient_accumulation_steps:
                                  (step_in_epoch + 1) * args.gradient_accumulation_steps]
                    step_loss, grad_norm = self.training_step(micro, scaler)
                    total_loss += step_loss
                    logged_loss += step_loss
                    self.state.global_step += 1
                    logged_steps += 1
                    self.state.epoch = epoch + (step_in_epoch + 1) / steps_per_epoch
                    self._progress.update(1)
                    self._call("on_step_end")
                    end_of_epoch = step_in_epoch + 1 == steps_per_epoch
                    last = self.state.global_step >= max_steps
                    # the last step logs what is left, so a short run still shows its loss
                    if (self._due(args.logging_strategy, args.logging_steps, end_of_epoch, last)
                            or (last and args.logging_strategy == "steps")) and logged_steps:
                        self._log_train(logged_loss / logged_steps, grad_norm)
                        logged_loss, logged_steps = torch.zeros((), device=self.device), 0
                    metrics = None
                    if self._due(args.eval_strategy, args.eval_steps, end_of_epoch, last):
                        metrics = self.evaluate()
                    if self._due(args.save_strategy, args.save_steps, end_of_epoch, last) or \
                            (args.save_strategy == "best" and metrics is not None):
                        self._save(metrics, scaler)
                    if last or self.control.should_training_stop:
                        break
                self._call("on_epoch_end")
                if self.state.global_step >= max_steps or self.control.should_training_stop:
                    break
            runtime = time.perf_counter() - start
            trained_steps = self.state.global_step - start_step
            train_loss = float(total_loss) / max(1, trained_steps)
            if resume_path is not None and trained_steps == 0:
                train_loss = 0.0
            if args.load_best_model_at_end and self.state.best_model_checkpoint:
                load_model_weights(self.model, self.state.best_model_checkpoint)
                logger.info(f"loaded the best model from {self.state.best_model_checkpoint} "
                            f"({args.metric_for_best_model}={self.state.best_metric})")
            examples = trained_steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
            metrics = {"train_runtime": round(runtime, 4),
                       "train_samples_per_second": round(min(examples, len(lengths) * args.num_train_epochs)
                                                         / max(runtime, 1e-9), 3),
                       "train_steps_per_second": round(trained_steps / max(runtime, 1e-9), 3),
                       "train_loss": train_loss, "epoch": round(self.state.epoch, 4)}
            self._record(dict(metrics), split="train_end")
        self._training, self._logger = False, None
        self._call("on_train_end")
        return TrainOutput(self.state.global_step, train_loss, metrics)

    def training_step(self, micro_batches: list[list[int]], scaler: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimizer step over the micro-batches of row indices (gradient accumulation): forward and backward
        each, clip, step the optimizer and the schedule. Returns (the step's mean loss, the gradient norm), both
        still on the device."""
        rows_in_step = sum(len(b) for b in micro_batches)
        step_loss = torch.zeros((), device=self.device)
        for indices in micro_batches:
            batch = self._to_device(self._collate([self.train_rows[i] for i in indices]))
            with autocast(self.device, self.precision):
                loss = self.compute_loss(self.model, batch)
            # Each micro-batch weighs by its rows, so an uneven last batch counts what it holds. Token-level losses
            # (NER) are means over a batch's labelled tokens: weighing the batch by its labelled tokens instead
            # makes every token count the same whatever the batch, so length-grouped batches of short sentences do
            # not outweigh the long ones (the epoch's objective is the token mean, as with random batches).
            labels = batch.get("labels")
            if self._tokens_per_row and labels is not None and labels.dim() == 2:
                weight = (labels != -100).sum() / (self._tokens_per_row * rows_in_step)
            else:
                weight = len(indices) / rows_in_step
            scaled = loss * weight
            (scaler.scale(scaled) if scaler else scaled).backward()
            step_loss += scaled.detach()
        if scaler is not None:
            scaler.unscale_(self.optimizer)
        grad_norm = None
        if self.args.max_grad_norm:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)
        if scaler is not None:
            scaler.step(self.optimizer)
            scaler.update()
        else:
            self.optimizer.step()
        self._step_lr = self.lr_scheduler.get_last_lr()[0]  # the rate this step used (HF 5 logs it)
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return step_loss, grad_norm

    def _resume_path(self, resume_from_checkpoint: str | bool | None) -> Path | None:
        if not resume_from_checkpoint:
            return None
        if resume_from_checkpoint is True:
            found = latest_checkpoint(self.args.output_dir)
            if found is None:
                raise ValueError(f"resume_from_checkpoint=True but {self.args.output_dir} holds no checkpoint "
                                 f"({PREFIX}* folder); train without it to start fresh")
            return found
        path = Path(resume_from_checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"resume_from_checkpoint={str(path)!r} does not exist")
        return path

    def _due(self, strategy: str, every: int, end_of_epoch: bool, last: bool) -> bool:
        if strategy == "epoch":
            return end_of_epoch or last
        if strategy == "steps":
            return self.state.global_step % max(1, int(every)) == 0
        return False

    def _log_train(self, mean_loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        logs = {"loss": round(float(mean_loss), 4)}
        if grad_norm is not None:
            logs["grad_norm"] = float(grad_norm)
        logs["learning_rate"] = self._step_lr
        logs["epoch"] = round(self.state.epoch, 4)
        self._progress.set_postfix(loss=f"{logs['loss']:.4f}")
        self.log(logs)
        if self.args.eval_strategy == "no":
            self._table.row(self._progress, self.state, self.args, logs, None)

    def log(self, logs: dict[str, float]) -> None:
        """Append to log_history and metrics.jsonl (HF's Trainer.log)."""
        self._record(logs, split="train")

    def _record(self, logs: dict[str, Any], split: str) -> None:
        entry = {**logs, "step": self.state.global_step}
        self.state.log_history.append(entry)
        metrics_log = self._logger
        if metrics_log is None and self.state.global_step:  # evaluate() after train(): append to that run's log
            metrics_log = MetricsLogger(Path(self.args.logging_dir or self.args.output_dir) / "metrics.jsonl",
                                        resume_step=self.state.global_step)
        if metrics_log is not None:
            prefix = "eval_" if split == "eval" else "train_" if split == "train_end" else ""
            row = {(k[len(prefix):] if prefix and k.startswith(prefix) else k): v for k, v in logs.items()}
            if "learning_rate" in row:
                row["lr"] = row.pop("learning_rate")
            metrics_log.log(step=self.state.global_step, split=split, **row)
            if metrics_log is not self._logger:
                metrics_log.close()
        self._call("on_log", logs=logs)

    def _track_best(self, metrics: dict[str, float]) -> None:
        args = self.args
        if args.metric_for_best_model not in metrics:
            if args.load_best_model_at_end or args.save_strategy == "best":
                raise ValueError(f"metric_for_best {args.metric_for_best_model[5:]!r} is not among the evaluation's "
                                 f"metrics {sorted(k[5:] for k in metrics if k.startswith('eval_'))}; pick one of those")
            return
        value, best = float(metrics[args.metric_for_best_model]), self.state.best_metric
        if best is None or (value > best if args.greater_is_better else value < best):
            self.state.best_metric, self.state.best_global_step = value, self.state.global_step

    def _save(self, metrics: dict[str, float] | None, scaler: Any) -> None:
        args = self.args
        is_best = self.state.best_global_step == self.state.global_step
        if args.save_strategy == "best" and not is_best:
            return
        if is_best:
            self.state.best_model_checkpoint = str(Path(args.output_dir) / f"{PREFIX}{self.state.global_step:08d}")
        extra = {"trainer_state": dataclasses.asdict(self.state)}
        if scaler is not None:
            extra["scaler"] = scaler.state_dict()
        protect = [Path(self.state.best_model_checkpoint).name] if self.state.best_model_checkpoint else []
        save_checkpoint(args.output_dir, self.state.global_step, self.model, tokenizer=self.processing_class,
                        optimizer=self.optimizer, scheduler=self.lr_scheduler, extra=extra,
                        keep_last=args.save_total_limit, protect=protect)
        self._call("on_save")

    def _call(self, event: str, **kwargs: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self.args, self.state, self.control, model=self.model, **kwargs)

    def add_callback(self, callback: TrainerCallback) -> None:
        self.callbacks.append(callback)

    # -- evaluation and prediction ----------------------------------------------------------------------
    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval") -> dict[str, float]:
        """{'eval_loss', compute_metrics' keys with the prefix, 'eval_runtime', 'eval_samples_per_second',
        'eval_steps_per_second', 'epoch'}; logged to log_history and metrics.jsonl."""
        rows = (self.eval_rows or []) if eval_dataset is None else read_rows(eval_dataset, self.accepted, "evaluation")
        if not rows and (eval_dataset is not None or not self.has_evaluation()):
            raise ValueError("Trainer.evaluate() needs an eval_dataset (in Trainer(...) or as an argument)")
        start = time.perf_counter()
        raw = self.evaluation_metrics(rows)
        runtime = time.perf_counter() - start
        metrics = {f"{metric_key_prefix}_{k}": _number(v) for k, v in raw.items()}
        n_batches = math.ceil(len(rows) / self.args.per_device_eval_batch_size)
        metrics.update({f"{metric_key_prefix}_runtime": round(runtime, 4),
                        f"{metric_key_prefix}_samples_per_second": round(len(rows) / max(runtime, 1e-9), 3),
                        f"{metric_key_prefix}_steps_per_second": round(n_batches / max(runtime, 1e-9), 3)})
        if self.state.global_step:
            metrics["epoch"] = round(self.state.epoch, 4)
        self._record(metrics, split="eval")
        if self._training:
            self._track_best(metrics)
        self._call("on_evaluate", metrics=metrics)
        if self._training:
            self._table.row(self._progress, self.state, self.args, self._last_train_log(), metrics)
        return metrics

    def _last_train_log(self) -> dict[str, Any] | None:
        return next((e for e in reversed(self.state.log_history) if "loss" in e), None)

    def evaluation_metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The unprefixed numbers of one evaluation: loss and compute_metrics'. Recipes with their own
        post-processing (QA answers from logits) override this, as HF's QuestionAnsweringTrainer does."""
        predictions, label_ids, loss = self.prediction_loop(rows)
        metrics: dict[str, Any] = {}
        if loss is not None:
            metrics["loss"] = loss
        if self.compute_metrics is not None and label_ids is not None:
            metrics.update(self.compute_metrics(EvalPrediction(predictions, label_ids)))
        return metrics

    def predict(self, test_dataset: Any, ignore_keys: list[str] | None = None,
                metric_key_prefix: str = "test") -> PredictionOutput:
        rows = read_rows(test_dataset, self.accepted, "test")
        start = time.perf_counter()
        predictions, label_ids, loss = self.prediction_loop(rows)
        metrics: dict[str, float] = {}
        if loss is not None:
            metrics[f"{metric_key_prefix}_loss"] = loss
        if self.compute_metrics is not None and label_ids is not None:
            for k, v in self.compute_metrics(EvalPrediction(predictions, label_ids)).items():
                metrics[f"{metric_key_prefix}_{k}"] = _number(v)
        runtime = time.perf_counter() - start
        metrics[f"{metric_key_prefix}_runtime"] = round(runtime, 4)
        metrics[f"{metric_key_prefix}_samples_per_second"] = round(len(rows) / max(runtime, 1e-9), 3)
        return PredictionOutput(predictions, label_ids, metrics)

    def prediction_loop(self, rows: list[dict[str, Any]]) -> tuple[Any, Any, float | None]:
        """(predictions, label_ids, mean loss) over rows, in the rows' order. Token-level outputs of different
        lengths are padded with -100 into one array, as HF does; QA gives (start_logits, end_logits)."""
        outputs, labels, loss = forward_in_batches(
            self.model, rows, self._collate, self.args.per_device_eval_batch_size, self.precision,
            label_names=tuple(self.args.label_names or LABEL_NAMES), transform=self.preprocess_logits_for_metrics)
        predictions = tuple(_stack_padded(v) for v in outputs.values())
        label_ids = tuple(_stack_padded(v) for v in labels.values())
        return (predictions[0] if len(predictions) == 1 else predictions,
                (label_ids[0] if len(label_ids) == 1 else label_ids) if label_ids else None, loss)

    # -- saving -----------------------------------------------------------------------------------------
    def save_model(self, output_dir: str | os.PathLike | None = None) -> None:
        """The model (config.json + model.safetensors), the tokenizer when given, and training_args.json."""
        folder = Path(output_dir or self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(folder)
        (folder / "training_args.json").write_text(json.dumps(self.args.to_dict(), indent=2, default=str))


def _flat_ints(value: Any) -> list[int]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and value and isinstance(value[0], int):
        return value
    return []


def _number(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _stack_padded(arrays: list[np.ndarray]) -> np.ndarray:
    """One array from rows of possibly different lengths along axis 0 of each row, padded with -100."""
    if not arrays:
        return np.zeros((0,))
    if arrays[0].ndim == 0 or all(a.shape == arrays[0].shape for a in arrays):
        return np.stack(arrays)
    length = max(a.shape[0] for a in arrays)
    out = np.full((len(arrays), length, *arrays[0].shape[1:]), -100, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out


class _Table:
    """The small table HF prints during training: Epoch | Training Loss | Validation Loss | metrics."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None

    def row(self, progress: Any, state: TrainerState, args: TrainingArguments, train: dict | None,
            evaluation: dict | None) -> None:
        by_epoch = (args.eval_strategy if evaluation is not None else args.logging_strategy) == "epoch"
        cells = {("Epoch" if by_epoch else "Step"): round(state.epoch) if by_epoch else state.global_step,
                 "Training Loss": f"{train['loss']:.6f}" if train else "No log"}
        if evaluation is not None:
            for key, value in evaluation.items():
                if key.startswith("eval_") and not key.endswith(("_runtime", "_per_second")):
                    name = "Validation Loss" if key == "eval_loss" else key[5:].replace("_", " ").title()
                    cells[name] = f"{value:.6f}" if isinstance(value, float) else value
        if self.columns is None:
            self.columns = list(cells)
            progress.write("\t".join(self.columns))
        progress.write("\t".join(str(cells.get(c, "")) for c in self.columns))
