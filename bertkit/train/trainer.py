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
  * fused AdamW (on CPU too), the loss stays on the device between log steps, bf16 autocast where the device has
    native bf16 (`bf16` unset), the encoder skips padding; evaluation runs in length-sorted batches.
A dataset is a HuggingFace `datasets.Dataset` (after `.map(tokenizer)`; a `label` column is taken as
`labels`), a `torch.utils.data.Dataset` of dicts, or a list of dicts; it is read once into memory.
Checkpoints are HF's `checkpoint-500/` folders, written atomically (`train/checkpoint.py`); `train(resume_from_checkpoint=
True)` continues the newest with the same data order, RNG and losses (HF's Trainer resumes them, and this one HF's).
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bertkit.data.collators import PaddingCollator
from bertkit.errors import UserError
from bertkit.model.bert import padding_outputs_unused
from bertkit.model.inference import (
    LABEL_NAMES,
    autocast,
    compile_for_training,
    forward_in_batches,
    resolve_device,
    resolve_precision,
    row_length,
)
from bertkit.train import data_parallel
from bertkit.train import distributed as dist_utils
from bertkit.train.arguments import NO_EFFECT, TrainingArguments, set_seed
from bertkit.train.callbacks import (
    EvalPrediction,
    PredictionOutput,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainOutput,
)
from bertkit.train.checkpoint import checkpoint_name, load_checkpoint, load_model_weights, prune_checkpoints, resume_path, save_checkpoint
from bertkit.train.console import TrainerConsole
from bertkit.train.hf_trainer_files import hf_trainer_state, resumed_state
from bertkit.train.losses import label_smoothed_loss, loss_of
from bertkit.train.metrics_log import MetricsLogger
from bertkit.train.optim import build_optimizer, get_scheduler, optimizer_step
from bertkit.train.reporters import reporting_callbacks
from bertkit.train.rows import (
    batch_order,
    check_training_rows,
    is_iterable_dataset,
    labelled_tokens_per_row,
    metric_inputs,
    read_rows,
    stack_padded,
    take_rows,
    trim_padding,
)

logger = logging.getLogger("bertkit")


@dataclass
class _Run:
    """One call of `train()`: its shape (steps, epochs), where it starts, and the losses it is summing."""

    lengths: list[int]
    steps_per_epoch: int
    max_steps: int
    num_epochs: int
    start_step: int
    resumed: bool
    scaler: Any
    total_loss: torch.Tensor  # summed on the device since this call started: no host sync per step
    logged_loss: torch.Tensor
    logged_steps: int = 0
    grad_norm: torch.Tensor | None = None
    started: float = 0.0
    loss_before: float = 0.0  # the resumed checkpoint's sum of the steps before it


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
        if self.args.full_determinism:  # HF's enable_full_determinism: deterministic kernels, at their speed
            torch.use_deterministic_algorithms(True, warn_only=True)
        if model is None:
            if model_init is None:
                raise UserError("Trainer needs a model (or a model_init function that builds one)")
            model = model_init()
        self.model_init = model_init
        self.model = model
        self.processing_class = processing_class if processing_class is not None else tokenizer
        self.tokenizer = self.processing_class
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        # torchrun / accelerate launch: the process group, and this rank's device
        self.world = data_parallel.join(resolve_device("cpu" if self.args.use_cpu else self.args.device))
        self.device = self.world.device
        reporting = reporting_callbacks(self.args.report_to) if self.world.is_main else []
        self.callbacks = [*reporting, *(callbacks or [])]
        self.optimizer, self.lr_scheduler = optimizers
        self._given_optimizers = optimizers  # a second train() builds fresh ones unless the caller gave them
        self.state = TrainerState()
        self.control = TrainerControl()
        self._training = False  # inside train(): evaluations print a table row
        self._tokens_per_row: float | None = None  # token-level labels: mean labelled tokens per training row
        self._logger: MetricsLogger | None = None  # the metrics.jsonl of the run in progress
        self._progress: Any = None  # its progress bar
        self._table = TrainerConsole()  # the rows printed under it (train/console.py)
        self._step_lr: float | None = None  # the learning rate the last step used
        unset = self.args.bf16 is None and not self.args.fp16  # the device's fast choice (fp16 only when asked)
        self.precision = resolve_precision(None, self.device).replace("fp16", "fp32") if unset else \
            "bf16" if self.args.bf16 else "fp16" if self.args.fp16 else "fp32"
        if self.precision == "fp16" and self.device.type != "cuda":
            raise UserError("fp16=True needs a CUDA GPU; on CPU leave it off (or use bf16=True)")
        pad_id = getattr(self.processing_class, "pad_token_id", None)
        if pad_id is None:
            pad_id = getattr(getattr(model, "config", None), "pad_token_id", 0) or 0
        self.data_collator = data_collator or PaddingCollator(pad_id, 16 if self.args.torch_compile else None)
        self.accepted = self._model_inputs() if self.args.remove_unused_columns else None
        self.sequential = self.args.train_sampling_strategy == "sequential"
        if is_iterable_dataset(train_dataset):  # HF's rule: an IterableDataset is read in order, for max_steps
            if self.args.max_steps <= 0:
                raise UserError("an IterableDataset has no length, so the number of steps cannot come from epochs: "
                                "set TrainingArguments(max_steps=N)")
            per_step = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
            train_dataset, self.sequential = take_rows(train_dataset, self.args.max_steps * per_step), True
        self.train_rows = read_rows(train_dataset, self.accepted, "training")
        self.eval_dataset = eval_dataset
        self.eval_rows = read_rows(eval_dataset, self.accepted, "evaluation") if eval_dataset is not None else None
        if self.args.eval_strategy != "no" and not self.has_evaluation():
            raise UserError(f"eval_strategy={self.args.eval_strategy!r} needs an eval_dataset: pass "
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

    def _collate(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.data_collator(rows)
        batch = dict(batch.items()) if not isinstance(batch, dict) else batch
        if not self.args.remove_unused_columns:  # HF's: the columns a custom compute_loss reads reach it
            for key in rows[0].keys() - batch.keys():
                try:
                    batch[key] = torch.tensor([row[key] for row in rows])
                except (TypeError, ValueError):  # text, ragged lists: not a tensor column
                    continue
        return trim_padding(batch)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        non_blocking = self.device.type == "cuda"
        return {k: v.to(self.device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        """The model's loss on one batch (HF's hook: override it for a custom loss; training, evaluate() and
        predict() all go through it). Models may return an output object or dict with `loss`, or a tuple whose
        first element is the loss, as HF's Trainer accepts. return_outputs=True: (loss, outputs)."""
        if return_outputs:
            outputs = model(**inputs)
            return loss_of(model, inputs, outputs), outputs
        smoothing = self.args.label_smoothing_factor
        if smoothing and "labels" in inputs:
            return label_smoothed_loss(model, inputs, smoothing)
        return loss_of(model, inputs, model(**inputs))

    @property
    def _on_plateau(self) -> bool:
        return isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

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
                                              num_warmup_steps=warmup, num_training_steps=num_training_steps,
                                              scheduler_specific_kwargs=self.args.lr_scheduler_kwargs)

    # -- training ---------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> TrainOutput:
        """Train, in four steps: prepare the run (schedule, optimizer, resumed state), the step loop (each step
        followed by its logging, evaluation and saving), then the final metrics."""
        if kwargs:
            raise TypeError(f"Trainer.train() got unexpected argument(s): {', '.join(sorted(kwargs))}")
        run = self._prepare_run(resume_from_checkpoint)
        log_dir = Path(self.args.logging_dir or self.args.output_dir)
        self._table = TrainerConsole()
        self._training = True
        self._call("on_train_begin")
        run.started = time.perf_counter()
        main = self.world.is_main  # only the main process writes (data_parallel.py)
        with MetricsLogger(log_dir / "metrics.jsonl", resume_step=run.start_step if run.resumed else None,
                           enabled=main) as self._logger, \
                tqdm(total=run.max_steps, initial=run.start_step, desc="train", dynamic_ncols=True,
                     disable=self.args.disable_tqdm or not main) as self._progress:
            if self.args.eval_on_start and not run.resumed:
                self.evaluate()
            self.model.train()
            for epoch in range(run.start_step // run.steps_per_epoch, run.num_epochs):
                self._call("on_epoch_begin")
                for micro_batches in self._epoch_steps(run, epoch):
                    self._call("on_step_begin")
                    step_loss, run.grad_norm = self.training_step(micro_batches, run.scaler)
                    self._count_step(run, epoch, step_loss)
                    if self._after_step(run):
                        break
                self._call("on_epoch_end")
                if self._finished(run):
                    break
            output = self._final_metrics(run)
        self._training, self._logger = False, None
        self._call("on_train_end")
        return output

    def _prepare_run(self, resume_from_checkpoint: str | bool | None) -> _Run:
        """Check the data, size the run, build the optimizer and schedule, and load the checkpoint to resume."""
        args = self.args
        check_training_rows(self.train_rows, self.eval_rows, self._collate, self.model)
        lengths = [row_length(r) for r in self.train_rows]
        self._tokens_per_row = labelled_tokens_per_row(self.train_rows)
        batches_per_epoch = math.ceil(len(lengths) / (args.per_device_train_batch_size * self.world.world_size))
        self._train_model = compile_for_training(dist_utils.wrap_ddp(self.model, self.world), args.torch_compile)
        steps_per_epoch = max(1, math.ceil(batches_per_epoch / args.gradient_accumulation_steps))
        max_steps = args.max_steps if args.max_steps > 0 else math.ceil(steps_per_epoch * args.num_train_epochs)
        num_epochs = math.ceil(max_steps / steps_per_epoch)
        self.optimizer, self.lr_scheduler = self._given_optimizers
        self.create_optimizer_and_scheduler(max_steps)
        if args.gradient_checkpointing and hasattr(self.model, "gradient_checkpointing_enable"):
            self.model.gradient_checkpointing_enable()
        scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.state = TrainerState(max_steps=max_steps, num_train_epochs=num_epochs)
        resume_from = resume_path(self.args.output_dir, resume_from_checkpoint)
        if resume_from is not None:
            saved = load_checkpoint(resume_from, self.model, self.optimizer, self.lr_scheduler,
                                    fallback=resume_from_checkpoint is True)  # True: the newest intact one
            self.state = resumed_state(self.state, saved["extra"], self.callbacks)
            if scaler is not None and "scaler" in saved["extra"]:
                scaler.load_state_dict(saved["extra"]["scaler"])
            logger.warning(f"resuming from {saved['path']} at step {self.state.global_step}")
        zero = torch.zeros((), device=self.device)
        return _Run(lengths, steps_per_epoch, max_steps, num_epochs, self.state.global_step, resume_from is not None,
                    scaler, total_loss=zero.clone(), logged_loss=zero.clone(), loss_before=self.state.train_loss_sum)

    def _epoch_steps(self, run: _Run, epoch: int) -> Iterator[list[list[int]]]:
        """The micro-batches (row indices) of each optimizer step left in `epoch`, in the seeded order a resumed
        run sees too."""
        args = self.args
        seed = (args.seed if args.data_seed is None else args.data_seed) + epoch
        order = batch_order(run.lengths, args.per_device_train_batch_size * self.world.world_size, seed,
                            args.group_by_length, shuffle=not self.sequential)
        done_in_epoch = self.state.global_step - epoch * run.steps_per_epoch  # > 0 only when resuming
        accumulate = args.gradient_accumulation_steps
        for step_in_epoch in range(done_in_epoch, run.steps_per_epoch):
            yield order[step_in_epoch * accumulate:(step_in_epoch + 1) * accumulate]

    def _count_step(self, run: _Run, epoch: int, step_loss: torch.Tensor) -> None:
        run.total_loss += step_loss
        run.logged_loss += step_loss
        run.logged_steps += 1
        self.state.global_step += 1
        self.state.epoch = epoch + (self.state.global_step - epoch * run.steps_per_epoch) / run.steps_per_epoch
        self._progress.update(1)
        self._call("on_step_end")

    def _after_step(self, run: _Run) -> bool:
        """Log, evaluate and save when their strategies say so; True when this epoch's loop is to stop."""
        args = self.args
        end_of_epoch = self.state.global_step % run.steps_per_epoch == 0
        last = self.state.global_step >= run.max_steps
        # the last step logs what is left, so a short run still shows its loss
        if (self._due(args.logging_strategy, args.logging_steps, end_of_epoch, last)
                or (last and args.logging_strategy == "steps")) and run.logged_steps:
            self._log_train(data_parallel.mean_over_ranks(run.logged_loss, self.world) / run.logged_steps, run.grad_norm)
            run.logged_loss, run.logged_steps = torch.zeros((), device=self.device), 0
        metrics = self.evaluate() if self._due(args.eval_strategy, args.eval_steps, end_of_epoch, last) else None
        if self._due(args.save_strategy, args.save_steps, end_of_epoch, last) or \
                (args.save_strategy == "best" and metrics is not None):
            self.state.train_loss_sum = run.loss_before + float(data_parallel.mean_over_ranks(run.total_loss, self.world))
            self._save(metrics, run.scaler)
        return last or self.control.should_training_stop

    def _finished(self, run: _Run) -> bool:
        return self.state.global_step >= run.max_steps or self.control.should_training_stop

    def _final_metrics(self, run: _Run) -> TrainOutput:
        """The summary HF's train() returns and logs; the best model is loaded back first when asked for."""
        args = self.args
        runtime = time.perf_counter() - run.started
        trained_steps = self.state.global_step - run.start_step
        # the mean over every step of the run, those before a resume included (their sum came with the checkpoint)
        self.state.train_loss_sum = run.loss_before + float(data_parallel.mean_over_ranks(run.total_loss, self.world))
        train_loss = self.state.train_loss_sum / max(1, self.state.global_step)
        if self.world.is_main and args.save_total_limit == 1 and self.state.best_model_checkpoint:
            prune_checkpoints(Path(args.output_dir), 1, {Path(self.state.best_model_checkpoint).name})  # as HF does
        if args.load_best_model_at_end and self.state.best_model_checkpoint:
            load_model_weights(self.model, self.state.best_model_checkpoint)
            logger.info(f"loaded the best model from {self.state.best_model_checkpoint} "
                        f"({args.best_metric_key}={self.state.best_metric})")
        examples = trained_steps * args.per_device_train_batch_size * args.gradient_accumulation_steps
        metrics = {"train_runtime": round(runtime, 4),
                   "train_samples_per_second": round(min(examples, len(run.lengths) * args.num_train_epochs)
                                                     / max(runtime, 1e-9), 3),
                   "train_steps_per_second": round(trained_steps / max(runtime, 1e-9), 3),
                   "train_loss": train_loss, "epoch": round(self.state.epoch, 4)}
        self._record(dict(metrics), split="train_end")
        return TrainOutput(self.state.global_step, train_loss, metrics)

    def training_step(self, micro_batches: list[list[int]], scaler: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimizer step over the micro-batches of row indices (gradient accumulation): forward and backward
        each, clip, step the optimizer and the schedule. Returns (the step's mean loss, the gradient norm), both
        still on the device."""
        rows_in_step = sum(len(b) for b in micro_batches)  # the global batch's, over every rank
        ranks = self.world.world_size  # DDP averages the ranks' gradients: each rank's share is scaled back up
        step_loss = torch.zeros((), device=self.device)
        for position, global_indices in enumerate(micro_batches):
            if position:
                self._call("on_substep_end")
            indices, counts = data_parallel.rank_share(global_indices, self.world)
            batch = self._to_device(self._collate([self.train_rows[i] for i in indices]))
            last = position == len(micro_batches) - 1  # the gradient all-reduce waits for the last micro-batch
            sync = contextlib.nullcontext() if last or not hasattr(self._train_model, "no_sync") \
                else self._train_model.no_sync()
            with sync, autocast(self.device, self.precision), padding_outputs_unused():
                loss = self.compute_loss(self._train_model, batch)
            # Each micro-batch weighs by its rows, so an uneven last batch counts what it holds. Token-level losses
            # (NER) are means over a batch's labelled tokens: weighing the batch by its labelled tokens instead
            # makes every token count the same whatever the batch, so length-grouped batches of short sentences do
            # not outweigh the long ones (the epoch's objective is the token mean, as with random batches).
            labels = batch.get("labels")
            if self._tokens_per_row and labels is not None and labels.dim() == 2:
                weight = (labels != -100).sum() * ranks * counts / (self._tokens_per_row * rows_in_step)
            else:
                weight = len(indices) * ranks * counts / rows_in_step
            scaled = loss * weight
            with sync:
                (scaler.scale(scaled) if scaler else scaled).backward()
            step_loss += scaled.detach()
        self._step_lr = self.lr_scheduler.get_last_lr()[0]  # the rate this step uses (HF 5 logs it)
        grad_norm = optimizer_step(self.optimizer, self.args.max_grad_norm, scaler)
        if not self._on_plateau:  # that one steps on the evaluation's metric (evaluate)
            self.lr_scheduler.step()
        return step_loss, grad_norm

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
        self._table.row(self._progress, self.state, self.args, logs, None)  # printed as the console's mode says

    def log(self, logs: dict[str, float]) -> None:
        """Append to log_history and metrics.jsonl (HF's Trainer.log)."""
        self._record(logs, split="train")

    def _record(self, logs: dict[str, Any], split: str) -> None:
        entry = {**logs, "step": self.state.global_step}
        self.state.log_history.append(entry)
        metrics_log = self._logger
        if metrics_log is None and self.state.global_step:  # evaluate() after train(): append to that run's log
            metrics_log = MetricsLogger(Path(self.args.logging_dir or self.args.output_dir) / "metrics.jsonl",
                                        resume_step=self.state.global_step, enabled=self.world.is_main)
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
        if args.best_metric_key not in metrics:
            if args.load_best_model_at_end or args.save_strategy == "best":
                raise UserError(f"metric_for_best {args.best_metric_key[5:]!r} is not among the evaluation's "
                                 f"metrics {sorted(k[5:] for k in metrics if k.startswith('eval_'))}; pick one of those")
            return
        value, best = float(metrics[args.best_metric_key]), self.state.best_metric
        if best is None or (value > best if args.best_is_greater else value < best):
            self.state.best_metric, self.state.best_global_step = value, self.state.global_step

    def _save(self, metrics: dict[str, float] | None, scaler: Any) -> None:
        args = self.args
        is_best = self.state.best_global_step == self.state.global_step
        if args.save_strategy == "best" and not is_best:
            return
        if is_best:
            self.state.best_model_checkpoint = str(Path(args.output_dir) / checkpoint_name(self.state.global_step, "hf"))
        extra = {"trainer_state": hf_trainer_state(self.state, args, self.callbacks, self.control),
                 "train_loss_sum": self.state.train_loss_sum}
        if scaler is not None:
            extra["scaler"] = scaler.state_dict()
        protect = [Path(self.state.best_model_checkpoint).name] if self.state.best_model_checkpoint else []
        only_model = args.save_only_model
        save_checkpoint(args.output_dir, self.state.global_step, self.model, tokenizer=self.processing_class,
                        optimizer=None if only_model else self.optimizer,
                        scheduler=None if only_model else self.lr_scheduler, extra=extra,
                        keep_last=args.save_total_limit, protect=protect, layout="hf")
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
            raise UserError("Trainer.evaluate() needs an eval_dataset (in Trainer(...) or as an argument)")
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
            if self._on_plateau and self.args.best_metric_key in metrics:
                self.lr_scheduler.step(metrics[self.args.best_metric_key])
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
            metrics.update(self.compute_metrics(EvalPrediction(
                predictions, label_ids, metric_inputs(rows, self.args.include_for_metrics), self._row_losses)))
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
            for k, v in self.compute_metrics(EvalPrediction(
                predictions, label_ids, metric_inputs(rows, self.args.include_for_metrics), self._row_losses)).items():
                metrics[f"{metric_key_prefix}_{k}"] = _number(v)
        runtime = time.perf_counter() - start
        metrics[f"{metric_key_prefix}_runtime"] = round(runtime, 4)
        metrics[f"{metric_key_prefix}_samples_per_second"] = round(len(rows) / max(runtime, 1e-9), 3)
        return PredictionOutput(predictions, label_ids, metrics)

    def prediction_loop(self, rows: list[dict[str, Any]]) -> tuple[Any, Any, float | None]:
        """(predictions, label_ids, mean loss) over rows, in the rows' order. Token-level outputs of different
        lengths are padded with -100 into one array, as HF does; QA gives (start_logits, end_logits)."""
        # a subclass's compute_loss gives evaluation's loss too, as in HF; the model's own otherwise
        custom = type(self).compute_loss is not Trainer.compute_loss
        outputs, labels, loss = forward_in_batches(
            self.model, rows, self._collate, self.args.per_device_eval_batch_size, self.precision,
            label_names=tuple(self.args.label_names or LABEL_NAMES), transform=self.preprocess_logits_for_metrics,
            run=self._evaluation_loss if custom else None, row_losses="loss" in self.args.include_for_metrics)
        self._row_losses = np.stack(outputs.pop("losses")) if "losses" in outputs else None
        predictions = tuple(stack_padded(v) for v in outputs.values())
        label_ids = tuple(stack_padded(v) for v in labels.values())
        return (predictions[0] if len(predictions) == 1 else predictions,
                (label_ids[0] if len(label_ids) == 1 else label_ids) if label_ids else None, loss)

    def _evaluation_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        has_labels = any(name in batch for name in (self.args.label_names or LABEL_NAMES))
        if not has_labels:
            return None, model(**batch, return_dict=True)
        return self.compute_loss(model, batch, return_outputs=True)

    def hyperparameter_search(self, *args: Any, **kwargs: Any) -> Any:
        """HF's hyperparameter search on optuna (train/hyperparameter_search.py)."""
        from bertkit.train.hyperparameter_search import hyperparameter_search

        return hyperparameter_search(self, *args, **kwargs)

    # -- saving -----------------------------------------------------------------------------------------
    def save_model(self, output_dir: str | os.PathLike | None = None) -> None:
        """The model (config.json + model.safetensors), the tokenizer when given, and training_args.json (by the
        main process only, under torchrun)."""
        if not self.world.is_main:
            return
        folder = Path(output_dir or self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(folder)
        (folder / "training_args.json").write_text(json.dumps(self.args.to_dict(), indent=2, default=str))


def _number(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value
