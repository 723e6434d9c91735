"""BertTokenizer against HuggingFace's BertTokenizerFast (the oracle), on the seeds' examples and the options
users call every day. Real-text parity lives in test_tokenizer_parity.py."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from bertkit import AutoTokenizer, BatchEncoding, BertTokenizer, BertTokenizerFast

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread: the machine is shared
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def ours(minilm_dir):
    return BertTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="session")
def hf(minilm_dir):
    return transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))


def plain(value):
    """tensors / tuples -> nested lists, so both sides compare as data."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def assert_same(ours, hf, *args, **kwargs):
    """Every field, and word_ids / sequence_ids of every row, equal HuggingFace's."""
    mine, theirs = ours(*args, **kwargs), hf(*args, **kwargs)
    assert isinstance(mine, BatchEncoding)
    assert sorted(mine.keys()) == sorted(theirs.keys())
    for key in theirs:
        assert plain(mine[key]) == plain(theirs[key]), key
    rows = len(theirs.encodings)
    for i in range(rows):
        assert mine.word_ids(i) == theirs.word_ids(i), f"word_ids row {i}"
        assert mine.sequence_ids(i) == theirs.sequence_ids(i), f"sequence_ids row {i}"
        assert mine.tokens(i) == theirs.tokens(i), f"tokens row {i}"
    return mine


# ------------------------------------------------------------------------------------------ the seeds
def test_seed_examples(ours):
    assert ours("I love Paris")["input_ids"] == [101, 1045, 2293, 3000, 102]
    tokens = ours.tokenize("COVID-19 pandemic")
    assert tokens == ["co", "##vid", "-", "19", "pan", "##de", "##mic"]
    assert ours.convert_tokens_to_ids(tokens) == [2522, 17258, 1011, 2539, 6090, 3207, 7712]
    pair = ours("The weather is nice", "Let's fo for a work")
    assert pair["token_type_ids"] == [0] * 6 + [1] * 9
    assert ours.convert_ids_to_tokens(pair["input_ids"]) == [
        "[CLS]", "the", "weather", "is", "nice", "[SEP]", "let", "'", "s", "f", "##o", "for", "a", "work", "[SEP]"]
    # seed 002's round trips: tokenize -> ids -> decode
    for sentence, tokens, ids, decoded in [
        ("Hello, world!", ["hello", ",", "world", "!"], [7592, 1010, 2088, 999], "hello, world!"),
        ("unbelievable performance!", ["unbelievable", "performance", "!"], [23653, 2836, 999],
         "unbelievable performance!"),
        ("COVID-19 pandemic", ["co", "##vid", "-", "19", "pan", "##de", "##mic"],
         [2522, 17258, 1011, 2539, 6090, 3207, 7712], "covid - 19 pandemic"),
    ]:
        assert ours.tokenize(sentence) == tokens
        assert ours.convert_tokens_to_ids(tokens) == ids
        assert ours.decode(ids) == decoded
    batch = ours(["short sentence", "This is a much longer sentence with more words"], padding=True)
    assert batch["input_ids"][0] == [101, 2460, 6251, 102] + [0] * 7
    assert batch["attention_mask"][0] == [1] * 4 + [0] * 7
    assert batch["attention_mask"][1] == [1] * 11


def test_seed_examples_match_hf(ours, hf):
    assert_same(ours, hf, "I love Paris")
    assert_same(ours, hf, "COVID-19 pandemic", return_offsets_mapping=True)
    assert_same(ours, hf, "The weather is nice", "Let's fo for a work", return_offsets_mapping=True)
    assert_same(ours, hf, ["short sentence", "This is a much longer sentence with more words"], padding=True,
                return_tensors="pt")


def test_aliases(minilm_dir):
    assert BertTokenizerFast is BertTokenizer
    assert isinstance(AutoTokenizer.from_pretrained(minilm_dir), BertTokenizer)


TRICKY = [
    "Hello, world! I don't know... (really?) #hashtag @user e-mail: a.b@c.com $3.50 50% 1,000",
    "Café résumé naïve ÀÉÎÕÜ Straße İstanbul ΟΔΟΣ",
    "한국어 텍스트입니다. 면역 체계는 어떻게 작동할까요?",
    "中文字符和日本語のテキスト、混合 text 123",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic space",
    "zero\u200bwidth soft\u00adhyphen bom\ufeff private\ue000use repl\ufffdchar nul\x00 bell\x07 \x0bvt\x1fus",
    "emoji 😀🥰👍🏽 flags 🇰🇷 math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "[CLS] already [SEP] has [MASK] special[PAD]tokens [UNK] and [mask] lowercase",
    "a" * 101 + " " + "b" * 100 + " supercalifragilisticexpialidocious",
    "",
    "   \t\n  ",
]


