"""Atomic checkpoints that resume exactly: HF-layout model + optimizer, scheduler, RNG and your own state.

Use from any recipe:

    from bertkit.train.checkpoint import save_checkpoint, load_checkpoint, latest_checkpoint
    # every N steps (call it on EVERY rank under torchrun: RNG states are gathered, rank 0 writes)
    save_checkpoint("runs/x", step, model, tokenizer=tokenizer, optimizer=optimizer,
                    scheduler=scheduler, extra={"epoch": epoch, "batch_in_epoch": i}, keep_last=2)
    # at start-up
    path = latest_checkpoint("runs/x")            # None on a fresh run
    if path is not None:
        state = load_checkpoint(path, model, optimizer, scheduler)   # restores RNGs too
        start_step, extra = state["step"], state["extra"]

Layout of `runs/x/` (bertkit's own, used by the recipes):

    step-00000200/            one checkpoint: config.json, model.safetensors, vocab.txt, ...
        training_state.pt     optimizer, scheduler, RNG states (python, numpy, torch, cuda; one per rank),
                              step, extra
    latest                    a one-line text file naming the newest complete checkpoint folder

With `layout="hf"` (the Trainer's) a checkpoint is `checkpoint-200/` holding HF's Trainer files instead of
training_state.pt (trainer_state.json, optimizer.pt, scheduler.pt, rng_state.pth; see `hf_trainer_files.py`), so
HF's Trainer resumes it and HF's checkpoints resume here. Loading reads either layout.

Why it is atomic: a checkpoint is written into a hidden temp folder, fsync'd, then renamed into place
(`os.replace`, atomic on POSIX), and only then is `latest` rewritten, itself via temp file + `os.replace`.
A crash at any moment leaves either the old `latest` or the new one, never a half-written folder under it.
Each checkpoint folder loads directly with `BertForPreTraining.from_pretrained(path)` (bertkit or transformers).
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from bertkit.errors import MissingFileError, UserError
from bertkit.files import read_json_object
from bertkit.model.hf_checkpoint import load_pickle, read_state_dict
from bertkit.train import distributed as dist_utils
from bertkit.train.hf_trainer_files import PREFIX as HF_PREFIX
from bertkit.train.hf_trainer_files import is_hf_checkpoint, read_hf_files, write_hf_files
from bertkit.utils.logging import get_logger

logger = get_logger()

TRAINING_STATE = "training_state.pt"
LATEST = "latest"
PREFIX = "step-"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model under DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel) or type(model).__name__ == "DataParallel":
            model = model.module
        else:
            return model


# ---------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """Every RNG a training step can draw from, in a form `torch.load(weights_only=True)` accepts."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:  # a different number of visible GPUs: restore ours only
            torch.cuda.set_rng_state(cuda_states[min(torch.cuda.current_device(), len(cuda_states) - 1)])


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _dist():
    return torch.distributed if dist_utils.initialized() else None


# ---------------------------------------------------------------- save
def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _write_latest(run_dir: Path, name: str) -> None:
    tmp = run_dir / f".{LATEST}.tmp-{os.getpid()}"
    with tmp.open("w", encoding="utf-8") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, run_dir / LATEST)
    _fsync_dir(run_dir)


def checkpoint_name(step: int, layout: str = "bertkit") -> str:
    return f"{HF_PREFIX}{step}" if layout == "hf" else f"{PREFIX}{step:08d}"


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: nn.Module,
    tokenizer: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra: dict[str, Any] | None = None,
    keep_last: int | None = None,
    protect: Sequence[str] = (),
    layout: str = "bertkit",
) -> Path:
    """Write `run_dir/step-XXXXXXXX/` (layout="hf": `run_dir/checkpoint-N/` with HF's Trainer files) atomically
    and point `run_dir/latest` at it; returns the folder.

    `extra` holds your recipe's own state (data position, epoch, best metric...): plain Python values
    and tensors. Under torch.distributed call this on every rank (it gathers each rank's RNG state);
    only rank 0 writes. `keep_last` prunes older step folders (the one `latest` names is always kept, and so are
    the folder names in `protect`, such as the best evaluation's; counted as HF's `save_total_limit` counts).
    """
    run_dir = Path(run_dir)
    dist = _dist()
    rank = dist.get_rank() if dist else 0
    rngs = [rng_state()]
    if dist:
        rngs = [None] * dist.get_world_size()
        dist.all_gather_object(rngs, rng_state())
    final = run_dir / checkpoint_name(step, layout)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob(".tmp-*"):  # left by a crash during an earlier save
            shutil.rmtree(stale, ignore_errors=True)
        tmp = run_dir / f".tmp-{final.name}-{os.getpid()}"
        tmp.mkdir()
        unwrap_model(model).save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if layout == "hf":
            write_hf_files(tmp, step, optimizer, scheduler, rngs, extra or {})
        else:
            state = {
                "step": int(step),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rngs,
                "extra": extra or {},
            }
            torch.save(state, tmp / TRAINING_STATE)
        _fsync_tree(tmp)
        if final.exists():  # re-saving the same step: move the old one aside first (rename is atomic)
            trash = run_dir / f".tmp-old-{final.name}-{os.getpid()}"
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(run_dir)
        _write_latest(run_dir, final.name)
        if keep_last:
            prune_checkpoints(run_dir, keep_last, keep={final.name, *protect})
    if dist:
        dist.barrier()
    return final


