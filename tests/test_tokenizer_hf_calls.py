"""The tokenizer calls of QA and NER code, each run on bertkit and on transformers' BertTokenizerFast (the real
all-MiniLM-L6-v2 vocabulary) with the same inputs: pairs as tuples in a list (`tok([(q, c)])`, transformers 4's
`batch_encode_plus`), the QA recipe's call (only_second, stride, overflow, offsets), and every BatchEncoding
lookup (char_to_token / char_to_word / token_to_chars / token_to_word / token_to_sequence / word_to_tokens /
word_to_chars) at every index, in both the single and the batch form. Then the tokenizer through pickle, a
spawn-context multiprocessing Pool and `datasets.Dataset.map(num_proc=2)`."""
from __future__ import annotations

import multiprocessing
import os
import pickle

import pytest

from bertkit import BertTokenizer
from bertkit.errors import UserError

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
transformers = pytest.importorskip("transformers")

PAIRS = [
    ("Where is the Eiffel Tower?", "The Eiffel Tower is in Paris, France. It was built in 1889 by Gustave Eiffel."),
    ("서울의 인구는?", "서울특별시는 대한민국의 수도이며, 인구는 약 950만 명이다. 한강이 도시를 가로지른다."),
    ("Qui a écrit « Les Misérables » ?", "Victor Hugo a écrit Les Misérables en 1862; c'était à Guernesey, "
     "où il vécut en exil. Crème brûlée, naïve café."),
    ("Who?", ""),
    ("", "An empty question still pairs with its context."),
]
TEXTS = ["Hugging Face is based in New York City.", "한국어 문장도 잘 나뉘어야 한다 (테스트).",
         "Ångström, naïveté, façade — déjà vu!", "x"]
QA_RECIPE = dict(truncation="only_second", max_length=32, stride=8, return_overflowing_tokens=True,
                 return_offsets_mapping=True, padding="max_length")
CALLS = {"compared": 0}  # lookups run on both tokenizers; the module's last test checks and reports it


@pytest.fixture(scope="module")
def ours(minilm_dir) -> BertTokenizer:
    return BertTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def hf(minilm_dir):
    return transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))


def outcome(call):
    """A call's result, or the fact that it raised (the exception type may differ: ours is a UserError)."""
    try:
        return call()
    except (UserError, TypeError, OverflowError, AttributeError, IndexError):
        return "raises"


def same_fields(mine, theirs) -> None:
    assert sorted(mine) == sorted(theirs)
    for key in theirs:
        expected = theirs[key]
        if key == "offset_mapping":
            expected = [[tuple(o) for o in row] for row in expected] if expected and isinstance(expected[0], list) \
                else [tuple(o) for o in expected]
        assert mine[key] == expected, key


def same_lookups(mine, theirs, n_rows: int, max_chars: int) -> None:
    """Every lookup at every index (and one past each end), both call forms; None and errors compared too."""
    assert mine.n_sequences == theirs.n_sequences
    n_tokens = len(theirs.encodings[0].ids)
    max_words = max((w for row in range(n_rows) for w in theirs.word_ids(row) if w is not None), default=0) + 2
    for row in range(n_rows):
        assert mine.tokens(row) == theirs.tokens(row)
        assert mine.word_ids(row) == theirs.word_ids(row)
        assert mine.sequence_ids(row) == theirs.sequence_ids(row)
        forms = [lambda name, *args, row=row, **kw: (getattr(mine, name)(row, *args, **kw),
                                                     getattr(theirs, name)(row, *args, **kw))]
        if row == 0:
            forms.append(lambda name, *args, **kw: (getattr(mine, name)(*args, **kw), getattr(theirs, name)(*args, **kw)))
        for both in forms:
            for name, indices in (("token_to_chars", n_tokens + 1), ("token_to_word", n_tokens + 1),
                                  ("token_to_sequence", n_tokens + 1)):
                for i in range(indices):
                    a, b = both(name, i)
                    assert a == b and type(a).__name__ == type(b).__name__, (name, row, i, a, b)
                    CALLS["compared"] += 1
            for sequence_index in (0, 1, 2):
                for name, indices in (("char_to_token", max_chars + 1), ("char_to_word", max_chars + 1),
                                      ("word_to_tokens", max_words), ("word_to_chars", max_words)):
                    for i in range(indices):
                        a = outcome(lambda: both(name, i, sequence_index=sequence_index)[0])
                        b = outcome(lambda: both(name, i, sequence_index=sequence_index)[1])
                        assert a == b, (name, row, i, sequence_index, a, b)
                        if a is not None and a != "raises":
                            assert type(a).__name__ == type(b).__name__, (name, a, b)  # CharSpan / TokenSpan / int
                        CALLS["compared"] += 1


