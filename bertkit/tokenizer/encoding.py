"""BatchEncoding: the dict the tokenizer returns (input_ids, token_type_ids, attention_mask, ...), readable by key
and by attribute, with HuggingFace's per-token helpers (`word_ids`, `sequence_ids`, `tokens`, `char_to_token`,
`char_to_word`, `token_to_chars`, `word_to_chars`, `word_to_tokens`, ...), answered as HuggingFace's Rust
`Encoding` answers them: spans as `CharSpan` / `TokenSpan`, None for special tokens and indices past the row.

Word ids and offsets cost time to track, so a plain call keeps only ids; the first helper that needs them asks
the tokenizer to redo the call with tracking on (`details`), which gives the same rows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from bertkit.errors import UserError


class CharSpan(NamedTuple):
    """Characters text[start:end] of the original text (HuggingFace's CharSpan)."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Tokens start..end-1 of a row (HuggingFace's TokenSpan)."""

    start: int
    end: int


@dataclass
class Encoding:
    """One row of a batch, padded: what HuggingFace's `tokenizers.Encoding` holds, with its lookups.

    `n_sequences` is how many texts the row was made from (1, or 2 for a pair), even when one of them has no
    token left: a lookup in a text the row does not have searches the whole row, as HuggingFace's does."""

    ids: list[int]
    tokens: list[str]
    type_ids: list[int]
    attention_mask: list[int]
    special_tokens_mask: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    sequence_ids: list[int | None]
    n_sequences: int = 1

    def sequence_range(self, sequence_index: int) -> range:
        """The token positions of text `sequence_index` (the whole row for a text the row does not have)."""
        if sequence_index < 0:
            raise UserError(f"sequence_index must be 0 (first text) or 1 (second text), got {sequence_index}")
        if sequence_index >= self.n_sequences:
            return range(len(self.ids))
        positions = [i for i, s in enumerate(self.sequence_ids) if s == sequence_index]
        return range(positions[0], positions[-1] + 1) if positions else range(0)

    def token_to_sequence(self, token_index: int) -> int | None:
        return self.sequence_ids[token_index] if token_index < len(self.ids) else None

    def token_to_word(self, token_index: int) -> int | None:
        return self.word_ids[token_index] if token_index < len(self.ids) else None

    def token_to_chars(self, token_index: int) -> CharSpan | None:
        if self.token_to_sequence(token_index) is None:  # special and padding tokens come from no text
            return None
        return CharSpan(*self.offsets[token_index])

    def char_to_token(self, char_index: int, sequence_index: int = 0) -> int | None:
        for i in self.sequence_range(sequence_index):
            start, end = self.offsets[i]
            if start <= char_index < end:
                return i
        return None

    def char_to_word(self, char_index: int, sequence_index: int = 0) -> int | None:
        token = self.char_to_token(char_index, sequence_index)
        return None if token is None else self.token_to_word(token)

    def word_to_tokens(self, word_index: int, sequence_index: int = 0) -> TokenSpan | None:
        start = end = None
        for i in self.sequence_range(sequence_index):
            word = self.word_ids[i]
            if word is not None and word > word_index:  # words only grow along a text: stop as HF's Rust does
                break
            if word == word_index:
                start = i if start is None else start
                end = i + 1
        return None if start is None else TokenSpan(start, end)

    def word_to_chars(self, word_index: int, sequence_index: int = 0) -> CharSpan | None:
        span = self.word_to_tokens(word_index, sequence_index)
        return None if span is None else CharSpan(self.offsets[span.start][0], self.offsets[span.end - 1][1])


