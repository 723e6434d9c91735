"""A model folder's ONNX export made once and reused (FOLDER/onnx/<class>.onnx, with the tokenizer files beside it),
and `load_ort_model`: what the pipelines' backend="onnxruntime" loads from what a user passes."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from bertkit.errors import MissingFileError, UserError
from bertkit.model.bert import BertPreTrainedModel
from bertkit.utils import logging

from .head_outputs import HEADS
from .onnx import export_onnx
from .ort import OrtModel

logger = logging.get_logger(__name__)

# what a folder of an .onnx needs besides the graph (the config travels in the graph's metadata): the tokenizer,
# the sentence-transformers pooling settings (`bertkit embed`), the fine-tuning settings (`bertkit predict`)
COMPANION_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
                   "bertkit_task.json")
CACHE_FOLDER = "onnx"


def copy_model_files(source: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Copy the tokenizer and settings files of a model folder beside an exported .onnx, so that folder is
    self-contained (`pipeline(task, model="that/folder/model.onnx")` finds its tokenizer there). Returns the names
    copied."""
    source, target = Path(source), Path(target)
    copied = []
    for name in COMPANION_FILES:
        if (source / name).is_file() and (source / name).resolve() != (target / name).resolve():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target / name)
            copied.append(name)
    return copied


def _weights_mtime(folder: Path) -> float:
    """The newest of the files an export depends on: config.json and the weights (sharded or not)."""
    files = [p for p in folder.iterdir() if p.is_file() and (p.name == "config.json" or p.suffix in (".safetensors", ".bin")
                                                             or p.name.endswith(".index.json"))]
    return max((p.stat().st_mtime for p in files), default=0.0)


def _cache_dir(folder: Path) -> Path:
    """FOLDER/onnx when the model folder is writable, else a folder under the system's temp dir named after it."""
    cache = folder / CACHE_FOLDER
    try:
        cache.mkdir(exist_ok=True)
        probe = cache / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return cache
    except OSError:
        key = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]
        cache = Path(tempfile.gettempdir()) / "bertkit-onnx" / f"{folder.name}-{key}"
        cache.mkdir(parents=True, exist_ok=True)
        return cache


def cached_export(
    folder: str | os.PathLike, class_name: str = "BertModel", model: BertPreTrainedModel | None = None
) -> Path:
    """The fp32 ONNX export of a model folder loaded as `class_name`, made once and reused:
    FOLDER/onnx/<class_name>.onnx (tokenizer files beside it), re-exported when config.json or the weights are
    newer than it. An unwritable folder caches under the system's temp dir instead. `model`: the same folder
    already loaded (saves loading it again).

    The file is written under a temporary name and renamed into place, so processes that start together (two
    servers on one folder) never read a half-written file; each may export once."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise MissingFileError(f"{str(folder)!r} is not a model folder (no config.json there)")
    target = _cache_dir(folder) / f"{class_name}.onnx"
    if target.is_file() and target.stat().st_mtime >= _weights_mtime(folder):
        return target
    if model is None:
        from bertkit import model as models

        if not hasattr(models, class_name):
            raise UserError(f"unknown model class {class_name!r}; choose one of {', '.join(HEADS)}")
        model = getattr(models, class_name).from_pretrained(folder)
    logger.info("exporting %s to %s (once: later runs reuse it while the weights are unchanged)", folder, target)
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial.onnx")
    try:
        export_onnx(model, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    copy_model_files(folder, target.parent)
    return target


def load_ort_model(model: Any, class_name: str = "BertModel", threads: int | None = None) -> OrtModel:
    """The onnxruntime backend's model from what a user passes: an `OrtModel` as is; a path ending in .onnx;
    a model folder (exported once to FOLDER/onnx/<class_name>.onnx, see `cached_export`); or a bertkit model
    object (exported to a temporary file: nothing to cache it against)."""
    if isinstance(model, OrtModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.suffix == ".onnx" or path.is_file():
            return OrtModel(path, threads=threads)
        if not path.is_dir():
            raise MissingFileError(f"no model folder or .onnx file at {str(path)!r}")
        return OrtModel(cached_export(path, class_name), threads=threads)
    if isinstance(model, torch.nn.Module):
        # ONNX Runtime reads the whole file when the session is made, so the temporary file can go right after
        with tempfile.TemporaryDirectory(prefix="bertkit-onnx-") as tmp:
            ort_model = OrtModel(export_onnx(model, Path(tmp) / f"{type(model).__name__}.onnx"), threads=threads)
        return ort_model
    raise UserError(f"the onnxruntime backend takes a model folder, an .onnx file, an OrtModel or a bertkit model, "
                     f"got {type(model).__name__}")
