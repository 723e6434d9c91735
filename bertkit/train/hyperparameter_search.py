"""HF's `Trainer.hyperparameter_search` on optuna (when installed): each trial builds a fresh model with
`model_init`, sets the trial's TrainingArguments fields, trains, evaluates, and reports the objective.

    trainer = Trainer(model_init=lambda: BertForSequenceClassification.from_pretrained(folder), args=args, ...)
    best = trainer.hyperparameter_search(direction="maximize", n_trials=10,
                                         hp_space=lambda trial: {"learning_rate": trial.suggest_float(
                                             "learning_rate", 1e-5, 1e-3, log=True)})
    best.hyperparameters        # {'learning_rate': ...}
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

from bertkit.errors import UserError
from bertkit.utils.extras import require_extra


class BestRun(NamedTuple):
    run_id: str
    objective: float
    hyperparameters: dict[str, Any]
    run_summary: Any = None


def default_compute_objective(metrics: dict[str, float]) -> float:
    """HF's default: the evaluation loss when there are no other metrics, else the sum of the metrics (speed
    figures and the epoch left out)."""
    rest = {k: v for k, v in metrics.items() if k not in ("eval_loss", "epoch")
            and not k.endswith(("_runtime", "_per_second"))}
    return metrics.get("eval_loss", 0.0) if not rest else sum(rest.values())


def default_hp_space(trial: Any) -> dict[str, Any]:
    """HF's default optuna space."""
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-6, 1e-4, log=True),
            "num_train_epochs": trial.suggest_int("num_train_epochs", 1, 5),
            "seed": trial.suggest_int("seed", 1, 40),
            "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [4, 8, 16, 32, 64])}


def hyperparameter_search(trainer: Any, hp_space: Callable[[Any], dict[str, Any]] | None = None,
                          compute_objective: Callable[[dict[str, float]], float] | None = None, n_trials: int = 20,
                          direction: str = "minimize", backend: str | None = None,
                          hp_name: Callable[[Any], str] | None = None, **study_kwargs: Any) -> BestRun:
    if backend not in (None, "optuna"):
        raise UserError(f"hyperparameter_search runs on optuna; backend={backend!r} is not available here")
    if trainer.model_init is None:
        raise UserError("hyperparameter_search needs Trainer(model_init=...): every trial starts from a fresh model")
    if not trainer.has_evaluation():
        raise UserError("hyperparameter_search needs an eval_dataset: the objective comes from evaluate()")
    optuna = require_extra("optuna", "dev", "hyperparameter_search")
    space, objective_of = hp_space or default_hp_space, compute_objective or default_compute_objective
    base = trainer.args

    def objective(trial: Any) -> float:
        values = space(trial)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(base)})
        if unknown:
            raise UserError(f"hp_space gave {unknown}, which are not TrainingArguments fields")
        trainer.args = dataclasses.replace(base, **values)
        trainer.model = trainer.model_init().to(trainer.device)
        trainer.train()
        return objective_of(trainer.evaluate())

    study = optuna.create_study(direction=direction, **study_kwargs)
    study.optimize(objective, n_trials=n_trials)
    trainer.args = base
    best = study.best_trial
    return BestRun(str(best.number), best.value, best.params, study)
