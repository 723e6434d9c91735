"""`bertkit prepare-corpus`: raw text -> memory-mapped token shards for pretraining.

    bertkit prepare-corpus wiki.tar.xz more.txt --tokenizer path/to/vocab-folder --out data/shards

Inputs (auto-detected, or `--format`):
- lines: one sentence per line, blank lines between documents (`.txt`, also `.xz`/`.gz`/`.bz2` compressed);
- jsonl: one JSON object per line with the document in a text field (`--text-field`, default "text");
- wikiextractor: `<doc ...>` title, paragraphs `</doc>` (plain files or a `.tar[.xz|.gz]` of them);
  title-only documents (redirects, stubs) are skipped and paragraphs are split into sentences.

Output folder:

    corpus.json                      header: dtype, vocab size, special ids, the shards of each split
    tokenizer/                       the tokenizer the ids belong to (pretraining reloads it from here)
    train-00000.tokens.bin           token ids, uint16 (uint32 when the vocabulary needs it), back to back
    train-00000.sentences.bin        int64 offsets: sentence i is tokens[s[i]:s[i+1]]
    train-00000.documents.bin        int64 offsets: document j is sentences d[j]..d[j+1]
    valid-00000.*                    held-out documents (`--valid-fraction`), for evaluation

Everything is streamed: documents are read, tokenized in small batches and appended to the files, so
memory stays bounded by one chunk (`chunk_tokens`) whatever the corpus size. `corpus.json` is written
last (atomically), so a folder with a header is complete.

`workers=N` (`--workers`): this process reads and deals raw documents out in groups; N processes
(`corpus_workers.run_workers`) split, tokenize and write shards of their own (`train-wK-NNNNN.*`), and only
counts and shard lists come back. The held-out draw is made here, per document in input order, so the folder
holds the same documents, tokens and split whatever N.
"""
from __future__ import annotations

import functools
import io
import itertools
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from bertkit.data.corpus_workers import resolve_workers, run_workers
from bertkit.errors import MissingFileError, UserError
from bertkit.files import iter_jsonl, open_text, require_output_folder

HEADER = "corpus.json"
FORMAT_NAME = "bertkit-token-shards"
FORMATS = ("auto", "lines", "jsonl", "wikiextractor")

