"""What the Trainer tells its callers and its callbacks: HF's `TrainOutput`, `EvalPrediction`,
`PredictionOutput`, `TrainerState`, `TrainerControl`, `TrainerCallback` and `EarlyStoppingCallback`.

    class PrintLoss(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            print(state.global_step, logs.get("loss"))
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, float]


class EvalPrediction:
    """What compute_metrics gets: predictions (a numpy array, or a tuple of them: QA's start and end logits),
    label_ids, and with `include_for_metrics` the inputs' ids (padded with -100) and each row's batch loss. It
    unpacks as HF's does: `predictions, labels = eval_pred` (plus inputs / losses when they were asked for)."""

    def __init__(self, predictions: Any, label_ids: Any, inputs: Any = None, losses: Any = None) -> None:
        self.predictions, self.label_ids, self.inputs, self.losses = predictions, label_ids, inputs, losses
        self.elements = (predictions, label_ids) + tuple(x for x in (inputs, losses) if x is not None)

    def __iter__(self) -> Any:
        return iter(self.elements)

    def __getitem__(self, index: int) -> Any:
        return self.elements[index]

    def __len__(self) -> int:
        return len(self.elements)


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
    train_loss_sum: float = 0.0  # the summed step losses up to the last checkpoint: a resumed run's mean covers it all


@dataclass
class TrainerControl:
    should_training_stop: bool = False


class TrainerCallback:
    """Override the events you need; each gets (args, state, control, **kwargs) as in HF."""

    def on_train_begin(self, args, state, control, **kwargs): ...
    def on_epoch_begin(self, args, state, control, **kwargs): ...
    def on_step_begin(self, args, state, control, **kwargs): ...
    def on_substep_end(self, args, state, control, **kwargs): ...  # after each accumulated micro-batch but the last
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
        value = (metrics or {}).get(args.best_metric_key)
        if value is None:
            return
        sign = 1 if args.best_is_greater else -1
        if self.best is None or sign * (value - self.best) > self.threshold:
            self.best, self.bad_evaluations = value, 0
        else:
            self.bad_evaluations += 1
            control.should_training_stop = self.bad_evaluations >= self.patience
