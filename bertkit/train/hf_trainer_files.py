"""The files of HF's Trainer checkpoints (`checkpoint-N/`), written and read, so that HF's Trainer resumes a run
bertkit's Trainer started and bertkit's resumes HF's.

Beside the model and tokenizer files, an HF checkpoint holds:

    trainer_state.json      TrainerState as JSON (global_step, epoch, log_history, best_*, stateful_callbacks ...)
    optimizer.pt            optimizer.state_dict()          (absent with save_only_model)
    scheduler.pt            lr_scheduler.state_dict()       (absent with save_only_model)
    rng_state.pth           {"python", "numpy", "cpu", "cuda"}; rng_state_<rank>.pth per process under torchrun
    scaler.pt               the fp16 GradScaler's state, when there is one

and bertkit adds `bertkit_state.json` for what HF's files have no field for (the summed training loss, so a
resumed run's mean covers every step); HF ignores it. Reading returns the same dict as bertkit's own
`training_state.pt` holds ({"step", "optimizer", "scheduler", "rng", "extra"}), so `checkpoint.py` restores either.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertkit.errors import MissingFileError, UserError
from bertkit.files import read_json_object
from bertkit.model.hf_checkpoint import load_pickle

PREFIX = "checkpoint-"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER, SCHEDULER, SCALER = "optimizer.pt", "scheduler.pt", "scaler.pt"
OWN_STATE = "bertkit_state.json"


def is_hf_checkpoint(folder: Path) -> bool:
    return (folder / TRAINER_STATE).is_file()


# ---------------------------------------------------------------- RNG states, HF's form <-> bertkit's
def hf_rng(ours: dict[str, Any], world_size: int) -> dict[str, Any]:
    """bertkit's `rng_state()` dict in the form HF's Trainer saves (numpy's tuple, "cpu", and "cuda" as one
    state on a single process, as HF's non-distributed run saves it)."""
    n = ours["numpy"]
    state = {"python": ours["python"],
             "numpy": (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]),
             "cpu": ours["torch"]}
    if "cuda" in ours:
        state["cuda"] = ours["cuda"] if world_size > 1 else ours["cuda"][min(torch.cuda.current_device(), len(ours["cuda"]) - 1)]
    return state


