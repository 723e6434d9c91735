"""What training prints on the console: one progress bar, and under it a few one-line summaries. Every logged row
goes to the run's metrics.jsonl whatever the console shows.

    from bertkit.train.console import console_mode
    with console_mode("rows"):        # HF's table row at every logging step too (what --verbose asks for)
        trainer.train()

The modes:
  * "summary" (the default): the progress bar; HF's table (Epoch/Step | Training Loss | Validation Loss |
    metrics) with a row per evaluation, and, when nothing is evaluated, a row per epoch or about every tenth of the
    run (at most ~10 rows of training loss, whatever `logging_steps`); pretraining prints a line per evaluation.
  * "rows": a row at every logging step as well (while evaluating, as the dict HF's console prints), and
    pretraining's training metrics every `log_every` steps.
  * "bar": the progress bar only, for a caller that prints its own results (the demo).
Which one: the mode set by `console_mode` / `set_console_mode` (the commands' `--verbose`, the demo) when there is
one; else "rows" when the "bertkit" logger is at INFO or DEBUG (`bertkit.utils.logging.set_verbosity_info()`) or
when `TrainingArguments(logging_steps=...)` asks for something other than HF's default of 500 steps; else
"summary".
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Iterator

MODES = ("summary", "rows", "bar")
DEFAULT_LOGGING_STEPS = 500  # TrainingArguments' (HF's) default: another value is the user asking for rows

_mode: str | None = None


def set_console_mode(mode: str | None) -> None:
    """Set the console mode for every run that follows ("summary", "rows", "bar"; None: the rule above)."""
    global _mode
    if mode is not None and mode not in MODES:
        raise ValueError(f"console mode must be one of {', '.join(MODES)} or None, got {mode!r}")
    _mode = mode


@contextlib.contextmanager
def console_mode(mode: str | None) -> Iterator[None]:
    """`set_console_mode(mode)` for the runs inside the block, then the mode before it again."""
    before = _mode
    set_console_mode(mode)
    try:
        yield
    finally:
        set_console_mode(before)


def verbose_logging() -> bool:
    """The "bertkit" logger is at INFO or below (`set_verbosity_info()` / `set_verbosity_debug()`)."""
    return logging.getLogger("bertkit").getEffectiveLevel() <= logging.INFO


def resolve_console_mode(args: Any = None) -> str:
    """The mode a run prints in (see the module's docstring); `args`: its TrainingArguments, if any."""
    if _mode is not None:
        return _mode
    if verbose_logging():
        return "rows"
    if args is not None and int(getattr(args, "logging_steps", DEFAULT_LOGGING_STEPS)) != DEFAULT_LOGGING_STEPS:
        return "rows"
    return "summary"


class ConsoleTable:
    """The small table HF prints during training: Epoch | Training Loss | Validation Loss | metrics, under the
    progress bar (written through it, so the bar stays whole)."""

    def __init__(self) -> None:
        self.columns: list[str] | None = None

    def row(self, progress: Any, state: Any, args: Any, train: dict | None, evaluation: dict | None) -> None:
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


class TrainerConsole:
    """The Trainer's console under its progress bar: `row` is called at each training log (when nothing is
    evaluated) and at each evaluation, and prints HF's table row when the mode says so."""

    def __init__(self) -> None:
        self.table = ConsoleTable()
        self.next_summary = 0  # "summary" mode, training logs: the first step of the next tenth of the run

    def row(self, progress: Any, state: Any, args: Any, train: dict | None, evaluation: dict | None) -> None:
        mode = resolve_console_mode(args)
        if mode == "bar":
            return
        if evaluation is None and args.eval_strategy != "no":  # the evaluations' rows carry the training loss
            if mode == "rows":  # every logging step as well, as HF's console prints it
                progress.write(str({k: v for k, v in train.items() if k != "step"}))
            return
        if evaluation is None and mode == "summary" and args.logging_strategy != "epoch":
            last = state.max_steps and state.global_step >= state.max_steps
            if state.global_step < self.next_summary and not last:
                return
            self.next_summary = state.global_step + max(1, math.ceil((state.max_steps or 1) / 10))
        self.table.row(progress, state, args, train, evaluation)


def pretrain_lines(mode: str | None = None) -> tuple[bool, bool]:
    """Pretraining: (print its training metrics every log_every steps, print a line per evaluation)."""
    mode = mode or resolve_console_mode()
    return mode == "rows", mode != "bar"