# ------------------------------------------------------------------ sentence splitting
# A light rule-based splitter for paragraphs (WikiExtractor, JSONL): split after . ! ? followed by space and
# an upper-case letter, digit or opening quote, unless the word before the period is a known abbreviation
# or a single initial ("J. R. R. Tolkien").
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "no", "vs", "etc", "inc", "ltd", "co", "corp",
    "gen", "col", "lt", "sgt", "capt", "rev", "gov", "sen", "rep", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec", "e.g", "i.e", "u.s", "u.k", "approx", "est", "fig", "vol", "pp", "op",
}
_BOUNDARY = re.compile(r"([.!?][\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences (rule-based; good enough for encyclopedic text)."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        end = match.end(1)
        words = paragraph[start:match.start(1) + 1].split()
        last = words[-1].rstrip(".").lower() if words else ""
        if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
            continue
        sentence = paragraph[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = paragraph[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


# ------------------------------------------------------------------ readers: files -> documents (lists of sentences)
def read_lines_documents(lines: Iterable[str], split: bool = False) -> Iterator[list[str]]:
    """One sentence per line, documents separated by blank lines (`split=True`: lines are paragraphs)."""
    doc: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            if doc:
                yield doc
                doc = []
            continue
        doc.extend(split_sentences(line) if split else [line])
    if doc:
        yield doc


def read_jsonl_documents(lines: Iterable[str], text_field: str = "text", source: str = "",
                         split: bool = True) -> Iterator[list[str]]:
    for number, record in iter_jsonl(lines, source):
        if text_field not in record:
            raise UserError(f"{source} line {number}: no {text_field!r} field; pass --text-field with the name of the text field")
        paragraphs = [p.strip() for p in str(record[text_field]).splitlines() if p.strip()]
        doc = [s for paragraph in paragraphs for s in split_sentences(paragraph)] if split else paragraphs
        if doc:
            yield doc


def read_wikiextractor_documents(lines: Iterable[str], split: bool = True) -> Iterator[list[str]]:
    """WikiExtractor output: `<doc ...>`, the title line, paragraphs, `</doc>`; title-only documents skipped.
    `split=False`: the paragraphs, not yet split into sentences (prepare_corpus splits them in its workers)."""
    doc: list[str] | None = None
    title_pending = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("<doc ") or stripped == "<doc>":
            doc, title_pending = [], True
            continue
        if stripped == "</doc>":
            if doc:
                yield doc
            doc = None
            continue
        if doc is None or not stripped:
            continue
        if title_pending:  # the first non-empty line repeats the title
            title_pending = False
            continue
        if split:
            doc.extend(split_sentences(stripped))
        else:
            doc.append(stripped)
    if doc:
        yield doc


def _sniff(first_line: str, name: str) -> str:
    if name.endswith((".jsonl", ".jsonl.xz", ".jsonl.gz", ".json", ".ndjson")):
        return "jsonl"
    head = first_line.lstrip()
    if head.startswith("<doc"):
        return "wikiextractor"
    if head.startswith("{"):
        return "jsonl"
    return "lines"


def _documents_from_stream(lines: Iterator[str], fmt: str, name: str, text_field: str) -> Iterator[tuple[list[str], bool]]:
    first = next(lines, None)
    if first is None:
        return
    if fmt == "auto":
        fmt = _sniff(first, name.lower())
    stream = itertools.chain([first], lines)
    if fmt == "lines":
        yield from ((doc, False) for doc in read_lines_documents(stream))
    elif fmt == "jsonl":
        yield from ((doc, True) for doc in read_jsonl_documents(stream, text_field, source=name, split=False))
    elif fmt == "wikiextractor":
        yield from ((doc, True) for doc in read_wikiextractor_documents(stream, split=False))
    else:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def iter_documents(paths: Sequence[str | os.PathLike], fmt: str = "auto", text_field: str = "text") -> Iterator[list[str]]:
    """Every document (a list of sentence strings) of the inputs, streamed in order.

    A folder means its files (sorted, recursively); a tar archive means its members (sorted).
    """
    for lines, split in iter_raw_documents(paths, fmt, text_field):
        yield sentences_of(lines, split)


def sentences_of(lines: list[str], split: bool) -> list[str]:
    """A raw document's sentences: its lines, or its paragraphs split into sentences."""
    return [s for paragraph in lines for s in split_sentences(paragraph)] if split else lines


def iter_raw_documents(paths: Sequence[str | os.PathLike], fmt: str = "auto",
                       text_field: str = "text") -> Iterator[tuple[list[str], bool]]:
    """`iter_documents` before sentence splitting: (lines, split) per document, where `split` says the lines are
    paragraphs still to split (`sentences_of`). Reading stays cheap, so one process can feed several splitters."""
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise MissingFileError(f"input {path} does not exist; pass text files, JSONL files, folders or tar archives")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not files:
                raise UserError(f"folder {path} holds no files")
            yield from iter_raw_documents(files, fmt, text_field)
        elif ".tar" in path.name.lower() or path.name.lower().endswith(".tgz"):
            with tarfile.open(path, "r:*") as archive:
                members = sorted((m for m in archive.getmembers() if m.isfile()), key=lambda m: m.name)
                for member in members:
                    handle = archive.extractfile(member)
                    if handle is None:
                        continue
                    with io.TextIOWrapper(handle, encoding="utf-8", errors="replace") as text:
                        yield from _documents_from_stream(iter(text), fmt, member.name, text_field)
        else:
            with open_text(path, errors="replace") as text:
                yield from _documents_from_stream(iter(text), fmt, path.name, text_field)


# ------------------------------------------------------------------ tokenization
def encode_sentences(tokenizer: Any, sentences: list[str]) -> list[list[int]]:
    """Token ids of each sentence, without special tokens."""
    encoded = tokenizer(sentences, add_special_tokens=False)
    return list(encoded["input_ids"])


# ------------------------------------------------------------------ writing shards
def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


@dataclass
class _OpenShard:
    name: str
    tokens_file: Any
    sentences_file: Any
    documents_file: Any
    n_tokens: int = 0
    n_sentences: int = 0
    n_documents: int = 0
    pending_tokens: list = field(default_factory=list)
    pending_sentence_starts: list = field(default_factory=list)
    pending_document_starts: list = field(default_factory=list)
    pending_count: int = 0


class ShardWriter:
    """Appends documents (lists of id arrays) to `{split}-NNNNN.*.bin` files, flushing every `chunk_tokens`."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype, shard_tokens: int, chunk_tokens: int) -> None:
        self.folder, self.split, self.dtype = folder, split, dtype
        self.shard_tokens, self.chunk_tokens = shard_tokens, chunk_tokens
        self.shards: list[dict[str, Any]] = []
        self._open: _OpenShard | None = None

    def add_document(self, sentences: list[np.ndarray]) -> None:
        if self._open is None:
            name = f"{self.split}-{len(self.shards):05d}"
            self._open = _OpenShard(
                name,
                open(self.folder / f"{name}.tokens.bin", "wb"),
                open(self.folder / f"{name}.sentences.bin", "wb"),
                open(self.folder / f"{name}.documents.bin", "wb"),
            )
        shard = self._open
        shard.pending_document_starts.append(shard.n_sentences)
        for ids in sentences:
            shard.pending_sentence_starts.append(shard.n_tokens)
            shard.pending_tokens.append(ids.astype(self.dtype, copy=False))
            shard.n_tokens += len(ids)
            shard.n_sentences += 1
            shard.pending_count += len(ids)
        shard.n_documents += 1
        if shard.pending_count >= self.chunk_tokens:
            self._flush(shard)
        if shard.n_tokens >= self.shard_tokens:
            self._close_shard()

    def _flush(self, shard: _OpenShard) -> None:
        if shard.pending_tokens:
            shard.tokens_file.write(np.concatenate(shard.pending_tokens).tobytes())
        shard.sentences_file.write(np.asarray(shard.pending_sentence_starts, dtype=np.int64).tobytes())
        shard.documents_file.write(np.asarray(shard.pending_document_starts, dtype=np.int64).tobytes())
        shard.pending_tokens, shard.pending_sentence_starts, shard.pending_document_starts = [], [], []
        shard.pending_count = 0

    def _close_shard(self) -> None:
        shard = self._open
        if shard is None:
            return
        self._flush(shard)
        # closing offsets: the end of the last sentence / document
        shard.sentences_file.write(np.asarray([shard.n_tokens], dtype=np.int64).tobytes())
        shard.documents_file.write(np.asarray([shard.n_sentences], dtype=np.int64).tobytes())
        for f in (shard.tokens_file, shard.sentences_file, shard.documents_file):
            f.close()
        self.shards.append({"name": shard.name, "tokens": shard.n_tokens, "sentences": shard.n_sentences,
                            "documents": shard.n_documents})
        self._open = None

    def close(self) -> list[dict[str, Any]]:
        self._close_shard()
        return self.shards


class _CorpusWorker:
    """One worker of `prepare_corpus`: splits and tokenizes its groups of documents and appends them to shards of
    its own (`{split}-NNNNN`, or `{split}-wK-NNNNN` when several workers write); reports only counts."""

    def __init__(self, out: Path, tokenizer: Any, dtype: np.dtype, shard_tokens: int, chunk_tokens: int,
                 batch_sentences: int, min_sentences: int, workers: int, index: int) -> None:
        self.tokenizer, self.batch_sentences, self.min_sentences = tokenizer, batch_sentences, min_sentences
        prefix = "" if workers == 1 else f"-w{index}"
        self.writers = {split: ShardWriter(out, f"{split}{prefix}", dtype, shard_tokens, chunk_tokens)
                        for split in ("train", "valid")}
        self.counts = {"documents": 0, "skipped_documents": 0, "tokens": 0, "bytes": 0}

    def process(self, group: list[tuple[list[str], bool, bool]]) -> dict[str, int]:
        """group: (lines, split, valid) per document, in input order; returns what it added to the counts."""
        before = dict(self.counts)
        batch: list[tuple[list[str], bool]] = []
        size = 0
        for lines, split, valid in group:
            self.counts["bytes"] += sum(len(line.encode("utf-8")) for line in lines)
            doc = sentences_of(lines, split)
            batch.append((doc, valid))
            size += len(doc)
            if size >= self.batch_sentences:
                self._write(batch)
                batch, size = [], 0
        if batch:
            self._write(batch)
        return {key: self.counts[key] - before[key] for key in self.counts}

    def _write(self, batch: list[tuple[list[str], bool]]) -> None:
        flat = [s for doc, _ in batch for s in doc]
        ids = encode_sentences(self.tokenizer, flat) if flat else []
        position = 0
        for doc, valid in batch:
            sentences = [np.asarray(x, dtype=np.int64) for x in ids[position:position + len(doc)]]
            position += len(doc)
            sentences = [s for s in sentences if len(s)]
            if len(sentences) < self.min_sentences:
                self.counts["skipped_documents"] += 1
                continue
            self.writers["valid" if valid else "train"].add_document(sentences)
            self.counts["documents"] += 1
            self.counts["tokens"] += sum(len(s) for s in sentences)

    def finish(self) -> dict[str, Any]:
        return {"splits": {split: writer.close() for split, writer in self.writers.items()}, "counts": self.counts}


def _groups(documents: Iterator[tuple[list[str], bool]], valid_fraction: float, seed: int, group_chars: int,
            max_documents: int | None) -> Iterator[list[tuple[list[str], bool, bool]]]:
    """Documents in groups of about `group_chars` characters, each with its split drawn here, in input order:
    document i is held out when the i-th draw of `seed`'s generator is below `valid_fraction`, whatever the
    number of workers (and whether or not it is later skipped)."""
    rng = np.random.default_rng(seed)
    group: list[tuple[list[str], bool, bool]] = []
    chars = 0
    for number, (lines, split) in enumerate(documents):
        if max_documents is not None and number >= max_documents:
            break
        group.append((lines, split, bool(valid_fraction) and rng.random() < valid_fraction))
        chars += sum(map(len, lines))
        if chars >= group_chars:
            yield group
            group, chars = [], 0
    if group:
        yield group


def prepare_corpus(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    tokenizer: Any,
    fmt: str = "auto",
    text_field: str = "text",
    valid_fraction: float = 0.01,
    shard_tokens: int = 50_000_000,
    chunk_tokens: int = 1 << 20,
    batch_sentences: int = 256,
    max_documents: int | None = None,
    min_sentences: int = 1,
    seed: int = 0,
    progress: bool = True,
    workers: int | str = 1,
    group_chars: int = 1 << 16,
) -> dict[str, Any]:
    """Tokenize the inputs into shards under `out_dir`; returns the header (also written to corpus.json).

    `valid_fraction` of the documents (chosen at random with `seed`) go to the held-out `valid` split.
    `workers` > 1 (or "auto": one per core): this process reads the inputs and deals groups of `group_chars`
    characters of raw text round robin to worker processes, each splitting, tokenizing and writing shards of its
    own; only counts and shard lists come back. The folder holds the same documents and tokens for any number of
    workers (one worker keeps input order; with several, each worker's shards keep the order of its groups).
    """
    from tqdm.auto import tqdm

    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not 0.0 <= valid_fraction < 1.0:
        raise UserError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    workers = resolve_workers(workers)
    out = require_output_folder(out_dir, "output folder")
    out.mkdir(parents=True, exist_ok=True)
    if (out / HEADER).exists():
        (out / HEADER).unlink()  # the folder is incomplete until the new header is written
    for old in out.glob("*.bin"):
        old.unlink()
    vocab_size = len(tokenizer)  # includes added tokens
    dtype = token_dtype(vocab_size)
    make_worker = functools.partial(_CorpusWorker, out, tokenizer, dtype, shard_tokens, chunk_tokens,
                                    batch_sentences, min_sentences, workers)
    groups = _groups(iter_raw_documents(inputs, fmt, text_field), valid_fraction, seed, group_chars, max_documents)
    totals = {"documents": 0, "skipped_documents": 0, "tokens": 0, "bytes": 0}
    bar = None

    def report(counts: dict[str, int]) -> None:
        nonlocal bar
        if bar is None:  # made after the workers start (no tqdm thread in a forked process)
            bar = tqdm(desc="prepare-corpus", unit="B", unit_scale=True, disable=not progress, dynamic_ncols=True)
        for key, value in counts.items():
            totals[key] += value
        bar.update(counts["bytes"])
        bar.set_postfix(docs=f"{totals['documents']:,}", tokens=f"{totals['tokens']:,}", refresh=False)

    try:
        results = run_workers(make_worker, groups, workers, report)
    finally:
        if bar is not None:
            bar.close()
    counts = {key: sum(r["counts"][key] for r in results) for key in ("documents", "skipped_documents", "tokens")}
    if counts["documents"] == 0:
        raise UserError(f"no documents with text found in {', '.join(map(str, inputs))}; check --format and the files")

    splits = {split: [shard for r in results for shard in r["splits"][split]] for split in ("train", "valid")}
    tokenizer.save_pretrained(out / "tokenizer")
    header = {
        "format": FORMAT_NAME,
        "version": 1,
        "dtype": dtype.name,
        "vocab_size": vocab_size,
        "special_ids": {name: int(getattr(tokenizer, f"{name}_token_id"))
                        for name in ("cls", "sep", "mask", "pad", "unk")},
        "tokenizer": "tokenizer",
        "sources": [str(p) for p in inputs],
        "documents": counts["documents"],
        "skipped_documents": counts["skipped_documents"],
        "tokens": counts["tokens"],
        "splits": splits,
    }
    tmp = out / (HEADER + ".tmp")
    tmp.write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / HEADER)
    return header

# ------------------------------------------------------------------ reading shards
class Shard:
    """One shard, memory-mapped: tokens, sentence offsets (n_sentences + 1), document offsets (n_documents + 1).

    Pickles as its file names (not its data), so DataLoader workers reopen the maps instead of copying them.
    """

    def __init__(self, folder: Path, name: str, dtype: Any, n_tokens: int, n_sentences: int, n_documents: int) -> None:
        self._args = (Path(folder), name, np.dtype(dtype).name, int(n_tokens), int(n_sentences), int(n_documents))
        self.name = name
        self.tokens = _memmap(folder / f"{name}.tokens.bin", dtype, n_tokens)
        self.sentence_offsets = _memmap(folder / f"{name}.sentences.bin", np.int64, n_sentences + 1)
        self.document_offsets = _memmap(folder / f"{name}.documents.bin", np.int64, n_documents + 1)

    def __reduce__(self):
        return (Shard, self._args)

    @property
    def num_documents(self) -> int:
        return len(self.document_offsets) - 1

    def sentences(self, doc: int) -> list[np.ndarray]:
        first, last = int(self.document_offsets[doc]), int(self.document_offsets[doc + 1])
        offs = self.sentence_offsets[first:last + 1]
        return [self.tokens[offs[i]:offs[i + 1]] for i in range(last - first)]


class TokenShards:
    """The shards of one split of a prepared corpus folder."""

    def __init__(self, folder: str | os.PathLike, split: str = "train") -> None:
        self.folder = Path(folder)
        header_path = self.folder / HEADER
        if not header_path.is_file():
            raise MissingFileError(
                f"{self.folder} is not a prepared corpus (no {HEADER}); run `bertkit prepare-corpus ... --out {self.folder}`"
            )
        self.header = json.loads(header_path.read_text(encoding="utf-8"))
        if self.header.get("format") != FORMAT_NAME:
            raise UserError(f"{header_path} is not a bertkit corpus header")
        if split not in self.header["splits"]:
            raise UserError(f"split {split!r} not in {self.folder}; it has {', '.join(self.header['splits'])}")
        self.split = split
        dtype = np.dtype(self.header["dtype"])
        self.shards: list[Shard] = []
        for info in self.header["splits"][split]:
            self.shards.append(Shard(self.folder, info["name"], dtype, info["tokens"], info["sentences"], info["documents"]))

    @property
    def special_ids(self) -> dict[str, int]:
        return dict(self.header["special_ids"])

    @property
    def tokenizer_folder(self) -> Path:
        return self.folder / self.header.get("tokenizer", "tokenizer")

    @property
    def num_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.shards)

    @property
    def num_documents(self) -> int:
        return sum(s.num_documents for s in self.shards)

    def __len__(self) -> int:
        return len(self.shards)


def _memmap(path: Path, dtype: Any, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=dtype)
    if not path.is_file():
        raise MissingFileError(f"shard file {path} is missing; re-run prepare-corpus")
    expected = count * np.dtype(dtype).itemsize
    if path.stat().st_size != expected:
        raise UserError(f"shard file {path} has {path.stat().st_size} bytes, the header says {expected}; re-run prepare-corpus")
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,))
