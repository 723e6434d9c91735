"""Reading the text files users bring: compressed or not, and JSON Lines with errors that name the line."""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

# the shared data ships as .xz; .gz and .bz2 are what users have otherwise
OPENERS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}


def open_text(path: str | Path, errors: str = "strict", newline: str | None = None) -> IO[str]:
    """Open a UTF-8 text file for reading, decompressing .xz / .gz / .bz2 on the fly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist; check the path")
    opener = OPENERS.get(path.suffix.lower())
    if opener is not None:
        return opener(path, "rt", encoding="utf-8", errors=errors)
    return path.open(encoding="utf-8", errors=errors, newline=newline)


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a file for reading bytes, decompressing .xz / .gz / .bz2 on the fly (for line-by-line reading)."""
    path = Path(path)
    return OPENERS.get(path.suffix.lower(), open)(path, "rb")


def read_json_object(path: str | Path, remedy: str) -> dict[str, Any]:
    """A file that must hold one JSON object (config.json, tokenizer_config.json, a run config); a corrupt or
    truncated file is a ValueError naming it, with `remedy` saying what to do."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); {remedy}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(data).__name__}; {remedy}")
    return data


def iter_jsonl(lines: Iterable[str], source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is a clear ValueError."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source} line {number} is not valid JSON ({error.msg}); "
                             "JSONL needs one JSON object per line") from None
        if not isinstance(record, dict):
            raise ValueError(f"{source} line {number} is not a JSON object; JSONL needs one object per line")
        yield number, record
