"""JSONL metrics: one JSON object per line, flushed at once, readable while the run goes on.

Use from any recipe:

    from bertkit.train.metrics_log import MetricsLogger, read_metrics
    with MetricsLogger("runs/x/metrics.jsonl", resume_step=start_step) as log:
        log.log(step=step, split="train", loss=loss.item(), lr=scheduler.get_last_lr()[0])
    rows = read_metrics("runs/x/metrics.jsonl")      # list of dicts

Every row gets `step` (when given) and `time` (seconds since the logger opened, summed across resumes via
`elapsed`). On resume from step N, rows with step > N (written after the checkpoint, before a crash) are
dropped so the log continues without duplicates; without `resume_step` an existing file is replaced
(a fresh run starts a fresh log). Only the writing rank should log: pass `enabled=False`
elsewhere (e.g. `enabled=is_main_process()`).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from bertkit.errors import MissingFileError


def json_safe(value: Any) -> Any:
    """A value ready for json.dumps: tensor / numpy scalars as Python numbers, NaN and inf as null (JSON has
    neither), dicts and lists recursively, so every line stays valid JSON for any reader."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):  # an array of several numbers: left to the caller's encoder
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All rows of a JSONL metrics file (a torn last line from a crash is ignored)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no metrics log at {path}; pass the metrics.jsonl written by a run")
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash
    return rows


class MetricsLogger:
    """Append metrics rows to a JSONL file."""

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._start = time.perf_counter()
        self._time_offset = 0.0
        self._file = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step") is None or r["step"] <= resume_step]
            if kept:
                self._time_offset = max((r.get("time") or 0.0) for r in kept)
            tmp = self.path.with_suffix(self.path.suffix + ".tmp")
            with tmp.open("w", encoding="utf-8") as f:
                for row in kept:
                    f.write(json.dumps(row) + "\n")
            os.replace(tmp, self.path)
        elif resume_step is None and self.path.exists():
            self.path.unlink()  # a fresh run starts a fresh log
        self._file = self.path.open("a", encoding="utf-8")

    def log(self, step: int | None = None, **metrics: Any) -> dict[str, Any]:
        """Write one row; returns it (handy for printing)."""
        row: dict[str, Any] = {}
        if step is not None:
            row["step"] = int(step)
        row.update({k: json_safe(v) for k, v in metrics.items()})
        row["time"] = round(self._time_offset + time.perf_counter() - self._start, 3)
        if self._file is not None:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        return row

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
