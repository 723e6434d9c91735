"""Names -> local folders, one policy for models, tokenizers and pipelines (HF's `from_pretrained` names).

    folder = resolve_folder("bert-base-uncased")      # or "path/to/folder"

The order: a local folder as it is; then the local Hugging Face cache, read as `huggingface_hub` lays it out
(`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`: `models--org--name/refs/main` names the
snapshot in `snapshots/<commit>/`); then a download, only when `huggingface_hub` is installed, `HF_HUB_OFFLINE`
is not set and the network answers. Anything else is a `MissingFileError` that says how to get the folder.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from bertkit.errors import MissingFileError

# what a BERT folder needs from a repository (its other files, e.g. other frameworks' weights, are skipped)
HUB_FILES = ["config.json", "*.safetensors", "*.json", "*.txt", "pytorch_model.bin*"]


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def cache_root() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()
    return home / "hub"


def cached_snapshot(name: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of repository `name` at `revision` (a branch, tag or commit; main by default),
    or None when the cache does not hold it."""
    repository = cache_root() / ("models--" + name.replace("/", "--"))
    revision = revision or "main"
    ref = repository / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = repository / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def _network_available(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_folder(name_or_path: str | os.PathLike, what: str = "model", local_files_only: bool = False,
                   revision: str | None = None, **hub_kwargs: Any) -> Path:
    """The local folder for `name_or_path` (see the module's docstring for the order)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    how = (f"Point it at a local folder in HuggingFace layout (for a model: config.json + model.safetensors or "
           f"pytorch_model.bin; for a tokenizer: vocab.txt or tokenizer.json). To get one, run "
           f"`huggingface-cli download {name} --local-dir {path.name}` on a machine with network access and copy "
           "the folder here.")
    if path.exists() or path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise MissingFileError(f"no {what} folder at {name!r}: it does not exist; check the path (a Hugging Face "
                               "name looks like org/name)")
    cached = cached_snapshot(name, revision)
    if cached is not None:
        return cached
    if local_files_only or offline():
        raise MissingFileError(f"{name!r} is not a local folder nor in the Hugging Face cache ({cache_root()}), and "
                               f"downloads are off (local_files_only / HF_HUB_OFFLINE). {how}")
    try:
        import huggingface_hub
    except ImportError:
        raise MissingFileError(f"{name!r} is not a local folder nor in the Hugging Face cache ({cache_root()}), and "
                               f"huggingface_hub is not installed to download it. {how}") from None
    if not _network_available():
        raise MissingFileError(f"{name!r} is not a local folder nor in the Hugging Face cache ({cache_root()}), and "
                               f"the Hugging Face Hub cannot be reached. {how}")
    try:
        return Path(huggingface_hub.snapshot_download(name, allow_patterns=HUB_FILES, revision=revision, **hub_kwargs))
    except Exception as err:  # noqa: BLE001 - repository missing, gated, network error...
        raise MissingFileError(f"{name!r} is not a local folder and downloading it from the Hugging Face Hub "
                               f"failed ({type(err).__name__}: {err}). {how}") from err