def longest(texts) -> int:
    return max(len(t) for t in texts)


# ------------------------------------------------------------------------------------------ pairs as tuples
@pytest.mark.parametrize("options", [{}, {"padding": True}, {"return_offsets_mapping": True}, QA_RECIPE,
                                     dict(QA_RECIPE, truncation="longest_first", padding=True, padding_side="left"),
                                     {"add_special_tokens": False, "return_special_tokens_mask": True}],
                         ids=["plain", "padded", "offsets", "qa-recipe", "longest-first-left", "no-specials"])
def test_pairs_as_tuples_match_hf(ours, hf, options):
    mine, theirs = ours(PAIRS, **options), hf(PAIRS, **options)
    same_fields(mine, theirs)
    same_lookups(mine, theirs, len(theirs["input_ids"]), longest(c for pair in PAIRS for c in pair))
    # the same pairs as two lists give the same rows; tuples and two-item lists are both pairs, as in HF
    same_fields(ours([q for q, _ in PAIRS], [c for _, c in PAIRS], **options), theirs)
    same_fields(ours([list(p) for p in PAIRS], **options), hf([list(p) for p in PAIRS], **options))


def test_batch_encode_plus_qa_recipe(ours, hf):
    # transformers 4's batch_encode_plus is its call for a list (5 dropped it): compare with the call
    reference = getattr(hf, "batch_encode_plus", hf)
    mine, theirs = ours.batch_encode_plus(PAIRS, **QA_RECIPE), reference(PAIRS, **QA_RECIPE)
    same_fields(mine, theirs)
    assert len(theirs["input_ids"]) > len(PAIRS)  # the stride windows are there
    same_lookups(mine, theirs, len(theirs["input_ids"]), longest(c for pair in PAIRS for c in pair))
    same_fields(ours.batch_encode_plus(batch_text_or_text_pairs=TEXTS), hf(TEXTS))
    single = ours.encode_plus(*PAIRS[0], return_offsets_mapping=True)
    same_fields(single, hf(*PAIRS[0], return_offsets_mapping=True))
    with pytest.raises(TypeError, match="list of texts"):
        ours.batch_encode_plus("one text")


def test_single_texts_mixed_batches_and_presplit_pairs(ours, hf):
    for args, kwargs in [((TEXTS,), {"padding": True}), ((TEXTS[0],), {}), ((TEXTS[2],), {"max_length": 6}),
                         (PAIRS[2], {}), (PAIRS[0], {"truncation": "only_second", "max_length": 20, "stride": 4,
                                                     "return_overflowing_tokens": True}),
                         (([TEXTS[0], PAIRS[1], TEXTS[1], PAIRS[0]],), {"padding": True})]:
        mine, theirs = ours(*args, **kwargs), hf(*args, **kwargs)
        same_fields(mine, theirs)
        n_rows = len(theirs.encodings)
        same_lookups(mine, theirs, n_rows, longest([*TEXTS, *(c for p in PAIRS for c in p)]))
    words = [(q.split(), c.split()) for q, c in PAIRS[:3]]
    mine, theirs = ours(words, is_split_into_words=True), hf(words, is_split_into_words=True)
    same_fields(mine, theirs)
    same_lookups(mine, theirs, len(words), 30)