def prune_checkpoints(run_dir: Path, keep_last: int, keep: set[str]) -> None:
    """Delete the oldest checkpoints but those in `keep` until `keep_last` are left, or as many as `keep` names
    (HF's rule: `save_total_limit=1` with a best checkpoint that is not the newest keeps two)."""
    folders = sorted(_checkpoint_dirs(run_dir), key=_step_of)
    remaining, keep_at_least = len(folders), max(keep_last, len(keep & {f.name for f in folders}))
    for old in folders:
        if remaining <= keep_at_least:
            break
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
            remaining -= 1


def _checkpoint_dirs(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.iterdir() if p.is_dir() and p.name.startswith((PREFIX, HF_PREFIX)) and _step_of(p) >= 0] \
        if run_dir.is_dir() else []


# ---------------------------------------------------------------- load
def checkpoint_folders(run_dir: str | os.PathLike) -> list[Path]:
    """The run's checkpoint folders (step-* and checkpoint-*), newest first: the one `latest` names leads, then
    the others by step.

    A step-* folder appeared by rename, so it was complete when written; the disk, a copy or a hand may
    still have damaged it since, which `load_checkpoint(..., fallback=True)` finds out when reading it.
    """
    run_dir = Path(run_dir)
    folders = sorted(_checkpoint_dirs(run_dir), key=_step_of, reverse=True)
    pointer = run_dir / LATEST
    if pointer.is_file():
        named = run_dir / pointer.read_text(encoding="utf-8", errors="replace").strip()
        if named in folders and named.name.startswith(PREFIX):  # a checkpoint-N run: HF names the newest by N
            folders.remove(named)
            folders.insert(0, named)
    return folders


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint folder of a run, or None when it has none yet.

    Cheap (no file is read but `latest`); when that folder turns out damaged, `load_checkpoint(path,
    fallback=True)` goes back to the newest intact one and says so.
    """
    folders = checkpoint_folders(run_dir)
    return folders[0] if folders else None


def resume_path(run_dir: str | os.PathLike, resume_from_checkpoint: str | bool | None) -> Path | None:
    """HF's `resume_from_checkpoint`: True is the newest checkpoint in `run_dir`, a path is that checkpoint."""
    if not resume_from_checkpoint:
        return None
    if resume_from_checkpoint is True:
        found = latest_checkpoint(run_dir)
        if found is None:
            raise UserError(f"resume_from_checkpoint=True but {run_dir} holds no checkpoint ({HF_PREFIX}* or {PREFIX}* "
                            "folder); "
                            "train without it to start fresh")
        return found
    path = Path(resume_from_checkpoint)
    if not path.exists():
        raise MissingFileError(f"resume_from_checkpoint={str(path)!r} does not exist")
    return path


def load_model_weights(model: nn.Module, folder: str | os.PathLike, weights: dict[str, torch.Tensor] | None = None) -> None:
    """Load the weights of an HF-layout folder into an existing model, exactly (no re-initialisation).

    Tied parameters (the MLM decoder shares the word embeddings) may be absent from the file: they are
    filled by the parameter they are tied to. Any other missing or unexpected name is an error.
    `weights`: the folder's tensors when the caller has read them already.
    """
    folder = Path(folder)
    model = unwrap_model(model)
    if weights is None:
        weights, _ = read_state_dict(folder)  # single file or shards; clear errors on a missing or corrupt file
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as err:  # a tensor of another shape: say which, in one line
        detail = next((line.strip() for line in str(err).splitlines() if "size mismatch" in line), str(err))
        raise UserError(f"checkpoint {folder} does not match the model ({detail}); "
                         "build the model from that folder's config.json") from None
    # names that alias one storage: each group is satisfied when any member was loaded
    by_tensor: dict[int, list[str]] = {}
    for name, tensor in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False)):
        by_tensor.setdefault(id(tensor), []).append(name)
    alias_loaded = {n for names in by_tensor.values() if any(m in weights for m in names) for n in names}
    persistent = set(model.state_dict().keys())
    really_missing = [k for k in missing if k not in alias_loaded and k in persistent and not k.endswith("position_ids")]
    if really_missing or unexpected:
        raise UserError(
            f"checkpoint {folder} does not match the model: missing {really_missing[:5]}, unexpected {list(unexpected)[:5]}; "
            "build the model from that folder's config.json"
        )


