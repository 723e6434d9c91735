"""`report_to`: the Trainer's metrics sent to the tools people watch runs with, as TrainerCallbacks (as HF does).

    TrainingArguments(output_dir="runs/x", report_to="tensorboard")   # event files under logging_dir
    tensorboard --logdir runs/x

"tensorboard" writes event files with torch's SummaryWriter (the `tensorboard` package); "wandb" and "mlflow" log
through their packages when installed (configured as those packages read their settings: WANDB_API_KEY / `wandb
login`, MLFLOW_TRACKING_URI). A tool that is not installed is said once and skipped; "all" means every installed
one, "none" (or None) none. metrics.jsonl is written in every case.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from bertkit.errors import UserError
from bertkit.train.callbacks import TrainerCallback

logger = logging.getLogger("bertkit")
TOOLS = ("tensorboard", "wandb", "mlflow")


def _numbers(logs: dict[str, Any] | None) -> dict[str, float]:
    return {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardCallback(TrainerCallback):
    """Each logged number as a TensorBoard scalar at the step it was logged (train/loss, eval/accuracy, ...)."""

    def __init__(self) -> None:
        self.writer: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        from torch.utils.tensorboard import SummaryWriter

        if self.writer is None:
            self.writer = SummaryWriter(log_dir=str(Path(args.logging_dir or args.output_dir)))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.writer is None:
            return
        for key, value in _numbers(logs).items():
            name = f"eval/{key[5:]}" if key.startswith("eval_") else key if "/" in key else f"train/{key}"
            self.writer.add_scalar(name, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WandbCallback(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        import wandb

        if wandb.run is None:
            wandb.init(name=getattr(args, "run_name", None), config=args.to_dict())

    def on_log(self, args, state, control, logs=None, **kwargs):
        import wandb

        wandb.log(_numbers(logs), step=state.global_step)


class MLflowCallback(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        import mlflow

        if mlflow.active_run() is None:
            mlflow.start_run()

    def on_log(self, args, state, control, logs=None, **kwargs):
        import mlflow

        mlflow.log_metrics(_numbers(logs), step=state.global_step)


CALLBACKS = {"tensorboard": TensorBoardCallback, "wandb": WandbCallback, "mlflow": MLflowCallback}
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def reporting_callbacks(report_to: Any) -> list[TrainerCallback]:
    """The callbacks `report_to` asks for (a name, a list of names, "all" or "none")."""
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if names in (["none"], ["None"]) or not names:
        return []
    if "all" in names:
        names = [tool for tool in TOOLS if importlib.util.find_spec(PACKAGES[tool])]
    unknown = sorted(set(names) - set(TOOLS))
    if unknown:
        raise UserError(f"report_to {unknown} is not one bertkit reports to; choose from {', '.join(TOOLS)}, "
                        "'all' or 'none'")
    callbacks = []
    for name in names:
        if importlib.util.find_spec(PACKAGES[name]) is None:
            logger.warning(f"TrainingArguments report_to={name!r} has no effect in bertkit: {PACKAGES[name]} is not "
                           f"installed (pip install {PACKAGES[name]}); metrics.jsonl is written anyway")
            continue
        callbacks.append(CALLBACKS[name]())
    return callbacks
