"""Offsets: the tokens of a text with each token's character span in it (and the word it came from), computed
without Python work per character or per token on the common path.

    text --regex split (C)--> whitespace-free chunks and their start positions (itertools.accumulate, C)
         --one cached lookup per chunk--> (ids, starts, ends, word index) of the chunk, relative to it
         --itertools/operator (C)--> absolute offsets for the whole text, zipped into (start, end) tuples

A chunk seen before costs one dict lookup. A new chunk whose every character normalizes to exactly one
character (all ASCII text, most accented Latin letters, Hangul, CJK) is cut with the fast path's
str.translate + str.split, its words keep their positions, and each word's pieces come from a word cache; any
other chunk (deleted characters, expanding or reordered marks) is walked character by character in
normalize.py, which knows where every normalized character came from.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from itertools import accumulate, chain, islice, repeat
from operator import add, itemgetter
from typing import Any

from bertkit.tokenizer.normalize import ISOLATE, JOIN, WHITESPACE_CLASS, BertPreTokenizer, _Translation
from bertkit.tokenizer.wordpiece import WordPiece

CACHE_SIZE = 500_000  # words (or chunks) kept per cache; the oldest half goes when full
# The units cached: an ASCII punctuation character (always a word of its own, never moved across by a combining
# mark) or a run of anything else but whitespace. Captured, so re.split keeps them between the gaps.
ASCII_PUNCTUATION = r"!-/:-@\[-`{-~"
CHUNKS = re.compile(f"([{ASCII_PUNCTUATION}]|[^{WHITESPACE_CLASS}{ASCII_PUNCTUATION}]+)")

# A chunk's tokens, relative to the chunk: (ids, starts, ends, word index per token, number of words)
ChunkTokens = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], int]
_ids, _starts, _ends, _words, _n_words = (itemgetter(k) for k in range(5))


class Cache(dict):
    """key -> value, computed on a miss by `compute` (called from C through dict.__getitem__)."""

    def __init__(self, compute: Callable[[Any], Any], max_size: int = CACHE_SIZE) -> None:
        super().__init__()
        self.compute = compute
        self.max_size = max_size

    def __missing__(self, key: Any) -> Any:
        if len(self) >= self.max_size:  # bounded memory: forget the older half
            for old in list(islice(self, self.max_size // 2)):
                self.pop(old, None)  # another thread may have dropped it already
        value = self[key] = self.compute(key)
        return value


class OffsetTracker:
    """Tokens with offsets (and word indices) for text without added tokens; the tokenizer cuts those out first."""

    def __init__(self, pre_tokenizer: BertPreTokenizer, wordpiece: WordPiece) -> None:
        self.pre_tokenizer = pre_tokenizer
        self.wordpiece = wordpiece
        self._chunks = Cache(self._chunk_tokens)  # chunk -> ChunkTokens
        self._pieces = Cache(self._word_pieces)  # normalized word -> (ids, starts, ends) inside the word
        # ord(char) -> "" when the char normalizes to exactly one char of its own, so that
        # `not chunk.translate(self._one_to_one)` says (in C) that positions carry over from the chunk
        self._one_to_one = _Translation(lambda cp: "" if self._is_one_to_one(chr(cp)) else "x")

    def encode(self, text: str, base: int = 0, first_word: int = 0, words: bool = False
               ) -> tuple[list[int], list[tuple[int, int]], list[int] | None, int]:
        """(ids, offsets shifted by `base`, word index per token counted from `first_word` when `words`,
        the next word index)."""
        parts = CHUNKS.split(text)  # whitespace, chunk, whitespace, ..., chunk, whitespace
        details = list(map(self._chunks.__getitem__, parts[1::2]))
        chunk_starts = list(accumulate(map(len, parts), initial=base))[1::2]
        chunk_ids = list(map(_ids, details))
        counts = list(map(len, chunk_ids))
        bases = list(chain.from_iterable(map(repeat, chunk_starts, counts)))
        starts = map(add, bases, chain.from_iterable(map(_starts, details)))
        ends = map(add, bases, chain.from_iterable(map(_ends, details)))
        offsets = list(zip(starts, ends))
        ids = list(chain.from_iterable(chunk_ids))
        word_counts = list(accumulate(map(_n_words, details), initial=first_word))
        word_ids = None
        if words:
            word_bases = chain.from_iterable(map(repeat, word_counts, counts))
            word_ids = list(map(add, word_bases, chain.from_iterable(map(_words, details))))
        return ids, offsets, word_ids, word_counts[-1]

    # ------------------------------------------------------------------------------------- filling the caches
    def _is_one_to_one(self, char: str) -> bool:
        """Normalizes to one char that joins its word or stands alone, and decomposes to a starter (so no
        combining mark can move across it when accents are stripped)."""
        out, join = self.pre_tokenizer.normalize_char(char)
        return (len(out) == 1 and join in (JOIN, ISOLATE)
                and unicodedata.combining(unicodedata.normalize("NFD", char)[0]) == 0)

    def _word_pieces(self, word: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        ids, ends = self.wordpiece.split(word)
        ends = range(1, len(word) + 1) if ends is None else ends
        return tuple(ids), (0, *ends[:-1]), tuple(ends)

    def _chunk_tokens(self, chunk: str) -> ChunkTokens:
        if not chunk.translate(self._one_to_one):  # the words tile the chunk, char for char
            normalized = chunk.translate(self.pre_tokenizer.translation).split()
            if len(normalized) == 1:  # the common case: the chunk is one word
                ids, starts, ends = self._pieces[normalized[0]]
                return ids, starts, ends, (0,) * len(ids), 1
            ids, starts, ends, words = [], [], [], []
            position = 0
            for index, word in enumerate(normalized):
                piece_ids, piece_starts, piece_ends = self._pieces[word]
                ids += piece_ids
                starts += [position + s for s in piece_starts]
                ends += [position + e for e in piece_ends]
                words += [index] * len(piece_ids)
                position += len(word)
            return tuple(ids), tuple(starts), tuple(ends), tuple(words), len(normalized)
        ids, starts, ends, words = [], [], [], []
        pieces = self.pre_tokenizer.split_chunk(chunk)  # per character: each one knows its span
        for index, (word, char_starts, char_ends) in enumerate(pieces):
            for token_id, start, end in self.wordpiece.tokenize(word):
                ids.append(token_id)
                starts.append(char_starts[start])
                ends.append(char_ends[end - 1])
                words.append(index)
        return tuple(ids), tuple(starts), tuple(ends), tuple(words), len(pieces)