def _read_checkpoint(folder: Path, read_weights: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Everything of a checkpoint folder that resuming reads, read before anything is changed: the training
    state and (when asked) the weights. A missing, truncated, corrupt or unsafe file is a ValueError /
    FileNotFoundError naming it; a checkpoint that fails here can be skipped for an older one."""
    state_file = folder / TRAINING_STATE
    if not state_file.is_file() and is_hf_checkpoint(folder):
        state = read_hf_files(folder)
    elif not state_file.is_file():
        raise MissingFileError(f"{state_file} is missing (optimizer, scheduler and RNG states)")
    else:
        state = load_pickle(state_file, "training state")
    if not isinstance(state, dict) or not {"step", "optimizer", "scheduler", "rng", "extra"} <= set(state):
        raise UserError(f"{state_file} is not a bertkit training state (no step / optimizer / rng entries)")
    config_file = folder / "config.json"  # what from_pretrained(folder) needs
    if not config_file.is_file():
        raise MissingFileError(f"{config_file} is missing")
    read_json_object(config_file, "the checkpoint is damaged")
    weights = read_state_dict(folder)[0] if read_weights else None
    return state, weights


def _step_of(folder: Path) -> int:
    prefix = PREFIX if folder.name.startswith(PREFIX) else HF_PREFIX if folder.name.startswith(HF_PREFIX) else None
    digits = folder.name[len(prefix):] if prefix else ""
    return int(digits) if digits.isdigit() else -1


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
    load_weights: bool = True,
    fallback: bool = False,
) -> dict[str, Any]:
    """Restore a checkpoint folder (or a run folder: its latest) into the given objects.

    Returns {"step", "extra", "path"} (`path`: the folder actually used). Restores this rank's RNG states
    unless `restore_rng=False`. Pass `load_weights=False` when the model was already built from the folder
    (e.g. `from_pretrained(path)`).

    Damage (a truncated model.safetensors, a garbage config.json, a missing or corrupt training_state.pt, a
    pickle that holds code) is found before anything is changed. With `fallback=True` (and always for a run
    folder) the newest intact older checkpoint of the same run is used instead, with a warning naming the
    damaged one; without it the error names the file and the older checkpoint that could be used.
    """
    path = Path(path)
    if path.is_dir() and _step_of(path) < 0 and not (path / TRAINING_STATE).is_file() and not is_hf_checkpoint(path):
        candidates, fallback = checkpoint_folders(path), True  # a run folder: its newest intact checkpoint
    elif path.is_dir():
        older = [f for f in checkpoint_folders(path.parent) if f != path and _step_of(f) < _step_of(path)]
        candidates = [path, *older] if fallback else [path]
    else:
        candidates = []
    if not candidates:
        raise MissingFileError(f"no checkpoint at {path}: expected a {HF_PREFIX}* folder (HF's Trainer files), a "
                               f"{PREFIX}* folder with {TRAINING_STATE} or a run folder with one")

    damaged: list[str] = []
    for folder in candidates:
        try:
            state, weights = _read_checkpoint(folder, read_weights=model is not None and load_weights)
        except (ValueError, FileNotFoundError) as err:
            if not fallback:
                older = [f.name for f in checkpoint_folders(folder.parent) if _step_of(f) < _step_of(folder)]
                hint = (f"an earlier checkpoint of the run can be used: {older[0]} (pass it, or resume with "
                        "resume_from_checkpoint=True / `--resume` to fall back to the newest intact one)"
                        if older else "the run has no earlier checkpoint: delete this one to start afresh")
                raise UserError(f"checkpoint {folder} is damaged: {err}; {hint}") from None
            damaged.append(f"{folder.name}: {err}")
            logger.warning(f"checkpoint {folder} is damaged ({err}); trying the one before it")
            continue
        if damaged:
            logger.warning(f"resuming from {folder}, the newest intact checkpoint (skipped: {', '.join(d.split(':')[0] for d in damaged)})")
        return _restore(folder, state, weights, model, optimizer, scheduler, restore_rng, load_weights)
    raise UserError(f"no intact checkpoint in {candidates[0].parent}: " + "; ".join(damaged)
                     + "; delete the damaged folders to start afresh")


def _restore(path: Path, state: dict[str, Any], weights: dict[str, torch.Tensor] | None, model: nn.Module | None,
             optimizer: torch.optim.Optimizer | None, scheduler: Any, restore_rng: bool, load_weights: bool) -> dict[str, Any]:
    if optimizer is not None and state["optimizer"] is None:
        raise UserError(f"checkpoint {path} holds no optimizer state (saved with save_only_model=True?): it cannot "
                        "resume a run; start a fresh one from its weights (from_pretrained on that folder)")
    if model is not None and load_weights:
        load_model_weights(model, path, weights)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng and state["rng"]:
        dist = _dist()
        rank = dist.get_rank() if dist else 0
        rngs = state["rng"]
        set_rng_state(rngs[rank % len(rngs)])
    elif restore_rng:
        logger.warning(f"checkpoint {path} holds no RNG state: the run continues, but not bit for bit")
    return {"step": state["step"], "extra": state["extra"], "path": path}