@pytest.mark.parametrize("text", TRICKY)
def test_single_text_matches_hf(ours, hf, text):
    assert_same(ours, hf, text, return_offsets_mapping=True, return_special_tokens_mask=True)
    assert ours.tokenize(text) == hf.tokenize(text)


def test_pairs_batches_padding(ours, hf):
    firsts, seconds = TRICKY[:6], TRICKY[5:11]
    assert_same(ours, hf, firsts, seconds, padding=True, return_offsets_mapping=True, return_length=True)
    assert_same(ours, hf, firsts, padding="max_length", max_length=40, truncation=True)
    assert_same(ours, hf, firsts, seconds, padding="longest", pad_to_multiple_of=8, return_tensors="np")
    assert_same(ours, hf, firsts, padding=True, padding_side="left", return_offsets_mapping=True)
    assert_same(ours, hf, firsts, return_token_type_ids=False, return_attention_mask=False)
    assert_same(ours, hf, firsts, add_special_tokens=False, return_offsets_mapping=True)
    assert_same(ours, hf, firsts, seconds, add_special_tokens=False, return_offsets_mapping=True)


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second", True])
@pytest.mark.parametrize("max_length", [9, 10, 17, 24])
def test_pair_truncation(ours, hf, strategy, max_length):
    first = "The quick brown fox jumps over the lazy dog near the river bank today"
    seconds = ["A short one", "A much longer second sentence that goes on and on about nothing much at all",
               "Exactly eleven tokens in this second text right here"]
    for second in seconds:
        for a, b in ((first, second), (second, first)):
            try:
                expected = hf(a, b, truncation=strategy, max_length=max_length)
            except Exception:  # HuggingFace refuses: we must refuse too, with a clear error
                with pytest.raises(ValueError):
                    ours(a, b, truncation=strategy, max_length=max_length)
                continue
            assert_same(ours, hf, a, b, truncation=strategy, max_length=max_length,
                        return_offsets_mapping=True)
            assert expected["input_ids"] == ours(a, b, truncation=strategy, max_length=max_length)["input_ids"]


def test_odd_budget_tie_favours_second(ours):
    # 7 tokens each, budget 13 - 3 = 10 each side cannot keep: 5 for the first, 5... odd budget 11 -> 5 / 6
    text = "one two three four five six seven"
    encoding = ours(text, text, truncation="longest_first", max_length=14)
    assert encoding["token_type_ids"].count(0) == 1 + 5 + 1
    assert encoding["token_type_ids"].count(1) == 6 + 1


@pytest.mark.parametrize("stride", [0, 2, 5])
def test_overflow_with_stride_matches_hf(ours, hf, stride):
    question = "Where do water droplets collide with ice crystals to form precipitation?"
    context = ("In meteorology, precipitation is any product of the condensation of atmospheric water vapor that "
               "falls under gravity. The main forms of precipitation include drizzle, rain, sleet, snow, graupel "
               "and hail. Precipitation forms as smaller droplets coalesce via collision with other rain drops or "
               "ice crystals within a cloud. Short, intense periods of rain in scattered locations are called showers.")
    kwargs = dict(truncation="only_second", max_length=40, stride=stride, return_overflowing_tokens=True,
                  return_offsets_mapping=True, padding="max_length")
    mine = assert_same(ours, hf, [question, question[:20]], [context, context[50:]], **kwargs)
    assert len(mine["input_ids"]) > 2
    assert_same(ours, hf, context, truncation=True, max_length=16, stride=stride, return_overflowing_tokens=True)
    assert_same(ours, hf, [context, question], truncation=True, max_length=12, stride=stride,
                return_overflowing_tokens=True, padding=True, return_tensors="pt")
    assert_same(ours, hf, context, context[100:], truncation="longest_first", max_length=30, stride=stride,
                return_overflowing_tokens=True)


