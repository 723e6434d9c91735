"""`bertkit prepare-corpus`: readers, streaming shard writer, memory-mapped round trip, clear errors."""
from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from bertkit.cli import main as cli_main
from bertkit.data.corpus import (
    TokenShards,
    iter_documents,
    prepare_corpus,
    read_wikiextractor_documents,
    split_sentences,
    token_dtype,
)
from bertkit.errors import UserError
from bertkit.tokenizer import BertTokenizer

WIKI = "text-en-wikipedia/enwiki-wikitasks-text-AA.tar.xz"


def make_wiki_corpus(shared_data: Path, minilm_dir: Path, out: Path, documents: int = 400, valid_fraction: float = 0.05) -> Path:
    """A small real corpus: the first Wikipedia documents with body text, tokenized with bertkit (used by the other data tests)."""
    tokenizer = BertTokenizer.from_pretrained(minilm_dir)
    prepare_corpus([shared_data / WIKI], out, tokenizer, max_documents=documents, valid_fraction=valid_fraction, progress=False)
    return out


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return BertTokenizer.from_pretrained(minilm_dir)


def test_wikiextractor_reader_skips_titles_and_title_only_documents():
    text = """<doc id="1" url="?curid=1" title="Empty">
Empty

</doc>
<doc id="2" url="?curid=2" title="Lobster">
Lobster

The European lobster lives in the Atlantic. It is blue in life.
Description.
Dr. Smith measured it at 60 cm. It weighed 6 kg.
</doc>
<doc id="3" url="?curid=3" title="Only title">
Only title
</doc>
"""
    docs = list(read_wikiextractor_documents(text.splitlines(True)))
    assert docs == [[
        "The European lobster lives in the Atlantic.", "It is blue in life.", "Description.",
        "Dr. Smith measured it at 60 cm.", "It weighed 6 kg.",
    ]]


def test_sentence_splitter_keeps_abbreviations_and_initials():
    assert split_sentences("J. R. R. Tolkien wrote it. Mr. Baggins agreed! Did he? Yes.") == [
        "J. R. R. Tolkien wrote it.", "Mr. Baggins agreed!", "Did he?", "Yes."]


def test_real_wikipedia_documents_have_body_text(shared_data):
    docs = []
    for doc in iter_documents([shared_data / WIKI]):
        docs.append(doc)
        if len(docs) == 300:
            break
    assert len(docs) == 300
    assert all(len(doc) >= 1 and all(s.strip() for s in doc) for doc in docs)
    # title lines are gone: no document starts with its one-line title followed by the same words
    lengths = [len(s.split()) for doc in docs for s in doc]
    assert np.median(lengths) > 8  # sentences, not headings or titles


def test_round_trip_lines_and_jsonl(tmp_path, tokenizer):
    lines = tmp_path / "a.txt"
    lines.write_text("The cat sat on the mat.\nIt purred.\n\n\nA second document starts here.\nIt has two sentences.\n\n")
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(json.dumps({"text": "Paris is the capital of France. It is large.\nNew paragraph here.", "id": 1}) + "\n"
                     + json.dumps({"text": ""}) + "\n")
    header = prepare_corpus([lines, jsonl], tmp_path / "out", tokenizer, valid_fraction=0.0, progress=False)
    assert header["documents"] == 3 and header["dtype"] == "uint16"  # the empty record is no document
    shards = TokenShards(tmp_path / "out", "train")
    shard = shards.shards[0]
    expected = [
        ["The cat sat on the mat.", "It purred."],
        ["A second document starts here.", "It has two sentences."],
        ["Paris is the capital of France.", "It is large.", "New paragraph here."],
    ]
    assert shard.num_documents == 3
    for d, sentences in enumerate(expected):
        got = [list(map(int, s)) for s in shard.sentences(d)]
        assert got == [tokenizer.encode(s, add_special_tokens=False) for s in sentences]
    assert shards.num_tokens == sum(len(tokenizer.encode(s, add_special_tokens=False)) for d in expected for s in d)
    # pickles as file names (DataLoader workers reopen the maps rather than copy the data)
    import pickle

    blob = pickle.dumps(shards)
    assert len(blob) < 2_000
    again = pickle.loads(blob)
    assert isinstance(again.shards[0].tokens, np.memmap) and np.array_equal(again.shards[0].tokens, shard.tokens)
    # the tokenizer travels with the shards
    assert BertTokenizer.from_pretrained(shards.tokenizer_folder).vocab == tokenizer.vocab
    assert shards.special_ids["mask"] == tokenizer.mask_token_id


