"""HF's `TrainingArguments`: the settings of a training run, with HF's names (transformers 4 and 5 spellings).

    args = TrainingArguments(output_dir="results", num_train_epochs=2, eval_strategy="epoch")

Unknown names are an error that suggests the closest known one; HF names that change nothing in bertkit are
accepted and said once by the Trainer (`NO_EFFECT`). `set_seed` is HF's too.
"""
from __future__ import annotations

import dataclasses
import difflib
import enum
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bertkit.errors import UserError


class IntervalStrategy(str, enum.Enum):
    """HF's names for when to log, evaluate and save; TrainingArguments takes these or their strings."""

    NO = "no"
    STEPS = "steps"
    EPOCH = "epoch"


STRATEGIES = ("no", "steps", "epoch")
# HF arguments bertkit accepts but that change nothing here (each said once when set)
NO_EFFECT = {
    "dataloader_num_workers": "batches are built in the main process from in-memory rows",
    "dataloader_pin_memory": "batches are built in the main process",
    "logging_first_step": "the first step is not logged separately",
    "overwrite_output_dir": "output_dir is always written into",
    "run_name": "only local logging is done", "push_to_hub": "nothing is uploaded",
    "save_safetensors": "weights are always saved as safetensors", "optim": "the optimizer is fused AdamW",
    "ddp_find_unused_parameters": "every parameter of a BERT head takes part in its loss", "local_rank": None,
    "eval_accumulation_steps": "predictions are gathered on the CPU as they come",
    "disable_tqdm": None,
}


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every GPU), as HF's `set_seed` does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


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
    lr_scheduler_kwargs: dict[str, Any] | None = None  # the schedule's own (num_cycles, min_lr, num_decay_steps, ...)
    label_smoothing_factor: float = 0.0
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
    bf16: bool | None = None  # None (unset): bf16 autocast where the device runs it natively, said once (HF: False)
    fp16: bool = False
    use_cpu: bool = False
    group_by_length: bool = True  # bertkit's default (HF: False): batches of similar lengths pad little
    train_sampling_strategy: str | None = None  # transformers 5's spelling: "random", "sequential", "group_by_length"
    data_seed: int | None = None  # the batch order's seed (default: seed)
    eval_on_start: bool = False  # one evaluation before the first step (a sanity check of the pipeline)
    full_determinism: bool = False  # deterministic torch kernels too (slower), as HF's enable_full_determinism
    save_only_model: bool = False  # checkpoints hold the model only: smaller, but they cannot resume a run
    remove_unused_columns: bool = True
    include_for_metrics: list[str] = field(default_factory=list)  # "inputs" and/or "loss": EvalPrediction carries them
    gradient_checkpointing: bool = False
    torch_compile: bool = False  # compile the training step (opt-in: on CPU it did not pay; see compile_for_training)
    disable_tqdm: bool = False
    label_names: list[str] | None = None
    report_to: Any = None  # "tensorboard", "wandb", "mlflow", a list of them, "all" or "none" (train/reporters.py)
    dataloader_num_workers: int = 0
    do_train: bool = False  # read by scripts (HF's too), not by the Trainer: train() trains
    do_eval: bool = False
    do_predict: bool = False
    device: str = "auto"  # bertkit: "auto" (cuda when available), "cpu", "cuda", "cuda:1"
    # init=False: dataclasses.replace(args, ...) copies the rest through __init__
    ignored: dict[str, Any] = field(default_factory=dict, repr=False, init=False)  # accepted HF names without effect here

    def __init__(self, output_dir: str | None = None, **kwargs: Any) -> None:
        if "evaluation_strategy" in kwargs:  # the seeds' (transformers 4) spelling
            if "eval_strategy" in kwargs:
                raise UserError("pass eval_strategy or its old name evaluation_strategy, not both")
            kwargs["eval_strategy"] = kwargs.pop("evaluation_strategy")
        if kwargs.pop("include_inputs_for_metrics", False):  # transformers 4's spelling
            kwargs["include_for_metrics"] = [*kwargs.get("include_for_metrics", []), "inputs"]
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
        self.ignored = {**ignored, **{k: kwargs[k] for k in ("dataloader_num_workers",)
                                      if kwargs.get(k) not in (None, 0)}}
        self._validate()

    def _validate(self) -> None:
        for name in ("eval_strategy", "logging_strategy", "save_strategy"):
            value = getattr(self, name)
            value = getattr(value, "value", value)  # an enum from HF code
            setattr(self, name, value)
            allowed = STRATEGIES + (("best",) if name == "save_strategy" else ())
            if value not in allowed:
                raise UserError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.fp16 and self.bf16:
            raise UserError("pass bf16=True or fp16=True, not both")
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.eval_steps is None:
            self.eval_steps = self.logging_steps
        if self.train_sampling_strategy is not None:
            if self.train_sampling_strategy not in ("random", "sequential", "group_by_length"):
                raise UserError(f"train_sampling_strategy must be random, sequential or group_by_length, got "
                                f"{self.train_sampling_strategy!r}")
            self.group_by_length = self.train_sampling_strategy == "group_by_length"
        if unknown := set(self.include_for_metrics) - {"inputs", "loss"}:
            raise UserError(f"include_for_metrics takes 'inputs' and 'loss', got {sorted(unknown)}")
        if not 0.0 <= self.label_smoothing_factor < 1.0:
            raise UserError(f"label_smoothing_factor must be in [0, 1), got {self.label_smoothing_factor}")
        if getattr(self.lr_scheduler_type, "value", self.lr_scheduler_type) == "reduce_lr_on_plateau" and \
                self.eval_strategy == "no":
            raise UserError("lr_scheduler_type='reduce_lr_on_plateau' steps on the evaluation's metric: set "
                            "eval_strategy='epoch' or 'steps'")
        if self.load_best_model_at_end:
            if self.eval_strategy == "no":
                raise UserError("load_best_model_at_end needs an evaluation: set eval_strategy='epoch' or 'steps'")
            if self.save_strategy not in (self.eval_strategy, "best"):
                raise UserError(f"load_best_model_at_end needs save_strategy equal to eval_strategy "
                                 f"({self.eval_strategy!r}), got {self.save_strategy!r}")

    @property
    def best_metric_key(self) -> str:
        """The evaluation key that picks the best checkpoint: `metric_for_best_model` with HF's "eval_" prefix, the
        loss when unset (left None here, not filled in as HF does, so a recipe can still put its task's metric)."""
        metric = self.metric_for_best_model or "loss"
        return metric if metric.startswith("eval_") else f"eval_{metric}"

    @property
    def best_is_greater(self) -> bool:
        if self.greater_is_better is not None:
            return bool(self.greater_is_better)
        return not self.best_metric_key.endswith("loss")

    @property
    def train_batch_size(self) -> int:
        return self.per_device_train_batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.per_device_eval_batch_size

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