def test_zero_budget_overflow_matches_hf(ours, hf):
    # When one side of a pair gets no room, HuggingFace moves it whole into an overflow row (which then runs
    # over max_length); we do the same.
    for kwargs in (dict(text="[MASK]", text_pair="[MASK]", max_length=4),
                   dict(text="a b c", text_pair="d e f", max_length=5), dict(text="a b c", max_length=2)):
        assert_same(ours, hf, **kwargs, truncation=True, return_overflowing_tokens=True, return_offsets_mapping=True)


def test_truncation_side_left(minilm_dir, hf):
    ours_left = BertTokenizer.from_pretrained(minilm_dir, truncation_side="left")
    hf_left = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir), truncation_side="left")
    text = "one two three four five six seven eight nine ten eleven twelve"
    assert_same(ours_left, hf_left, text, truncation=True, max_length=7, stride=2, return_overflowing_tokens=True,
                return_offsets_mapping=True)


def test_is_split_into_words(ours, hf):
    words = [["Hugging", "Face", "is", "in", "NYC", "don't", "[MASK]", ""], ["Seoul", "서울특별시", "café"]]
    assert_same(ours, hf, words, is_split_into_words=True, padding=True, return_offsets_mapping=True)
    assert_same(ours, hf, words[0], is_split_into_words=True, return_offsets_mapping=True)
    assert_same(ours, hf, words, [["pair", "words"], ["x"]], is_split_into_words=True, padding=True)


def test_return_tensors(ours, hf):
    mine = assert_same(ours, hf, ["a b c", "d"], padding=True, return_tensors="pt", return_offsets_mapping=True)
    assert mine["input_ids"].dtype == torch.long and mine["offset_mapping"].shape == (2, 5, 2)
    single = assert_same(ours, hf, "hello there", return_tensors="np")
    assert isinstance(single["input_ids"], np.ndarray) and single["input_ids"].shape == (1, 4)
    assert single.input_ids is single["input_ids"]
    with pytest.raises(ValueError, match="padding=True"):
        ours(["a b c", "d"], return_tensors="pt")
    with pytest.raises(ValueError, match="return_tensors"):
        ours("a", return_tensors="jax")  # "tf" is seed 001's: tests/test_seed001_tf.py


def test_encode_decode_match_hf(ours, hf):
    for text in TRICKY:
        ids = ours.encode(text)
        assert ids == hf.encode(text)
        assert ours.decode(ids) == hf.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == hf.decode(ids, skip_special_tokens=True)
        assert ours.decode(ids, clean_up_tokenization_spaces=True) == hf.decode(ids, clean_up_tokenization_spaces=True)
        assert ours.convert_ids_to_tokens(ids) == hf.convert_ids_to_tokens(ids)
        tokens = ours.tokenize(text)
        assert ours.convert_tokens_to_string(tokens) == hf.convert_tokens_to_string(tokens)
    for tokens in (["inc", "."], ["##s", "a"], ["i", "'", "m"], ["do", "not"], ["he", "##llo", "world", "!"]):
        assert ours.convert_tokens_to_string(tokens) == hf.convert_tokens_to_string(tokens)
    ids = ours.encode("Hello there", "General Kenobi")
    assert ours.decode(torch.tensor(ids)) == hf.decode(ids)
    assert ours.batch_decode([ids, ids[:3]]) == hf.batch_decode([ids, ids[:3]])
    assert ours.decode([5, 10**6]) == hf.decode([5, 10**6])  # unknown ids are dropped, as HuggingFace does