def test_valid_split_and_shard_rotation_on_real_text(tmp_path, shared_data, minilm_dir, tokenizer):
    header = prepare_corpus([shared_data / WIKI], tmp_path / "c", tokenizer, max_documents=200, valid_fraction=0.1,
                            shard_tokens=20_000, chunk_tokens=1_000, progress=False)
    train, valid = TokenShards(tmp_path / "c", "train"), TokenShards(tmp_path / "c", "valid")
    assert len(train) >= 3  # rotated after the document that passes 20k tokens
    assert all(s["tokens"] >= 20_000 for s in header["splits"]["train"][:-1])
    assert train.num_documents + valid.num_documents == header["documents"] == 200
    assert 5 <= valid.num_documents <= 40
    assert train.num_tokens + valid.num_tokens == header["tokens"]
    for shard in train.shards:  # offsets are consistent and every sentence decodes to text
        assert shard.sentence_offsets[0] == 0 and shard.sentence_offsets[-1] == len(shard.tokens)
        assert np.all(np.diff(shard.sentence_offsets) > 0)
        assert shard.document_offsets[-1] == len(shard.sentence_offsets) - 1
        assert isinstance(shard.tokens, np.memmap)
    text = tokenizer.decode(list(map(int, train.shards[0].sentences(0)[0])))
    assert len(text.split()) > 3


class HashTokenizer:
    """Whitespace words hashed into a fixed vocabulary: lets the memory test measure the writer alone."""

    vocab = {f"w{i}": i for i in range(1000)}
    cls_token_id, sep_token_id, mask_token_id, pad_token_id, unk_token_id = 1, 2, 3, 0, 4

    def __len__(self) -> int:
        return len(self.vocab)

    def __call__(self, sentences, add_special_tokens=False):
        return {"input_ids": [[5 + hash(w) % 995 for w in s.split()] for s in sentences]}

    def save_pretrained(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)


