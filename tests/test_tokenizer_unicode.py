"""Normalization character by character against HuggingFace, Korean mode, and a property test on random Unicode."""
from __future__ import annotations

import os
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertkit import BertTokenizer
from bertkit.tokenizer.normalize import BertPreTokenizer, is_chinese_char

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

# Code points where Python 3.11's Unicode 14 tables and HuggingFace's (newer, for lowercasing and NFD) cannot
# agree: unassigned in Python but cased or decomposable in Rust. Nothing else is excluded.
def comparable(code_point: int) -> bool:
    char = chr(code_point)
    return not 0xD800 <= code_point <= 0xDFFF and unicodedata.category(char) != "Cn" and code_point != 0x11938


@pytest.mark.parametrize("lowercase", [True, False])
def test_every_code_point_matches_hf(lowercase):
    """Each character between two letters: same words as HuggingFace's BertNormalizer + BertPreTokenizer."""
    hf_normalizer = tokenizers.normalizers.BertNormalizer(lowercase=lowercase)
    hf_pre = tokenizers.pre_tokenizers.BertPreTokenizer()
    ours = BertPreTokenizer(lowercase=lowercase)
    code_points = [cp for cp in range(0x110000) if comparable(cp)]
    for i in range(0, len(code_points), 4096):
        block = code_points[i:i + 4096]
        text = " ".join(f"a{chr(cp)}b" for cp in block)
        mine = [word for word, _, _ in ours.pre_tokenize(text)]
        theirs = [word for word, _ in hf_pre.pre_tokenize_str(hf_normalizer.normalize_str(text))]
        assert ours.words(text) == mine  # the fast path (str.translate) agrees with the tracked one
        if mine != theirs:  # find the character
            for cp in block:
                text = f"a{chr(cp)}b"
                expected = [w for w, _ in hf_pre.pre_tokenize_str(hf_normalizer.normalize_str(text))]
                assert [w for w, _, _ in ours.pre_tokenize(text)] == expected, f"U+{cp:04X} {text!r}"


def test_google_vs_hf_differences_follow_hf():
    assert is_chinese_char("\U0002B920") and not is_chinese_char("\U0002B820")  # CJK Ext E starts at U+2B920
    ours = BertPreTokenizer()
    # private use, format and control characters vanish; unassigned code points stay (as in HF's Rust tables)
    assert ours.pre_tokenize("a\ue000b c\u200bd e\x07f") == [("ab", 0, 3), ("cd", 4, 7), ("ef", 8, 11)]
    assert ours.pre_tokenize("x\u0378y") == [("x\u0378y", 0, 3)]
    assert ours.pre_tokenize("a\ud800b") == [("ab", 0, 3)]  # lone surrogate: deleted


def test_pre_tokenize_offsets_point_into_the_text():
    ours = BertPreTokenizer()
    text = "  Héllo, WORLD!  中文 면역\tΟΔΟΣ "
    words = ours.pre_tokenize(text)
    assert [w for w, _, _ in words] == ["hello", ",", "world", "!", "中", "文", "면역", "οδοσ"]
    assert [text[s:e] for _, s, e in words] == ["Héllo", ",", "WORLD", "!", "中", "文", "면역", "ΟΔΟΣ"]


def test_korean_mode_keeps_hangul_and_strips_latin_accents():
    korean = BertPreTokenizer(lowercase=True, keep_hangul=True)
    plain = BertPreTokenizer(lowercase=True)
    text = "면역 체계는 Café Ångström ㅋㅋ 한국어café naïve"
    assert korean.normalize(text) == "면역 체계는 cafe angstrom ㅋㅋ 한국어cafe naive"
    assert plain.normalize(text).split()[0] == unicodedata.normalize("NFD", "면역")  # jamo, as HF does
    # cased Korean mode: accents stay when strip_accents is off, Hangul is untouched either way
    assert BertPreTokenizer(lowercase=False, keep_hangul=True).normalize("Café 면역") == "Café 면역"
    assert BertPreTokenizer(lowercase=False, strip_accents=True, keep_hangul=True).normalize("Café 면역") == "Cafe 면역"


def test_korean_mode_round_trips_through_config(minilm_dir, tmp_path):
    tokenizer = BertTokenizer.from_pretrained(minilm_dir, keep_hangul=True)
    assert tokenizer.tokenize("면역") != BertTokenizer.from_pretrained(minilm_dir).tokenize("면역")
    tokenizer.save_pretrained(tmp_path)
    again = BertTokenizer.from_pretrained(tmp_path)
    assert again.keep_hangul and again.tokenize("면역 café") == tokenizer.tokenize("면역 café")
    (tmp_path / "tokenizer.json").unlink()  # the config alone carries the option too
    assert BertTokenizer.from_pretrained(tmp_path).keep_hangul


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return BertTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def hf_minilm(minilm_dir):
    return transformers.BertTokenizerFast.from_pretrained(str(minilm_dir))


ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())  # surrogates too
PIECE = st.one_of(ANY_CHAR, st.sampled_from(list(" \t\n.,!?'-[]#abcXYZ가각면é中")), st.just("[MASK]"))
TEXT = st.lists(PIECE, max_size=60).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXT, pair=st.one_of(st.none(), TEXT), max_length=st.one_of(st.none(), st.integers(4, 24)))
def test_random_unicode_never_crashes(minilm, text, pair, max_length):
    encoding = minilm(text, pair, return_offsets_mapping=True, truncation=max_length is not None,
                      max_length=max_length, stride=0, return_overflowing_tokens=max_length is not None)
    rows = encoding["input_ids"] if max_length is not None else [encoding["input_ids"]]
    offsets = encoding["offset_mapping"] if max_length is not None else [encoding["offset_mapping"]]
    for row, (ids, spans) in enumerate(zip(rows, offsets)):
        assert all(0 <= i < len(minilm) for i in ids)
        if max_length is not None and row == 0:  # the main window fits; HuggingFace lets a zero-budget
            assert len(ids) <= max_length       # side's overflow windows run over, and so do we
        sequence_ids = encoding.sequence_ids(row)
        for seq in (0, 1):
            source = text if seq == 0 else pair
            mine = [span for span, s in zip(spans, sequence_ids) if s == seq]
            assert all(0 <= start <= end <= len(source) for start, end in mine)
            assert [start for start, _ in mine] == sorted(start for start, _ in mine)
        words = [w for w, s in zip(encoding.word_ids(row), sequence_ids) if s == 0]
        assert words == sorted(words)
        minilm.decode(ids)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.characters(exclude_categories=("Cs", "Cn")).filter(lambda c: ord(c) != 0x11938), max_size=40))
def test_random_text_matches_hf(minilm, hf_minilm, text):
    mine = minilm(text, return_offsets_mapping=True)
    theirs = hf_minilm(text, return_offsets_mapping=True)
    assert mine["input_ids"] == theirs["input_ids"] == minilm(text)["input_ids"]  # tracked and fast paths
    assert mine["offset_mapping"] == [tuple(o) for o in theirs["offset_mapping"]]
    assert mine.word_ids() == theirs.word_ids()
