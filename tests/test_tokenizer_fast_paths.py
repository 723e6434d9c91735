"""The tokenizer's fast paths against HuggingFace's BertTokenizerFast and against its own slow paths: offsets
computed per cached chunk (offsets.py), QA windows on real SQuAD questions and contexts (a context asked
several questions is encoded once), and a batch call over forked worker processes (processes.py)."""
from __future__ import annotations

import json
import lzma
import os
import random

import pytest

from bertkit import BertTokenizer
from bertkit.errors import UserError
from bertkit.tokenizer.processes import shard_bounds, worker_count

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
transformers = pytest.importorskip("transformers")

import test_tokenizer_hf_calls  # noqa: E402

ours, hf = test_tokenizer_hf_calls.ours, test_tokenizer_hf_calls.hf  # the same two tokenizers, as fixtures

QA_CALL = dict(truncation="only_second", max_length=384, stride=128, return_overflowing_tokens=True,
               return_offsets_mapping=True)
# ASCII punctuation beside combining marks, deleted and expanding characters, CJK, Hangul, odd whitespace
ALPHABET = list("abcXYZ019 ,.-'()!?\"\t\n") + [
    "\u0301", "\u0327", "\u302e", "\x00", "\x0b", "\x85", "\u200b", "\ue3dc", "é", "Ł", "한", "国", "ß", "İ",
    "ﬁ", "…", "—", "“", "\xa0", "\u3000", "ǅ", "Å", "\u0345", "ϓ"]


@pytest.fixture(scope="module")
def squad(shared_data) -> tuple[list[str], list[str]]:
    """(questions, their contexts) of the first 25 SQuAD paragraphs and the 15 longest (which overflow 384
    tokens), questions as run_qa.py strips them."""
    with lzma.open(shared_data / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz", "rt", encoding="utf-8") as f:
        paragraphs = [p for article in json.load(f)["data"] for p in article["paragraphs"]]
    paragraphs = paragraphs[:25] + sorted(paragraphs[25:], key=lambda p: -len(p["context"]))[:15]
    pairs = [(qa["question"].lstrip(), p["context"]) for p in paragraphs for qa in p["qas"]]
    return [q for q, _ in pairs], [c for _, c in pairs]


def as_lists(encoding, key: str) -> list:
    if key == "offset_mapping":
        return [[tuple(span) for span in row] for row in encoding[key]]
    return [list(row) if isinstance(row, list) else row for row in encoding[key]]


def assert_same(mine, theirs, keys=("input_ids", "token_type_ids", "attention_mask", "offset_mapping")) -> None:
    for key in keys:
        assert as_lists(mine, key) == as_lists(theirs, key), key


def test_offsets_and_word_ids_match_hf_on_random_text(ours, hf) -> None:
    rng = random.Random(0)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    texts += [",\u0301a", "a\u0301,\u0327b", "(\x00)", "é,ﬁ.", "x\u302e\u0301!"]
    mine, theirs = ours(texts, return_offsets_mapping=True), hf(texts, return_offsets_mapping=True)
    assert_same(mine, theirs)
    assert all(mine.word_ids(i) == theirs.word_ids(i) for i in range(len(texts)))


def test_squad_contexts_with_offsets_match_hf(ours, hf, squad) -> None:
    contexts = list(dict.fromkeys(squad[1]))
    assert_same(ours(contexts, return_offsets_mapping=True), hf(contexts, return_offsets_mapping=True))


def test_squad_qa_windows_match_hf(ours, hf, squad) -> None:
    questions, contexts = squad
    mine, theirs = ours(questions, contexts, **QA_CALL), hf(questions, contexts, **QA_CALL)
    assert_same(mine, theirs, ("input_ids", "token_type_ids", "attention_mask", "offset_mapping",
                               "overflow_to_sample_mapping"))
    assert len(mine["input_ids"]) > len(questions)  # some contexts overflow into several windows
    assert all(mine.sequence_ids(i) == theirs.sequence_ids(i) for i in range(0, len(mine["input_ids"]), 7))


def test_qa_windows_with_small_windows_match_hf(ours, hf, squad) -> None:
    questions, contexts = squad[0][:60], squad[1][:60]
    call = dict(QA_CALL, max_length=64, stride=16)
    assert_same(ours(questions, contexts, **call), hf(questions, contexts, **call),
                ("input_ids", "offset_mapping", "overflow_to_sample_mapping"))


def test_a_repeated_context_gives_the_rows_of_distinct_copies(ours, squad) -> None:
    questions, contexts = squad[0][:30], squad[1][:30]
    copies = ["".join(c) for c in contexts]  # equal strings, distinct objects
    again = ours(questions, copies, **QA_CALL)
    assert dict(ours(questions, contexts, **QA_CALL)) == dict(again)
    assert again.word_ids(3) == ours(questions[3], contexts[3], **QA_CALL).word_ids(0)


@pytest.mark.parametrize("call", [
    {}, {"return_offsets_mapping": True}, {"return_special_tokens_mask": True, "padding": True},
    QA_CALL, dict(QA_CALL, max_length=48, stride=8, padding="max_length"),
])
def test_worker_processes_give_the_single_process_rows(minilm_dir, squad, call) -> None:
    questions, contexts = squad[0][:80], squad[1][:80]
    single, several = BertTokenizer.from_pretrained(minilm_dir), BertTokenizer.from_pretrained(minilm_dir)
    several.num_workers = 3
    inputs = (questions, contexts) if "truncation" in call else (contexts,)
    expected, got = single(*inputs, **call), several(*inputs, **call)
    assert dict(expected) == dict(got)
    assert [got.word_ids(i) for i in (0, len(got["input_ids"]) - 1)] == \
        [expected.word_ids(i) for i in (0, len(expected["input_ids"]) - 1)]


def test_worker_processes_see_added_tokens_and_raise_errors(minilm_dir) -> None:
    tokenizer = BertTokenizer.from_pretrained(minilm_dir)
    tokenizer.add_tokens(["covidx"])
    texts = [f"Text {i} mentions COVIDX and more words." for i in range(50)]
    expected = tokenizer(texts, return_offsets_mapping=True)
    tokenizer.num_workers = 2
    assert dict(tokenizer(texts, return_offsets_mapping=True)) == dict(expected)
    questions = ["hi"] * 49 + ["a b c d e f g h i j"]  # the last cannot fit 8 tokens, whatever the context
    assert shard_bounds([len(q) + 1 for q in questions], 2)[1][0] < 49  # it is in the worker's shard
    with pytest.raises(UserError, match="cannot fit"):  # raised in the worker, re-raised here
        tokenizer(questions, ["c"] * 50, truncation="only_second", max_length=8)


def test_shard_bounds_cover_every_item_once() -> None:
    assert shard_bounds([5, 5, 5, 5], 2) == [(0, 2), (2, 4)]
    assert shard_bounds([1], 4) == [(0, 1)]
    for count in (1, 2, 3, 7):
        lengths = [random.Random(count).randint(0, 50) for _ in range(40)]
        bounds = shard_bounds(lengths, count)
        assert len(bounds) == count and bounds[0][0] == 0 and bounds[-1][1] == 40
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bounds, bounds[1:]))
    assert worker_count(None) == worker_count(1) == 1