def ours_rng(hf: dict[str, Any]) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = hf["numpy"]
    state = {"python": hf["python"],
             "numpy": {"name": name, "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "torch": hf["cpu"]}
    if "cuda" in hf:
        state["cuda"] = list(hf["cuda"]) if isinstance(hf["cuda"], (list, tuple)) else [hf["cuda"]]
    return state


def _numpy_rng_types() -> list[Any]:
    """What numpy's RNG state pickles to: allowed for `torch.load(weights_only=True)` (as HF's Trainer allows)."""
    core = np._core if hasattr(np, "_core") else np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


# ---------------------------------------------------------------- trainer_state.json
def hf_trainer_state(state: Any, args: Any, callbacks: list[Any], control: Any) -> dict[str, Any]:
    """bertkit's TrainerState as HF's trainer_state.json: HF's fields only (HF's reader refuses others)."""
    ours = dataclasses.asdict(state)

    def steps(value: float | None) -> int | None:  # HF stores a fraction of max_steps as a count
        return value if value is None or value >= 1 else math.ceil(state.max_steps * value)

    stateful: dict[str, Any] = {"TrainerControl": {"args": {
        "should_training_stop": bool(control.should_training_stop), "should_epoch_stop": False,
        "should_save": False, "should_evaluate": False, "should_log": False}, "attributes": {}}}
    for callback in callbacks:
        if type(callback).__name__ == "EarlyStoppingCallback":
            stateful["EarlyStoppingCallback"] = {
                "args": {"early_stopping_patience": callback.patience,
                         "early_stopping_threshold": callback.threshold},
                "attributes": {"early_stopping_patience_counter": callback.bad_evaluations}}
    return {"epoch": ours["epoch"], "global_step": ours["global_step"], "max_steps": ours["max_steps"],
            "logging_steps": steps(args.logging_steps), "eval_steps": steps(args.eval_steps),
            "save_steps": steps(args.save_steps), "train_batch_size": args.per_device_train_batch_size,
            "num_train_epochs": ours["num_train_epochs"], "num_input_tokens_seen": 0, "total_flos": 0,
            "log_history": ours["log_history"], "best_metric": ours["best_metric"],
            "best_global_step": ours["best_global_step"], "best_model_checkpoint": ours["best_model_checkpoint"],
            "is_local_process_zero": True, "is_world_process_zero": True, "is_hyper_param_search": False,
            "trial_name": None, "trial_params": None, "stateful_callbacks": stateful}


def restore_callbacks(hf_state: dict[str, Any], callbacks: list[Any]) -> None:
    """Early stopping's count of evaluations without improvement, as HF restores it from stateful_callbacks."""
    saved = (hf_state.get("stateful_callbacks") or {}).get("EarlyStoppingCallback")
    saved = saved[0] if isinstance(saved, list) and saved else saved
    if not isinstance(saved, dict):
        return
    for callback in callbacks:
        if type(callback).__name__ == "EarlyStoppingCallback":
            callback.bad_evaluations = int(saved.get("attributes", {}).get("early_stopping_patience_counter", 0))
            callback.best = hf_state.get("best_metric")


def resumed_state(fresh: Any, extra: dict[str, Any], callbacks: list[Any]) -> Any:
    """The TrainerState of a resumed run: the checkpoint's fields (from HF's trainer_state.json, or an older bertkit
    checkpoint's dict) over the fresh run's max_steps and num_train_epochs; early stopping's count restored."""
    saved = extra.get("trainer_state") or {}
    fields = {f.name for f in dataclasses.fields(fresh)} - {"max_steps", "num_train_epochs"}
    state = dataclasses.replace(fresh, **{k: v for k, v in saved.items() if k in fields})
    if "train_loss_sum" in extra:
        state.train_loss_sum = float(extra["train_loss_sum"])
    elif "train_loss_sum" not in saved:  # a checkpoint HF's Trainer wrote
        state.train_loss_sum = logged_loss_sum(state.log_history, state.global_step)
    restore_callbacks(saved, callbacks)
    return state


def logged_loss_sum(log_history: list[dict[str, Any]], up_to_step: int) -> float:
    """The summed step losses of a run whose checkpoint has no bertkit_state.json (one HF wrote), rebuilt from
    its logged means (each covers the steps since the log before it)."""
    total, previous = 0.0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry and previous < entry["step"] <= up_to_step:
            total += float(entry["loss"]) * (entry["step"] - previous)
            previous = entry["step"]
    return total


# ---------------------------------------------------------------- write and read a folder
def write_hf_files(folder: Path, step: int, optimizer: Any, scheduler: Any, rngs: list[dict[str, Any]],
                   extra: dict[str, Any]) -> None:
    """Write the training state into `folder` in HF's layout. `extra["trainer_state"]` is the trainer_state.json
    dict (see `hf_trainer_state`), `extra["scaler"]` the GradScaler's state; the rest (JSON values) goes to
    bertkit_state.json."""
    own = {k: v for k, v in extra.items() if k not in ("trainer_state", "scaler")}
    trainer_state = extra.get("trainer_state") or {"global_step": int(step)}
    if optimizer is not None:
        torch.save(optimizer.state_dict(), folder / OPTIMIZER)
    if scheduler is not None:
        torch.save(scheduler.state_dict(), folder / SCHEDULER)
    if extra.get("scaler") is not None:
        torch.save(extra["scaler"], folder / SCALER)
    if optimizer is not None:  # HF: RNG states come with the optimizer (not with save_only_model)
        names = ["rng_state.pth"] if len(rngs) == 1 else [f"rng_state_{rank}.pth" for rank in range(len(rngs))]
        for name, rng in zip(names, rngs):
            torch.save(hf_rng(rng, len(rngs)), folder / name)
    (folder / TRAINER_STATE).write_text(json.dumps(trainer_state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (folder / OWN_STATE).write_text(json.dumps({"step": int(step), **own}, indent=2) + "\n", encoding="utf-8")


def read_hf_files(folder: Path) -> dict[str, Any]:
    """The training state of an HF-layout checkpoint folder, as bertkit's training_state.pt holds it. A missing
    trainer_state.json or a damaged file is a ValueError / FileNotFoundError naming it."""
    trainer_state = read_json_object(folder / TRAINER_STATE, "the checkpoint is damaged")
    step = trainer_state.get("global_step")
    if not isinstance(step, int) or step < 0:
        raise UserError(f"{folder / TRAINER_STATE} has no global_step: not a Trainer checkpoint")
    optimizer = load_pickle(folder / OPTIMIZER, "optimizer state") if (folder / OPTIMIZER).is_file() else None
    scheduler = load_pickle(folder / SCHEDULER, "scheduler state") if (folder / SCHEDULER).is_file() else None
    rngs = []
    names = sorted(folder.glob("rng_state_*.pth"), key=lambda p: int(p.stem.rsplit("_", 1)[-1])) \
        or [p for p in [folder / "rng_state.pth"] if p.is_file()]
    with torch.serialization.safe_globals(_numpy_rng_types()):
        for path in names:
            rngs.append(ours_rng(load_pickle(path, "RNG state")))
    extra: dict[str, Any] = {"trainer_state": trainer_state}
    if (folder / SCALER).is_file():
        extra["scaler"] = load_pickle(folder / SCALER, "GradScaler state")
    if (folder / OWN_STATE).is_file():
        extra.update({k: v for k, v in read_json_object(folder / OWN_STATE, "the checkpoint is damaged").items()
                      if k != "step"})
    if optimizer is not None and scheduler is None:
        raise MissingFileError(f"{folder / SCHEDULER} is missing (the optimizer's state is there: the checkpoint "
                               "is incomplete)")
    return {"step": step, "optimizer": optimizer, "scheduler": scheduler, "rng": rngs or None, "extra": extra}