def test_attributes_match_hf(ours, hf):
    assert ours.vocab_size == hf.vocab_size and len(ours) == len(hf)
    assert ours.get_vocab() == hf.get_vocab() and ours.vocab == hf.vocab
    for name in ("unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(hf, f"{name}_token")
        assert getattr(ours, f"{name}_token_id") == getattr(hf, f"{name}_token_id")
    assert sorted(ours.all_special_ids) == sorted(hf.all_special_ids)
    assert sorted(ours.all_special_tokens) == sorted(hf.all_special_tokens)
    assert ours.model_max_length == hf.model_max_length == 512
    assert ours.convert_tokens_to_ids(["hello", "notawordpiece"]) == hf.convert_tokens_to_ids(["hello", "notawordpiece"])
    assert ours.convert_ids_to_tokens(7592) == hf.convert_ids_to_tokens(7592)
    a, b = hf.encode("hello world", add_special_tokens=False), hf.encode("bye", add_special_tokens=False)
    expected = hf("hello world", "bye", return_special_tokens_mask=True)
    assert ours.build_inputs_with_special_tokens(a, b) == expected["input_ids"]
    assert ours.create_token_type_ids_from_sequences(a, b) == expected["token_type_ids"]
    assert ours.get_special_tokens_mask(a, b) == expected["special_tokens_mask"]
    assert ours.get_special_tokens_mask(expected["input_ids"], already_has_special_tokens=True) == \
        expected["special_tokens_mask"]


def test_batch_encoding_helpers(ours, hf):
    text = "Hugging Face is based in New York City"
    mine, theirs = ours(text, "Where is it?"), hf(text, "Where is it?")
    for char in (0, 3, 8, 7, 30, 60):
        for seq in (0, 1):
            assert mine.char_to_token(char, sequence_index=seq) == theirs.char_to_token(char, sequence_index=seq)
    for token in range(len(theirs["input_ids"])):
        assert mine.token_to_word(token) == theirs.token_to_word(token)
        assert mine.token_to_chars(token) == (None if theirs.token_to_chars(token) is None
                                              else tuple(theirs.token_to_chars(token)))
    assert mine.word_to_tokens(2) == tuple(theirs.word_to_tokens(2))


def test_save_and_load_round_trip(ours, tmp_path):
    ours.save_pretrained(tmp_path)
    assert {"vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"} <= {
        p.name for p in tmp_path.iterdir()}
    again = BertTokenizer.from_pretrained(tmp_path)
    hf_loaded = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    for text in TRICKY:
        assert again(text, return_offsets_mapping=True) == ours(text, return_offsets_mapping=True)
        assert hf_loaded(text)["input_ids"] == ours(text)["input_ids"]
    # only vocab.txt + tokenizer_config.json (no tokenizer.json): the flags come from the config
    (tmp_path / "tokenizer.json").unlink()
    from_vocab = BertTokenizer.from_pretrained(tmp_path)
    assert from_vocab(TRICKY[1])["input_ids"] == ours(TRICKY[1])["input_ids"]
    assert from_vocab.model_max_length == 512


def test_cased_settings_match_hf(minilm_dir, tmp_path):
    # A cased configuration of the same vocab: no lowercasing, no accent stripping.
    config = json.loads((minilm_dir / "tokenizer_config.json").read_text())
    for name in ("vocab.txt", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((minilm_dir / name).read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))
    mine = BertTokenizer.from_pretrained(tmp_path)
    theirs = transformers.BertTokenizerFast.from_pretrained(str(tmp_path))
    for text in TRICKY:
        assert_same(mine, theirs, text, return_offsets_mapping=True)
    accents = BertTokenizer.from_pretrained(minilm_dir, do_lower_case=False, strip_accents=True)
    hf_accents = transformers.BertTokenizerFast.from_pretrained(str(tmp_path), strip_accents=True)
    assert_same(accents, hf_accents, TRICKY[1], return_offsets_mapping=True)


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_errors(ours, tmp_path):
    with pytest.raises(ValueError, match="None"):
        ours(None)
    with pytest.raises(TypeError, match="str"):
        ours(5)
    with pytest.raises(TypeError, match="int"):
        ours(["fine", 3])
    with pytest.raises(TypeError, match="is_split_into_words"):
        ours([["a", "b", "c"]])  # two items are a (text, pair), as in HF; three are words needing is_split_into_words
    with pytest.raises(ValueError, match="same size"):
        ours(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="special tokens"):
        ours("hello world", max_length=1, truncation=True)
    with pytest.raises(ValueError, match="stride"):
        ours("one two three four five six", max_length=5, truncation=True, stride=3, return_overflowing_tokens=True)
    with pytest.raises(ValueError, match="text_pair"):
        ours("a b c d", truncation="only_second", max_length=3)
    with pytest.raises(ValueError, match="padding"):
        ours("a", padding="sideways")
    with pytest.raises(ValueError, match="truncation"):
        ours("a", truncation="middle", max_length=5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        ours("a", return_sth=True)
    assert ours([])["input_ids"] == []


def test_bad_folders(tmp_path, minilm_dir):
    with pytest.raises(FileNotFoundError, match="no tokenizer folder"):
        BertTokenizer.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="neither vocab.txt nor tokenizer.json"):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n")
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").unlink()
    assert BertTokenizer.from_pretrained(tmp_path).tokenize("hello there") == ["hello", "[UNK]"]
    (tmp_path / "vocab.txt").write_text("[PAD]\nhello\nworld\n")
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\nhello\n")
    with pytest.raises(ValueError, match="twice"):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").unlink()
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": {}}}))
    with pytest.raises(ValueError, match="WordPiece"):
        BertTokenizer.from_pretrained(tmp_path)


def test_special_tokens_missing_from_vocab_are_added(tmp_path):
    (tmp_path / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\nhello\n")
    tokenizer = BertTokenizer.from_pretrained(tmp_path)
    hf_tokenizer = transformers.BertTokenizerFast.from_pretrained(str(tmp_path))
    assert len(tokenizer) == len(hf_tokenizer)
    assert_same(tokenizer, hf_tokenizer, ["hello [MASK] x", "hello"], padding=True)


def test_huge_text_in_one_call(ours, hf):
    text = ("The quick brown fox jumps over the lazy dog. 빠른 갈색 여우가 게으른 개를 뛰어넘는다! " * 12_000)[:1_000_000]
    mine = ours(text)["input_ids"]
    assert mine == hf(text)["input_ids"]


def test_docs_examples_run(minilm_dir, capsys):
    """Every python block of docs/tokenizer.md runs, and its printed results match the comments."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "tokenizer.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) >= 5
    for block in blocks:
        exec(block.replace("path/to/bert-folder", str(minilm_dir)), {})
    printed = capsys.readouterr().out
    for expected in ("[101, 1045, 2293, 3000, 102]", "covid - 19 pandemic", "torch.Size([2, 11])",
                     "[None, 0, 0, 0, 0, 0, 0, None]", "[0, 0]", "면역 체계 cafe", "[None, 0, 1, 2, 3, 4, None]",
                     "[('hello', 0, 5), (',', 5, 6), ('world', 7, 12), ('!', 12, 13)]"):
        assert expected in printed


def test_pad_matches_hf(ours, hf):
    features = [ours(text, truncation=True, max_length=12) for text in TRICKY[:4]]
    theirs_features = [hf(text, truncation=True, max_length=12) for text in TRICKY[:4]]
    for kwargs in ({}, {"padding": "max_length", "max_length": 16}, {"pad_to_multiple_of": 8}):
        mine = ours.pad([dict(f) for f in features], return_tensors="pt", **kwargs)
        theirs = hf.pad([dict(f) for f in theirs_features], return_tensors="pt", **kwargs)
        assert sorted(mine) == sorted(theirs)
        for key in theirs:
            assert mine[key].tolist() == theirs[key].tolist(), key


def test_cli_prints_tokens_and_ids(minilm_dir, capsys):
    from bertkit.cli import main

    assert main(["tokenize", "--vocab", str(minilm_dir), "COVID-19 pandemic", "--pair", "I love Paris"]) == 0
    out = capsys.readouterr().out
    assert "##vid" in out and "17258" in out
    assert "[101, 2522, 17258, 1011, 2539, 6090, 3207, 7712, 102, 1045, 2293, 3000, 102]" in out
    assert main(["tokenize", "--vocab", str(minilm_dir), "I love Paris", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_ids"] == [101, 1045, 2293, 3000, 102]
    assert main(["tokenize", "--vocab", str(minilm_dir / "missing"), "x"]) == 2
    assert "no tokenizer folder" in capsys.readouterr().err


def test_batch_encoding_pickles_and_moves(ours):
    import pickle

    batch = ours(["hello world", "a b c d"], padding=True, return_tensors="pt")
    again = pickle.loads(pickle.dumps(batch))
    assert again["input_ids"].tolist() == batch["input_ids"].tolist()
    assert again.word_ids(1) == batch.word_ids(1) == [None, 0, 1, 2, 3, None]
    assert batch.to("cpu") is batch and batch.data.keys() == batch.keys()


def test_integer_index_gives_row_encoding(ours, hf):
    mine, theirs = ours(["Hello there", "General Kenobi!"]), hf(["Hello there", "General Kenobi!"])
    assert mine[1].tokens == theirs[1].tokens and mine[1].ids == theirs[1].ids
    assert mine[1].offsets == [tuple(o) for o in theirs[1].offsets] and mine[1].word_ids == theirs[1].word_ids