class BatchEncoding(dict):
    """dict of model inputs; `enc.input_ids` == `enc["input_ids"]`; `enc.to(device)` moves tensors."""

    def __init__(self, data: dict[str, Any] | None = None,
                 details: Callable[[], list[Encoding]] | list[Encoding] | None = None,
                 n_sequences: int | None = None) -> None:
        super().__init__(data or {})
        self._details = details
        self._n_sequences = n_sequences

    def __getitem__(self, key: str | int) -> Any:
        """enc["input_ids"] gives a field; enc[i] gives row i's Encoding (tokens, offsets, word ids)."""
        if isinstance(key, int):
            return self._row(key)
        return super().__getitem__(key)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no field {name!r}; it holds {sorted(self)}") from None

    def __getstate__(self) -> dict:
        return {"data": dict(self), "encodings": self.encodings, "n_sequences": self._n_sequences}

    def __setstate__(self, state: dict) -> None:
        self.update(state["data"])
        self._details, self._n_sequences = state["encodings"], state.get("n_sequences")

    @property
    def data(self) -> dict[str, Any]:
        """The fields as a plain dict (HuggingFace's BatchEncoding.data)."""
        return dict(self)

    @property
    def encodings(self) -> list[Encoding] | None:
        """Per-row token details (tokens, offsets, word ids); computed on first use."""
        if callable(self._details):
            self._details = self._details()
        return self._details

    @property
    def is_fast(self) -> bool:
        return True

    @property
    def n_sequences(self) -> int | None:
        return self._n_sequences

    def _row(self, batch_index: int) -> Encoding:
        encodings = self.encodings
        if encodings is None:
            raise UserError("this BatchEncoding was not made by a tokenizer, so it has no per-token details")
        if not -len(encodings) <= batch_index < len(encodings):
            raise IndexError(f"batch_index {batch_index} is out of range for a batch of {len(encodings)}")
        return encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        return list(self._row(batch_index).tokens)

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """The word each token came from (None for special and padding tokens)."""
        return list(self._row(batch_index).word_ids)

    def words(self, batch_index: int = 0) -> list[int | None]:
        return self.word_ids(batch_index)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """0 for tokens of the first text, 1 for the second, None for special and padding tokens."""
        return list(self._row(batch_index).sequence_ids)

    # The lookups below take (index) for a single text or (batch_index, index) for a batch, as HuggingFace's do.
    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """The word a token came from (None for special and padding tokens, or past the row)."""
        batch_index, token_index = _indices(batch_or_token_index, token_index, "token_index")
        return self._row(batch_index).token_to_word(token_index)

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """0 or 1: the text of a pair a token came from (None for special and padding tokens, or past the row)."""
        batch_index, token_index = _indices(batch_or_token_index, token_index, "token_index")
        return self._row(batch_index).token_to_sequence(token_index)

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        """The characters of its text a token came from; None for special and padding tokens."""
        batch_index, token_index = _indices(batch_or_token_index, token_index, "token_index")
        return self._row(batch_index).token_to_chars(token_index)

    def char_to_token(self, batch_or_char_index: int, char_index: int | None = None,
                      sequence_index: int = 0) -> int | None:
        """The token that covers character `char_index` of text `sequence_index` (None if none, e.g. a space)."""
        batch_index, char_index = _indices(batch_or_char_index, char_index, "char_index")
        return self._row(batch_index).char_to_token(char_index, sequence_index)

    def char_to_word(self, batch_or_char_index: int, char_index: int | None = None,
                     sequence_index: int = 0) -> int | None:
        """The word that covers character `char_index` of text `sequence_index` (None if none, e.g. a space)."""
        batch_index, char_index = _indices(batch_or_char_index, char_index, "char_index")
        return self._row(batch_index).char_to_word(char_index, sequence_index)

    def word_to_tokens(self, batch_or_word_index: int, word_index: int | None = None,
                       sequence_index: int = 0) -> TokenSpan | None:
        """The tokens of a word (end exclusive); None if the word has no token in this row."""
        batch_index, word_index = _indices(batch_or_word_index, word_index, "word_index")
        return self._row(batch_index).word_to_tokens(word_index, sequence_index)

    def word_to_chars(self, batch_or_word_index: int, word_index: int | None = None,
                      sequence_index: int = 0) -> CharSpan:
        """The characters of a word in its text."""
        batch_index, word_index = _indices(batch_or_word_index, word_index, "word_index")
        span = self._row(batch_index).word_to_chars(word_index, sequence_index)
        if span is None:  # HuggingFace raises here too (a TypeError from inside CharSpan)
            raise UserError(f"word {word_index} of text {sequence_index} has no token in row {batch_index}: it is "
                             "past the last word or was cut off by truncation; word_to_tokens() gives None for "
                             "such words, so check it first")
        return span

    def to(self, device: Any) -> BatchEncoding:
        """Move every tensor to `device` (torch), in place; returns self."""
        for key, value in self.items():
            if hasattr(value, "to"):
                self[key] = value.to(device)
        return self

    def convert_to_tensors(self, tensor_type: str | None) -> BatchEncoding:
        for key, value in self.items():
            self[key] = to_tensors(value, tensor_type, key)
        return self


def _indices(batch_or_index: int, index: int | None, name: str) -> tuple[int, int]:
    """(batch index, index) from HuggingFace's (index) or (batch_index, index) forms."""
    batch_index, index = (0, batch_or_index) if index is None else (batch_or_index, index)
    if index < 0:  # HuggingFace raises too (an OverflowError or AttributeError); counting from the end is not offered
        raise UserError(f"{name} must be >= 0, got {index}; count from the start of the text or row")
    return batch_index, index


def to_tensors(value: Any, tensor_type: str | None, key: str = "") -> Any:
    """Lists of rows -> torch ('pt'), numpy ('np') or TensorFlow ('tf', seed 001's) arrays; rows must have one
    length."""
    if tensor_type is None:
        return value
    if tensor_type not in ("pt", "np", "tf"):
        raise UserError(f"return_tensors must be 'pt', 'np', 'tf' or None, got {tensor_type!r}")
    if isinstance(value, list) and value and isinstance(value[0], list):
        lengths = {len(row) for row in value}
        if len(lengths) > 1:
            raise UserError(f"cannot make a tensor of {key!r}: its rows have lengths {sorted(lengths)}; "
                             "pass padding=True (and truncation=True for long texts)")
    if tensor_type == "pt":
        import torch
        return torch.tensor(value, dtype=torch.long)
    import numpy as np
    if tensor_type == "tf":
        from bertkit.utils.extras import require_extra

        return require_extra("tensorflow", "tf", "return_tensors='tf'").constant(np.array(value, dtype=np.int32))
    return np.array(value, dtype=np.int64)
