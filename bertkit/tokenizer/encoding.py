"""BatchEncoding: the dict the tokenizer returns (input_ids, token_type_ids, attention_mask, ...), readable by key
and by attribute, with HuggingFace's per-token helpers (`word_ids`, `sequence_ids`, `tokens`, `char_to_token`).

Word ids and offsets cost time to track, so a plain call keeps only ids; the first helper that needs them asks
the tokenizer to redo the call with tracking on (`details`), which gives the same rows.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bertkit.errors import UserError


@dataclass
class Encoding:
    """One row of a batch, padded: what HuggingFace's `tokenizers.Encoding` holds."""

    ids: list[int]
    tokens: list[str]
    type_ids: list[int]
    attention_mask: list[int]
    special_tokens_mask: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    sequence_ids: list[int | None]


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
        return {"data": dict(self), "encodings": self.encodings}

    def __setstate__(self, state: dict) -> None:
        self.update(state["data"])
        self._details, self._n_sequences = state["encodings"], None

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

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        batch_index, token_index = _indices(batch_or_token_index, token_index)
        return self._row(batch_index).word_ids[token_index]

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        batch_index, token_index = _indices(batch_or_token_index, token_index)
        return self._row(batch_index).sequence_ids[token_index]

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> tuple[int, int] | None:
        """The (start, end) character span of a token in its text; None for special tokens."""
        batch_index, token_index = _indices(batch_or_token_index, token_index)
        row = self._row(batch_index)
        if row.sequence_ids[token_index] is None:
            return None
        return row.offsets[token_index]

    def char_to_token(self, batch_or_char_index: int, char_index: int | None = None,
                      sequence_index: int = 0) -> int | None:
        """The index of the token that covers character `char_index` of text `sequence_index` (None if none)."""
        batch_index, char_index = _indices(batch_or_char_index, char_index)
        row = self._row(batch_index)
        for i, ((start, end), seq) in enumerate(zip(row.offsets, row.sequence_ids)):
            if seq == sequence_index and start <= char_index < end:
                return i
        return None

    def word_to_tokens(self, batch_or_word_index: int, word_index: int | None = None,
                       sequence_index: int = 0) -> tuple[int, int] | None:
        """(start, end) token indices of a word (end exclusive); None if the word has no token."""
        batch_index, word_index = _indices(batch_or_word_index, word_index)
        row = self._row(batch_index)
        hits = [i for i, (w, s) in enumerate(zip(row.word_ids, row.sequence_ids))
                if w == word_index and s == sequence_index]
        return (hits[0], hits[-1] + 1) if hits else None

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


def _indices(batch_or_index: int, index: int | None) -> tuple[int, int]:
    """HuggingFace's helpers take (index) for a single text and (batch_index, index) for batches."""
    return (0, batch_or_index) if index is None else (batch_or_index, index)


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
