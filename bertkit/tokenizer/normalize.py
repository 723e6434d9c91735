"""BERT normalization and pre-tokenization, character for character as HuggingFace's Rust tokenizer does it.

Each character is normalized once, on first sight, and remembered:

    delete control / format / private-use characters, keep CJK ideographs as words of their own,
    strip accents (NFD, drop nonspacing marks), lowercase, split off punctuation.

Two paths use that table:
- `words(text)`: the fast path. `str.translate` swaps each character for its normalized form (with spaces
  around punctuation and CJK), then `str.split` cuts the result into words. Both run in C. No offsets.
- `pre_tokenize(text)` / `split_chunk(chunk)`: the text is cut at whitespace into chunks (a regex), then
  each chunk is walked one character at a time. Every normalized character remembers the original character
  it came from, so each word knows its span in the text.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Rust's `char::is_whitespace` (the Unicode White_Space property) without the characters that BERT's text
# cleaning deletes first as control characters (\x0b, \x0c, \x1c-\x1f, \x85).
WHITESPACE_CLASS = "\t\n\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
CHUNK_PATTERN = re.compile(f"[^{WHITESPACE_CLASS}]+")
WHITESPACE = re.compile(f"[{WHITESPACE_CLASS}]")
# Characters that make Python's str.split() disagree with the chunk pattern above: text holding none of
# them can be cut with the much faster str.split().
SPLIT_UNSAFE = re.compile("[\x0b\x0c\x1c-\x1f\x85]")

# CJK ideograph blocks, as HuggingFace's Rust tokenizer has them (Extension E starts at U+2B920 there,
# Google's original code has U+2B820).
CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
# Format characters that Python's Unicode 14 tables know but HuggingFace's older tables do not: HF keeps them.
KEPT_FORMAT_CHARS = frozenset(map(chr, (0x890, 0x891, 0x8E2, 0x110CD, *range(0x13430, 0x13439))))
DELETED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})  # control, format, private use, surrogates

# HuggingFace's Rust tokenizer classifies characters with older Unicode tables than Python's `unicodedata`.
# These code points (hex ranges) are where the two disagree; tests/test_tokenizer_unicode.py checks every
# code point against HuggingFace, so regenerate the ranges from its failures if Python's tables move on.
def _code_points(ranges: str) -> frozenset[str]:
    chars = []
    for item in ranges.split():
        low, _, high = item.partition("-")
        chars.extend(map(chr, range(int(low, 16), int(high or low, 16) + 1)))
    return frozenset(chars)


# nonspacing marks (Mn) in Python's tables that HuggingFace does not strip
KEPT_MARKS = _code_points(
    "7FD 898-89F 8CA-8E1 9FE AFA-AFF B55 C04 C3C D00 D3B-D3C D81 EBA 180F 1885-1886 1ABF-1ACE 1DF6-1DFB "
    "A82C A8C5 A8FF A9BD 10D24-10D27 10EAB-10EAC 10F46-10F50 10F82-10F85 11070 11073-11074 110C2 111C9 "
    "111CF 1123E 1133B 11438-1143F 11442-11444 11446 1145E 1182F-11837 11839-1183A 11938 1193B-1193C "
    "1193E 11943 119D4-119D7 119DA-119DB 119E0 11A01-11A0A 11A33-11A38 11A3B-11A3E 11A47 11A51-11A56 "
    "11A59-11A5B 11A8A-11A96 11A98-11A99 11C30-11C36 11C38-11C3D 11C3F 11C92-11CA7 11CAA-11CB0 "
    "11CB2-11CB3 11CB5-11CB6 11D31-11D36 11D3A 11D3C-11D3D 11D3F-11D45 11D47 11D90-11D91 11D95 11D97 "
    "11EF3-11EF4 16F4F 16FE4 1CF00-1CF2D 1CF30-1CF46 1E000-1E006 1E008-1E018 1E01B-1E021 1E023-1E024 "
    "1E026-1E02A 1E130-1E136 1E2AE 1E2EC-1E2EF 1E944-1E94A "
)
EXTRA_MARKS = _code_points("1734")  # stripped by HuggingFace though Python calls it a spacing mark
# punctuation in Python's tables that HuggingFace leaves inside words
NOT_PUNCTUATION = _code_points(
    "61D 9FD A76 C77 C84 1B7D-1B7E 2E43-2E4F 2E52-2E5D 10EAD 10F55-10F59 10F86-10F89 1144B-1144F "
    "1145A-1145B 1145D 11660-1166C 116B9 1183B 11944-11946 119E2 11A3F-11A46 11A9A-11A9C 11A9E-11AA2 "
    "11C41-11C45 11C70-11C71 11EF7-11EF8 11FFF 12FF1-12FF2 16E97-16E9A 16FE2 1E95E-1E95F "
)
EXTRA_PUNCTUATION = _code_points("166D 111C9")  # split by HuggingFace though Python calls them symbols


def is_chinese_char(char: str) -> bool:
    cp = ord(char)
    return any(low <= cp <= high for low, high in CJK_RANGES)


def is_deleted_char(char: str) -> bool:
    """Text cleaning: NUL, U+FFFD and control-like characters vanish (tab, newline, return are whitespace)."""
    if char in "\t\n\r":
        return False
    if char in "\x00\ufffd":
        return True
    return unicodedata.category(char) in DELETED_CATEGORIES and char not in KEPT_FORMAT_CHARS


def is_punctuation(char: str) -> bool:
    """All ASCII symbols BERT counts as punctuation (!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~) and Unicode P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    if char in NOT_PUNCTUATION or char in EXTRA_PUNCTUATION:
        return char in EXTRA_PUNCTUATION
    return unicodedata.category(char).startswith("P")


