"""Reading the text files users bring: compressed or not, and JSON Lines with errors that name the line."""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from bertkit.errors import AlreadyExistsError, IsAFolderError, MissingFileError, NotAFolderError, UserError

# the shared data ships as .xz; .gz and .bz2 are what users have otherwise
OPENERS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}
# how much of a file's start is looked at to tell text from binary data, and the share of bytes that may fail
# to decode before a file counts as binary (a stray Latin-1 byte in text is not binary; random bytes are ~50%)
SNIFF_BYTES = 64 * 1024
MAX_UNDECODABLE_SHARE = 0.1


def require_file(path: str | Path, what: str = "file") -> Path:
    """`path` as a Path when it is an existing file; otherwise an error that says what is there instead."""
    path = Path(path)
    if path.is_dir():
        raise IsAFolderError(f"{what} {str(path)!r} is a folder; pass a file")
    if not path.is_file():
        raise MissingFileError(f"{what} {str(path)!r} does not exist; check the path")
    return path


def require_folder(path: str | Path, what: str = "folder") -> Path:
    """`path` as a Path when it is an existing folder; otherwise an error that says what is there instead."""
    path = Path(path)
    if path.is_file():
        raise NotAFolderError(f"{what} {str(path)!r} is a file; pass the folder that holds it")
    if not path.is_dir():
        raise MissingFileError(f"{what} {str(path)!r} does not exist; check the path")
    return path


def require_output_folder(path: str | Path, what: str = "output folder") -> Path:
    """A folder to write into (the caller creates it when missing); a file in its place is a clear error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AlreadyExistsError(f"{what} {str(path)!r} is a file; pass a folder path (it is created when missing)")
    return path


def require_output_file(path: str | Path, what: str = "output file") -> Path:
    """A file to write (created or replaced); a folder in its place is a clear error."""
    path = Path(path)
    if path.is_dir():
        raise IsAFolderError(f"{what} {str(path)!r} is a folder; pass a file path, e.g. {str(path / 'out.jsonl')!r}")
    return path


def check_text(path: str | Path, head: bytes, strict: bool = True) -> None:
    """Refuse `head` (the first bytes of `path`) when it is not UTF-8 text, naming the file.

    Binary data (a NUL byte, or more than MAX_UNDECODABLE_SHARE undecodable bytes) is always refused; with
    `strict`, so is any undecodable byte (a character cut at the end of `head` is fine: the rest follows).
    """
    if b"\x00" in head:
        raise UserError(f"{path} is not a text file (it holds NUL bytes: binary data); pass a UTF-8 text file")
    try:
        head.decode("utf-8")
        return
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 3 and error.reason == "unexpected end of data":
            return  # a multi-byte character cut by the end of `head`
        first_bad = error.start
    undecodable = head.decode("utf-8", errors="replace").count("\ufffd")
    if undecodable > MAX_UNDECODABLE_SHARE * len(head):
        raise UserError(f"{path} is not a text file ({undecodable} of its first {len(head)} bytes are not UTF-8: "
                         "binary data); pass a UTF-8 text file")
    if strict:
        raise UserError(f"{path} is not UTF-8 text (byte {first_bad} cannot be decoded); save it as UTF-8")


def check_text_file(path: str | Path, what: str = "file", strict: bool = True) -> Path:
    """An existing text file (see check_text; compressed files are looked at decompressed) as a Path."""
    path = require_file(path, what)
    with open_binary(path) as f:
        check_text(path, f.read(SNIFF_BYTES), strict)
    return path


def read_text(path: str | Path, what: str = "file") -> str:
    """The whole of a UTF-8 text file; a binary or non-UTF-8 file is a ValueError naming it."""
    path = require_file(path, what)
    data = path.read_bytes()
    check_text(path, data[:SNIFF_BYTES])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte {error.start} cannot be decoded); save it as UTF-8") from None


def open_text(path: str | Path, errors: str = "strict", newline: str | None = None) -> IO[str]:
    """Open a UTF-8 text file for reading, decompressing .xz / .gz / .bz2 on the fly."""
    path = check_text_file(path, "data file", strict=errors == "strict")
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
        raise UserError(f"{path} is not valid JSON ({error}); {remedy}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object, found {type(data).__name__}; {remedy}")
    return data


def iter_jsonl(lines: Iterable[str], source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is a clear ValueError."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError(f"{source} line {number} is not valid JSON ({error.msg}); "
                             "JSONL needs one JSON object per line") from None
        if not isinstance(record, dict):
            raise UserError(f"{source} line {number} is not a JSON object; JSONL needs one object per line")
        yield number, record