def test_errors_where_hf_raises(ours, hf):
    mine, theirs = ours(PAIRS[:2], padding=True), hf(PAIRS[:2], padding=True)
    for name in ("token_to_word", "token_to_sequence", "token_to_chars", "char_to_token", "char_to_word",
                 "word_to_tokens", "word_to_chars"):
        assert outcome(lambda: getattr(theirs, name)(-1)) == "raises"
        with pytest.raises(UserError, match=">= 0"):
            getattr(mine, name)(-1)
    for call in (lambda e: e.word_to_chars(0, 500), lambda e: e.char_to_token(0, 0, sequence_index=-1),
                 lambda e: e.tokens(5)):
        assert outcome(lambda: call(theirs)) == outcome(lambda: call(mine)) == "raises"
    with pytest.raises(UserError, match="word_to_tokens"):
        mine.word_to_chars(0, 500)
    for bad in ([("a", "b", "c")], [("a", 3)]):
        assert outcome(lambda: hf(bad)) == "raises"
        with pytest.raises(TypeError, match="pair"):
            ours(bad)
    with pytest.raises(UserError, match="text_pair"):
        ours(PAIRS, ["second"] * len(PAIRS))


# ------------------------------------------------------------------------------------------ pickling
def test_tokenizer_pickles_with_identical_outputs(ours, minilm_dir):
    ours(PAIRS, **QA_RECIPE).word_ids()  # warm the caches first: they must not travel, nor break the copy
    again = pickle.loads(pickle.dumps(ours))
    assert len(pickle.dumps(ours)) == len(pickle.dumps(BertTokenizer.from_pretrained(minilm_dir)))
    for args, kwargs in [((PAIRS,), QA_RECIPE), ((TEXTS,), {"return_offsets_mapping": True, "padding": True})]:
        mine, copy = ours(*args, **kwargs), again(*args, **kwargs)
        assert dict(mine) == dict(copy)
        assert [e.word_ids for e in mine.encodings] == [e.word_ids for e in copy.encodings]
    assert again.decode(again(TEXTS[0])["input_ids"]) == ours.decode(ours(TEXTS[0])["input_ids"])
    batch = pickle.loads(pickle.dumps(ours(PAIRS)))
    assert batch.n_sequences == 2 and batch.char_to_token(2, 5, sequence_index=1) == ours(PAIRS).char_to_token(
        2, 5, sequence_index=1)


def test_tokenizer_in_a_spawned_pool(ours):
    texts = TEXTS + [c for _, c in PAIRS]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(ours, texts)
    assert [r["input_ids"] for r in results] == [ours(t)["input_ids"] for t in texts]


def test_tokenizer_in_datasets_map_num_proc(ours, hf):
    datasets = pytest.importorskip("datasets")
    data = datasets.Dataset.from_dict({"question": [q for q, _ in PAIRS] * 2, "context": [c for _, c in PAIRS] * 2})

    def encode(batch):
        return ours(batch["question"], batch["context"], truncation="only_second", max_length=32)

    mapped = data.map(encode, batched=True, num_proc=2)
    expected = hf(list(data["question"]), list(data["context"]), truncation="only_second", max_length=32)
    assert list(mapped["input_ids"]) == expected["input_ids"]
    assert list(mapped["token_type_ids"]) == expected["token_type_ids"]


def test_calls_compared():
    # keep last: the number of lookups compared above (the file runs in one worker's order under -n)
    if CALLS["compared"] == 0:
        pytest.skip("run with the lookup tests to count the calls compared")
    print(f"\n{CALLS['compared']} BatchEncoding lookups compared with transformers")
    assert CALLS["compared"] > 10_000