def is_accent(char: str) -> bool:
    """A nonspacing mark, which accent stripping removes after NFD."""
    if char in KEPT_MARKS or char in EXTRA_MARKS:
        return char in EXTRA_MARKS
    return unicodedata.category(char) == "Mn"


# How a character's normalized form joins the words around it.
JOIN, ISOLATE, MIXED = 0, 1, 2  # part of the word / a word of its own / per character (some punctuation)

Word = tuple[str, int, int]


class _Translation(dict):
    """A str.translate table that fills itself: CPython looks characters up with __getitem__, so a missing
    character is normalized once, on first sight, and stays in C from then on."""

    def __init__(self, compute) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, code_point: int) -> str:
        value = self[code_point] = self.compute(code_point)
        return value


class BertPreTokenizer:
    """BERT's BasicTokenizer: clean, split CJK, strip accents, lowercase, split on whitespace and punctuation.

    `strip_accents=None` follows `lowercase` (BERT's rule). `keep_hangul=True` (Korean mode) strips accents
    only from characters whose decomposition holds a nonspacing mark and recomposes the rest (NFC), so
    Hangul syllables stay whole while `é` still becomes `e`.
    """

    def __init__(
        self,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        keep_hangul: bool = False,
        tokenize_chinese_chars: bool = True,
    ) -> None:
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.keep_hangul = bool(keep_hangul)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self._chars: dict[str, tuple[str, int]] = {}  # original char -> (normalized chars, JOIN/ISOLATE/MIXED)
        self.translation = _Translation(self._spaced)  # ord(char) -> normalized chars, words padded by spaces
        # ord(char) -> its NFD, or "" for a deleted char: the cleaned, decomposed text whose mark order HF sees
        self._decomposed = _Translation(lambda cp: "" if is_deleted_char(chr(cp)) else unicodedata.normalize("NFD", chr(cp)))

    def __repr__(self) -> str:
        return (f"BertPreTokenizer(lowercase={self.lowercase}, strip_accents={self.strip_accents}, "
                f"keep_hangul={self.keep_hangul}, tokenize_chinese_chars={self.tokenize_chinese_chars})")

    def normalize_char(self, char: str) -> tuple[str, int]:
        """The normalized form of one character and how it joins its neighbours (memoized)."""
        info = self._chars.get(char)
        if info is None:
            info = self._chars[char] = self._normalize_char(char)
        return info

    def _normalize_char(self, char: str) -> tuple[str, int]:
        if is_deleted_char(char):
            return "", JOIN
        chinese = self.tokenize_chinese_chars and is_chinese_char(char)
        out = char
        if self.strip_accents and not char.isascii():
            decomposed = unicodedata.normalize("NFD", char)
            out = "".join(c for c in decomposed if not is_accent(c))
            if self.keep_hangul:
                out = unicodedata.normalize("NFC", out)
        if self.lowercase:
            out = "".join(c.lower() for c in out)  # per character: no final-sigma rule, as in Rust
        if chinese:
            return out, ISOLATE
        punct = [is_punctuation(c) for c in out]
        if not any(punct):
            return out, JOIN
        return out, ISOLATE if len(out) == 1 else MIXED

    def _spaced(self, code_point: int) -> str:
        """What str.translate puts in place of a character so that str.split() yields the normalized words."""
        char = chr(code_point)
        if WHITESPACE.fullmatch(char):
            return " "
        out, join = self.normalize_char(char)
        if join == ISOLATE:
            return f" {out} "
        if join == MIXED:
            return "".join(f" {c} " if is_punctuation(c) else c for c in out)
        return out

    def words(self, text: str) -> list[str]:
        """The normalized words of `text`, without offsets: the fast path (str.translate + str.split, in C)."""
        return text.translate(self.translation).split()

    def split_chunk(self, chunk: str) -> list[tuple[str, list[int], list[int]]]:
        """Normalize one whitespace-free chunk into words; each normalized char has its original span.

        Returns (word, starts, ends) with starts[k]/ends[k] the span in `chunk` of the character that the
        word's k-th normalized character came from.
        """
        words: list[tuple[str, list[int], list[int]]] = []
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []

        def flush() -> None:
            if chars:
                words.append(("".join(chars), starts.copy(), ends.copy()))
                chars.clear(), starts.clear(), ends.clear()

        table = self._chars
        characters: Iterable[tuple[int, str]] = enumerate(chunk)
        if self.strip_accents and not self.keep_hangul and not chunk.isascii():
            characters = self._reordered_marks(chunk) or characters
        for i, char in characters:
            info = table.get(char) or self.normalize_char(char)
            out, join = info
            if not out:
                continue
            if join == JOIN:
                chars.append(out)
                starts.extend([i] * len(out))
                ends.extend([i + 1] * len(out))
            elif join == ISOLATE:
                flush()
                words.append((out, [i] * len(out), [i + 1] * len(out)))
            else:
                for c in out:
                    if is_punctuation(c):
                        flush()
                        words.append((c, [i], [i + 1]))
                    else:
                        chars.append(c), starts.append(i), ends.append(i + 1)
        flush()
        return words

    def _reordered_marks(self, chunk: str) -> list[tuple[int, str]] | None:
        """HF strips accents with NFD over the whole cleaned text, so combining marks that meet across
        characters (an accent, a deleted character, another mark) are put in canonical order. Its spans follow
        the output order: each char that stands for an original one takes the next original char's span, each
        extra char of a decomposition the span of the last one taken. So a mark that moves forward takes the
        span of the char it passed. Per-character NFD misses that; this redoes it where it matters.

        Returns (index in chunk, decomposed char) pairs in HF's order, or None when nothing moves.
        e.g. "e\u0301\ue3dc\u302e": the private-use char goes, U+302E (class 224) moves before U+0301 (230)
        and takes its span (1, 2); U+0301 is stripped, so the word "e\u302e" spans (0, 2), as in HF.
        """
        if unicodedata.is_normalized("NFD", chunk.translate(self._decomposed)):
            return None
        kept = [i for i, char in enumerate(chunk) if not is_deleted_char(char)]  # the originals, in order
        # (char, whether it is an extra char of a decomposition), in per-character NFD order
        pieces = [(c, k > 0) for i in kept for k, c in enumerate(chunk[i].translate(self._decomposed))]
        start = 0
        while start < len(pieces):  # canonical ordering: each run of marks (combining class > 0), stably by class
            end = start
            while end < len(pieces) and unicodedata.combining(pieces[end][0]):
                end += 1
            if end > start:
                pieces[start:end] = sorted(pieces[start:end], key=lambda piece: unicodedata.combining(piece[0]))
            start = end + 1
        result, taken = [], 0
        for char, extra in pieces:
            if not extra:
                taken += 1
            result.append((kept[max(taken - 1, 0)], char))
        return result

    def pre_tokenize(self, text: str) -> list[Word]:
        """The normalized words of `text` with their (start, end) character offsets in `text`."""
        if not isinstance(text, str):
            raise TypeError(f"pre_tokenize expects a str, got {type(text).__name__}")
        words: list[Word] = []
        for match in CHUNK_PATTERN.finditer(text):
            base = match.start()
            for word, starts, ends in self.split_chunk(match.group()):
                words.append((word, base + starts[0], base + ends[-1]))
        return words

    def normalize(self, text: str) -> str:
        """The normalized text, words separated by single spaces (handy for inspection and training)."""
        return " ".join(word for word, _, _ in self.pre_tokenize(text))


SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> str:
    """Unpaired surrogates (JSON escapes such as "\\ud800", or raw CESU-8 bytes) become U+FFFD.

    A lone surrogate is not a character, and no UTF-8 answer can hold one. Replacing it, as a UTF-8
    decoder replaces a bad byte, keeps the rest of the text servable and every character offset where
    the client counts it (one code unit becomes one); the tokenizer then drops U+FFFD as BERT's text
    cleaning does, so a text of nothing else is `empty_input`. A pair split in two escapes is joined.
    """
    if not SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
