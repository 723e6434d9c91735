"""The demo's console: per step a header, the command that runs it alone, one progress bar and a few result lines.
The library's warnings (newly initialized heads, the precision said once, ...) go to the report instead, and
the Trainer's per-step rows to each run's metrics.jsonl; `--verbose` prints both as well."""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

INDENT = "    "


def say(text: str = "") -> None:
    """One result line under the step's header."""
    print(f"{INDENT}{text}" if text else "", flush=True)


def clip(text: str, width: int = 60) -> str:
    """`text` cut to `width` characters (an ellipsis says so)."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages:
            self.messages.append(message)


@contextlib.contextmanager
def library_messages(verbose: bool) -> Iterator[list[str]]:
    """Collect the "bertkit" logger's warnings (each once) for the report; unless `verbose`, its own stderr
    handlers print only errors meanwhile. Yields the list the messages go into."""
    from bertkit.utils.logging import get_logger

    logger = get_logger()  # installs bertkit's stderr handler if nothing has yet
    collector = _Collector()
    muted = [] if verbose else [(h, h.level) for h in logger.handlers]
    for handler, _ in muted:
        handler.setLevel(max(handler.level, logging.ERROR))
    logger.addHandler(collector)
    try:
        yield collector.messages
    finally:
        logger.removeHandler(collector)
        for handler, level in muted:
            handler.setLevel(level)
