"""How big a model a config describes, known before a byte of it is allocated.

A config.json is data from wherever the folder came from: `hidden_size` 12,000,000 asks for 1.5 PB, and torch's
allocator then fails with a raw traceback, or, on a host that overcommits memory, may try. `check_model_size`
counts the parameters from the config's fields and refuses, naming the fields, a model larger than the memory
available, or (when loading) far larger than the weights file that is meant to fill it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bertkit.errors import UserError

# A checkpoint may lack the pooler and the head (they are then newly initialised), never the encoder: the
# encoder described by the config may be at most this many times the tensors of the weights file.
WEIGHTS_SLACK = 2


def parameter_parts(config: Any) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Parameters of each part of a model built from `config` (the largest head included), with the fields that
    size it."""
    h, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    rows = config.vocab_size + config.max_position_embeddings + config.type_vocab_size
    layer = 4 * h * h + 2 * h * inner + 9 * h + inner  # attention q k v o, feed-forward in and out, biases, 2 norms
    return {
        "embeddings": (rows * h + 2 * h, ("vocab_size", "max_position_embeddings", "type_vocab_size", "hidden_size")),
        "encoder layers": (layers * layer, ("num_hidden_layers", "hidden_size", "intermediate_size")),
        "pooler and head": (2 * h * h + 4 * h + config.vocab_size + h * max(2, config.num_labels),
                            ("hidden_size", "vocab_size")),
    }


def available_memory_bytes() -> int | None:
    """Memory this process could still take: the system's available memory, or less under a cgroup limit."""
    candidates = []
    try:
        with open("/proc/meminfo") as meminfo:
            candidates += [int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")]
    except OSError:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit.isdigit():
            candidates.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(candidates) if candidates else None


def describe(config: Any, parts: dict[str, tuple[int, tuple[str, ...]]]) -> str:
    largest, (count, fields) = max(parts.items(), key=lambda item: item[1][0])
    values = ", ".join(f"{name}={getattr(config, name):,}" for name in fields)
    return f"the {largest} alone hold {count:,} ({values})"


def check_model_size(config: Any, *, bytes_per_parameter: int = 4, weights_parameters: int | None = None,
                     source: str | os.PathLike | None = None) -> None:
    """Raise UserError when the model `config` describes would not fit in the memory available, or when it is far
    larger than the `weights_parameters` tensors meant to fill it (`source`: the config's file, for the message)."""
    parts = parameter_parts(config)
    total = sum(count for count, _ in parts.values())
    where = f"{source}" if source else "the config"
    available = available_memory_bytes()
    if available is not None and total * bytes_per_parameter > available:
        raise UserError(
            f"{where} describes a model of {total:,} parameters ({total * bytes_per_parameter / 1e9:,.1f} GB), more "
            f"than the {available / 1e9:,.1f} GB of memory available: {describe(config, parts)}; fix those fields "
            "(a BERT-base has hidden_size=768, intermediate_size=3072, num_hidden_layers=12, vocab_size=30522)")
    encoder = total - parts["pooler and head"][0]
    if weights_parameters is not None and encoder > WEIGHTS_SLACK * weights_parameters:
        raise UserError(
            f"{where} describes a model of {total:,} parameters but the weights file holds only "
            f"{weights_parameters:,}: {describe(config, parts)}; the config does not fit these weights: fix those "
            "fields in config.json, or use the config that was saved with the weights")