def test_streaming_memory_does_not_grow_with_corpus_size(tmp_path):
    rng = np.random.default_rng(0)
    words = np.array([f"word{i}" for i in range(500)])

    sentences = [" ".join(rng.choice(words, 12)) for _ in range(997)]

    def write(path: Path, documents: int) -> int:
        with path.open("w") as f:
            for d in range(documents):
                f.write("\n".join(sentences[(d * 8 + k) % 997] for k in range(8)) + "\n\n")
        return path.stat().st_size

    peaks = []
    for documents in (1_000, 4_000):
        src = tmp_path / f"corpus{documents}.txt"
        size = write(src, documents)
        tracemalloc.start()
        header = prepare_corpus([src], tmp_path / f"out{documents}", HashTokenizer(), valid_fraction=0.0,
                                chunk_tokens=4_096, batch_sentences=64, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert header["tokens"] == documents * 8 * 12
    # 4x the text, about the same peak: nothing accumulates (and the peak is a fraction of the file)
    assert peaks[1] < 1.3 * peaks[0]
    assert peaks[1] < size / 4
    shards = TokenShards(tmp_path / "out4000", "train")
    assert shards.num_documents == 4000 and shards.num_tokens == 4000 * 96


def test_token_dtype_grows_with_vocabulary():
    assert token_dtype(30522) == np.uint16 and token_dtype(65536) == np.uint16 and token_dtype(120_000) == np.uint32


def test_clear_errors(tmp_path, tokenizer, capsys):
    with pytest.raises(FileNotFoundError, match="prepared corpus"):
        TokenShards(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": "no text field"}\n')
    with pytest.raises(ValueError, match="--text-field"):
        prepare_corpus([bad], tmp_path / "o", tokenizer, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_corpus([tmp_path / "missing.txt"], tmp_path / "o", tokenizer, progress=False)
    good = tmp_path / "g.txt"
    good.write_text("One sentence here.\n\nAnother document.\n")
    prepare_corpus([good], tmp_path / "ok", tokenizer, valid_fraction=0.0, progress=False)
    with (tmp_path / "ok" / "train-00000.tokens.bin").open("ab") as f:
        f.write(b"\0\0")  # corrupted shard
    with pytest.raises(ValueError, match="re-run prepare-corpus"):
        TokenShards(tmp_path / "ok")
    # the command prints one clear line and exits 2
    assert cli_main(["prepare-corpus", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x"),
                     "--tokenizer", str(tmp_path / "no-vocab")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_prepare_corpus(tmp_path, minilm_dir, capsys):
    src = tmp_path / "t.txt"
    src.write_text("Hello world.\nSecond line.\n\nNew document here.\n")
    assert cli_main(["prepare-corpus", str(src), "--out", str(tmp_path / "o"), "--tokenizer", str(minilm_dir),
                     "--valid-fraction", "0", "--no-progress"]) == 0
    assert "2 documents" in capsys.readouterr().out
    assert TokenShards(tmp_path / "o").num_documents == 2


def corpus_documents(folder: Path, split: str) -> list[tuple[tuple[int, ...], ...]]:
    """Every document of a split as a tuple of sentence tuples, in shard order."""
    shards = TokenShards(folder, split)
    return [tuple(tuple(map(int, s)) for s in shard.sentences(d)) for shard in shards.shards for d in range(shard.num_documents)]


def test_two_workers_write_the_same_documents_as_one(tmp_path, shared_data, tokenizer):
    """--workers 2: each process writes shards of its own; together they hold exactly the documents and tokens of
    --workers 1, with the same train/valid split (real Wikipedia text, groups small enough that both get many)."""
    options = dict(max_documents=300, valid_fraction=0.1, shard_tokens=15_000, group_chars=20_000, progress=False)
    one = prepare_corpus([shared_data / WIKI], tmp_path / "one", tokenizer, workers=1, **options)
    two = prepare_corpus([shared_data / WIKI], tmp_path / "two", tokenizer, workers=2, **options)
    assert {s["name"][:8] for s in two["splits"]["train"]} == {"train-w0", "train-w1"}
    assert all(s["name"].startswith("train-0") for s in one["splits"]["train"])  # one worker: today's names
    for key in ("documents", "skipped_documents", "tokens"):
        assert one[key] == two[key]
    for split in ("train", "valid"):
        docs_one, docs_two = corpus_documents(tmp_path / "one", split), corpus_documents(tmp_path / "two", split)
        assert len(docs_one) > 10 and sorted(docs_one) == sorted(docs_two)
        # each worker keeps input order: worker 0's documents are a subsequence of the one-worker order
        w0 = [doc for shard in TokenShards(tmp_path / "two", split).shards if "-w0-" in shard.name
              for doc in [tuple(tuple(map(int, s)) for s in shard.sentences(d)) for d in range(shard.num_documents)]]
        position = iter(docs_one)
        assert w0 and all(doc in position for doc in w0)


class FailingTokenizer(HashTokenizer):
    """Fails in the worker on the document that contains "FAIL" (as a user error, a bug, or a dying process)."""

    def __init__(self, how: str) -> None:
        self.how = how

    def __call__(self, sentences, add_special_tokens=False):
        if any("FAIL" in s for s in sentences):
            if self.how == "user":
                raise UserError("sentence 'FAIL' cannot be encoded")
            if self.how == "exit":
                os._exit(3)
            raise KeyError("a bug in the tokenizer")
        return super().__call__(sentences, add_special_tokens)


@pytest.mark.parametrize("how", ["user", "bug", "exit"])
def test_worker_errors_reach_the_caller(tmp_path, how):
    src = tmp_path / "a.txt"
    src.write_text("".join(f"Document {d} sentence.\nMore words here.\n\n" for d in range(200)) + "FAIL now.\n\n")
    expected = {"user": (UserError, "cannot be encoded"), "bug": (RuntimeError, "worker [01] failed:(.|\n)*KeyError"),
                "exit": (RuntimeError, "worker [01] died \\(exit code 3\\)")}[how]
    with pytest.raises(expected[0], match=expected[1]):  # groups of ~100 characters
        prepare_corpus([src], tmp_path / "o", FailingTokenizer(how), workers=2, group_chars=100, progress=False)
    assert not (tmp_path / "o" / "corpus.json").exists()


def test_cli_workers_flag(tmp_path, minilm_dir, capsys):
    src = tmp_path / "t.txt"
    src.write_text("".join(f"Document number {d} is here.\nIt has a second line.\n\n" for d in range(50)))
    assert cli_main(["prepare-corpus", str(src), "--out", str(tmp_path / "o"), "--tokenizer", str(minilm_dir),
                     "--valid-fraction", "0", "--no-progress", "--workers", "2"]) == 0
    assert "50 documents" in capsys.readouterr().out
    assert TokenShards(tmp_path / "o").num_documents == 50
    assert cli_main(["prepare-corpus", str(src), "--out", str(tmp_path / "p"), "--tokenizer", str(minilm_dir),
                     "--workers", "none"]) == 2
    assert "--workers must be" in capsys.readouterr().err
