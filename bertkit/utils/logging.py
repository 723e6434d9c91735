"""Verbosity of bertkit's messages, with HuggingFace's `transformers.utils.logging` names.

    from bertkit.utils import logging
    logging.set_verbosity_error()        # only errors (e.g. hide the weights report of from_pretrained)
    logging.set_verbosity_warning()      # the default
    logger = logging.get_logger(__name__)

Everything bertkit reports goes through the standard-library logger "bertkit" (or its children), so
`logging.getLogger("bertkit").setLevel(...)` and the application's own handlers work as usual too.

By default the level is WARNING and messages go to stderr, so the "Some weights ... newly initialized"
report is visible. The stderr handler only writes while the application has configured no logging of its
own (no handler on the root logger); once it has, records propagate there instead, so nothing prints twice
and pytest's caplog sees them.
"""
from __future__ import annotations

import logging
import sys
from logging import CRITICAL, DEBUG, ERROR, INFO, WARNING  # noqa: F401 (HF exports these names too)

LIBRARY_LOGGER = "bertkit"

_default_handler: logging.Handler | None = None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (notebooks and pytest's capsys replace it after import)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _root_is_unconfigured(record: logging.LogRecord) -> bool:
    return not logging.getLogger().handlers


def _library_logger() -> logging.Logger:
    """The "bertkit" logger, given its default level and stderr handler on first use."""
    global _default_handler
    logger = logging.getLogger(LIBRARY_LOGGER)
    if _default_handler is None:
        _default_handler = _StderrHandler()
        _default_handler.addFilter(_root_is_unconfigured)
        logger.addHandler(_default_handler)
        if logger.level == logging.NOTSET:  # respect a level the application set before importing bertkit
            logger.setLevel(logging.WARNING)
    return logger


def get_logger(name: str | None = None) -> logging.Logger:
    """The "bertkit" logger, or the logger `name` (use a "bertkit.*" name to inherit bertkit's verbosity)."""
    library = _library_logger()
    return library if name is None else logging.getLogger(name)


def get_verbosity() -> int:
    """The "bertkit" logger's effective level (logging.WARNING by default)."""
    return _library_logger().getEffectiveLevel()


def set_verbosity(level: int) -> None:
    """Set the level of the "bertkit" logger: logging.ERROR, WARNING, INFO, DEBUG, ..."""
    _library_logger().setLevel(level)


def set_verbosity_error() -> None:
    set_verbosity(ERROR)


def set_verbosity_warning() -> None:
    set_verbosity(WARNING)


def set_verbosity_info() -> None:
    set_verbosity(INFO)


def set_verbosity_debug() -> None:
    set_verbosity(DEBUG)


__all__ = ["CRITICAL", "DEBUG", "ERROR", "INFO", "WARNING", "get_logger", "get_verbosity", "set_verbosity",
           "set_verbosity_debug", "set_verbosity_error", "set_verbosity_info", "set_verbosity_warning"]


_already_said: set[tuple[str, str]] = set()


def warn_ignored(api: str, arguments: dict | set | list | tuple, why: str = "bertkit has no use for it") -> None:
    """Say once per (api, argument) that an argument HF's API takes is accepted here but changes nothing, instead
    of dropping it silently."""
    for name in sorted(arguments):
        if (api, name) not in _already_said:
            _already_said.add((api, name))
            get_logger().warning(f"{api}: argument {name!r} is ignored ({why})")
