"""Sequence assembly: how the tokens of one text, or of a pair, become the rows a BERT model reads.

    a        ->  [CLS] a [SEP]              token_type_ids  0 0 .. 0
    a, b     ->  [CLS] a [SEP] b [SEP]      token_type_ids  0 0 .. 0 1 .. 1
    padded   ->  ... [PAD] [PAD]            attention_mask  1 1 .. 1 0 0

Truncation follows HuggingFace's strategies ('longest_first', 'only_first', 'only_second'); what does not fit
becomes overflow windows that overlap by `stride` tokens. BertTokenizer inherits `SequenceAssembly`, so these
are its methods; the plain functions below need no tokenizer.

    tokenizer.build_inputs_with_special_tokens([7592], [2088])   # [101, 7592, 102, 2088, 102]
    tokenizer(["a b c", "a"], padding=True)["attention_mask"]     # [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
"""
from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bertkit.errors import UserError
from bertkit.tokenizer.encoding import BatchEncoding
from bertkit.utils.logging import warn_ignored

VERY_LARGE_INTEGER = int(1e30)  # HuggingFace's "no limit" model_max_length
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second")
# What a call tracks beside the ids: nothing, character offsets, or offsets with word and sequence ids.
IDS, OFFSETS, DETAILS = 0, 1, 2
# The columns `pad` fills: HuggingFace's `pad` leaves every other key (labels, offsets, ...) as it is.
PADDED_BY_PAD = ("input_ids", "token_type_ids", "attention_mask", "special_tokens_mask")


@dataclass
class Tokens:
    """The tokens of one text, before special tokens; offsets and word ids only when tracked."""

    ids: list[int]
    offsets: list[tuple[int, int]] | None = None
    word_ids: list[int] | None = None

    def window(self, start: int, stop: int) -> Tokens:
        return Tokens(self.ids[start:stop],
                      None if self.offsets is None else self.offsets[start:stop],
                      None if self.word_ids is None else self.word_ids[start:stop])


def as_int_list(ids: Any) -> list[int]:
    """Token ids as ints: Python or NumPy integers, an int tensor or array; anything else is a TypeError (as
    HuggingFace's), not a float quietly truncated or an OverflowError on inf."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        ids = [ids]
    try:
        return [operator.index(i) for i in ids]
    except TypeError:
        bad = next(i for i in ids if not hasattr(i, "__index__"))
        raise TypeError(f"token ids must be integers, got {type(bad).__name__} {bad!r}") from None


def as_batch(text: Any, is_split_into_words: bool, name: str = "text") -> tuple[bool, list, list | None]:
    """(was it a batch?, first texts, second texts) from any input the tokenizer call takes: a str, a list of
    str, pairs as (first, second) tuples or lists in a list (HuggingFace's `tok([(q, c), ...])`), or, with
    is_split_into_words, a list of words, a list of such lists, or pairs of them. The second texts are None
    without pairs; in a batch mixing single texts and pairs, a single text's second is None."""
    if text is None:
        raise UserError(f"{name} is None: pass a str, a list of str, a list of (first, second) pairs, or (with "
                         "is_split_into_words=True) a list of words / a list of lists of words")
    if not isinstance(text, (list, tuple)):
        if isinstance(text, str) and not is_split_into_words:
            return False, [text], None
        expected = "a list of words (or a list of such lists)" if is_split_into_words else "a str or a list of str"
        raise TypeError(f"{name} must be {expected}, got {type(text).__name__}")
    if is_split_into_words and not (text and isinstance(text[0], (list, tuple))):
        return False, [_words(text, name)], None  # one pre-split text: HF decides by the first item, as here
    firsts, seconds = [], []
    for item in text:
        if isinstance(item, str) and not is_split_into_words:
            firsts.append(item)
            seconds.append(None)
        elif is_split_into_words and isinstance(item, (list, tuple)) and all(isinstance(w, str) for w in item):
            firsts.append(list(item))
            seconds.append(None)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            first, second = item
            if is_split_into_words:
                first, second = _words(first, name), _words(second, name)
            elif not (isinstance(first, str) and isinstance(second, str)):
                raise TypeError(f"{name}: a pair must hold two str, got ({type(first).__name__}, "
                                f"{type(second).__name__}) (for pre-split words pass is_split_into_words=True)")
            firsts.append(first)
            seconds.append(second)
        elif is_split_into_words:
            raise TypeError(f"{name} must hold only lists of str words or pairs of such lists with "
                            f"is_split_into_words=True, got {_shape(item)}")
        else:
            hint = " (for pre-split words pass is_split_into_words=True)" if isinstance(item, (list, tuple)) else ""
            raise TypeError(f"{name} must hold only str or (first, second) pairs of str, got {_shape(item)}{hint}")
    return True, firsts, None if all(second is None for second in seconds) else seconds


def _shape(item: Any) -> str:
    return f"a {type(item).__name__} of {len(item)}" if isinstance(item, (list, tuple)) else type(item).__name__


def _words(words: Any, name: str) -> list[str]:
    if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
        raise TypeError(f"{name}: with is_split_into_words=True each text must be a list of str words, got "
                        f"{type(words).__name__}")
    return list(words)


def windows(length: int, keep: int, stride: int, side: str) -> list[tuple[int, int]]:
    """Windows of `keep` tokens overlapping by `stride` tokens, the first one kept, the rest overflow; `side` is
    the truncation side ('left' keeps the end)."""
    if keep >= length:
        return [(0, length)]
    if keep == 0:
        return [(0, 0), (0, length)]
    if not 0 <= stride < keep:
        raise UserError(f"stride={stride} must be smaller than the {keep} tokens a window holds for this "
                         "text (max_length minus special tokens, shared by a pair); lower stride or raise "
                         "max_length")
    step = keep - stride
    spans = []
    if side == "right":
        for start in range(0, length, step):
            stop = min(start + keep, length)
            spans.append((start, stop))
            if stop == length:
                break
    else:  # keep the end: windows walk backwards from the last token
        for stop in range(length, 0, -step):
            start = max(stop - keep, 0)
            spans.append((start, stop))
            if start == 0:
                break
    return spans


def pad_length(lengths: list[int], padding: str | None, max_length: int | None, multiple: int | None) -> int | None:
    """The length every row is padded to (None: no padding), rounded up to a multiple of `multiple`."""
    if padding is None or not lengths:
        return None
    target = max(lengths) if padding == "longest" else max_length
    if multiple and target % multiple:
        target += multiple - target % multiple
    return target


class SequenceAssembly:
    """[CLS]/[SEP], token type ids, truncation and padding: the part of BertTokenizer that turns tokens into rows.
    The tokenizer supplies the special-token ids and the settings annotated here."""

    model_max_length: int
    padding_side: str
    truncation_side: str
    cls_token_id: int
    sep_token_id: int
    pad_token_id: int
    all_special_ids: list[int]

    @property
    def pad_token_type_id(self) -> int:
        return 0

    # ----------------------------------------------------------------------------------------- strategies
    def _strategies(self, padding: Any, truncation: Any, max_length: int | None) -> tuple[str | None, str | None, int | None]:
        """HuggingFace's rules for padding/truncation/max_length defaults."""
        if padding is True or padding == "longest":
            padding = "longest"
        elif padding is False or padding is None or padding == "do_not_pad":
            padding = None
        elif padding != "max_length":
            raise UserError(f"padding must be True/'longest', 'max_length' or False, got {padding!r}")
        if truncation is None:
            # HuggingFace: a max_length without padding means truncate to it.
            truncation = "longest_first" if max_length is not None and padding is None else None
        elif truncation is True:
            truncation = "longest_first"
        elif truncation is False or truncation == "do_not_truncate":
            truncation = None
        elif truncation not in TRUNCATION_STRATEGIES:
            raise UserError(f"truncation must be True, False or one of {TRUNCATION_STRATEGIES}, got {truncation!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 0):
            raise UserError(f"max_length must be a non-negative int, got {max_length!r}")
        if max_length is None and (truncation is not None or padding == "max_length"):
            if self.model_max_length < VERY_LARGE_INTEGER:
                max_length = self.model_max_length
            elif padding == "max_length":
                raise UserError("padding='max_length' needs max_length= (this tokenizer has no model_max_length)")
            else:
                truncation = None  # no limit known: nothing to truncate to
        return padding, truncation, max_length

    # ----------------------------------------------------------------------------------------- truncation
    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    def _truncate(self, a: Tokens, b: Tokens | None, strategy: str | None, max_length: int | None,
                  stride: int, add_special_tokens: bool) -> list[tuple[Tokens, Tokens | None]]:
        """The (first, second) windows of one sample, main window first, in HuggingFace's overflow order."""
        n_a, n_b = len(a.ids), 0 if b is None else len(b.ids)
        if strategy is None or max_length is None:
            return [(a, b)]
        n_special = self.num_special_tokens_to_add(b is not None) if add_special_tokens else 0
        if max_length < n_special:
            raise UserError(f"max_length={max_length} is too small: the special tokens alone need {n_special} "
                             f"positions; use max_length >= {n_special + 1}")
        budget = max_length - n_special
        keep_a, keep_b = n_a, n_b
        if budget == 0:
            keep_a = keep_b = 0
        elif n_a + n_b > budget:
            if strategy == "longest_first":
                if b is None:
                    keep_a = budget
                else:  # HuggingFace's rule: the shorter keeps what it can; odd leftovers go to the longer
                    short, long = sorted((n_a, n_b))
                    long_keep = short if short > budget else max(short, budget - short)
                    short_keep = short
                    if short_keep + long_keep > budget:
                        short_keep = budget // 2
                        long_keep = short_keep + budget % 2
                    keep_a, keep_b = (short_keep, long_keep) if n_a <= n_b else (long_keep, short_keep)
            else:
                if strategy == "only_second" and b is None:
                    raise UserError("truncation='only_second' needs a text_pair; use 'only_first' or True "
                                     "for single texts")
                target = n_a if strategy == "only_first" else n_b
                excess = n_a + n_b - budget
                if target <= excess:
                    which = "first" if strategy == "only_first" else "second"
                    raise UserError(f"truncation={strategy!r} cannot fit max_length={max_length}: the {which} "
                                     f"text has {target} tokens but {excess} must go; use truncation="
                                     "'longest_first' or a larger max_length")
                if strategy == "only_first":
                    keep_a = n_a - excess
                else:
                    keep_b = n_b - excess
        a_windows = [a.window(s, e) for s, e in windows(n_a, keep_a, stride, self.truncation_side)]
        if b is None:
            return [(w, None) for w in a_windows]
        b_windows = [b.window(s, e) for s, e in windows(n_b, keep_b, stride, self.truncation_side)]
        # HuggingFace's Encoding.merge_with order: (a0, b0); each later a with b0 then with every later b;
        # then a0 with every later b.
        pairs = [(a_windows[0], b_windows[0])]
        for a_window in a_windows[1:]:
            pairs.extend((a_window, b_window) for b_window in b_windows)
        pairs.extend((a_windows[0], b_window) for b_window in b_windows[1:])
        return pairs

    # ----------------------------------------------------------------------------------------- special tokens
    def _assemble(self, a: Tokens, b: Tokens | None, add_special_tokens: bool, track: int,
                  special_mask: bool) -> dict[str, list]:
        """[CLS] a [SEP] (b [SEP]) with its type ids, masks, offsets, word and sequence ids."""
        cls, sep = ([self.cls_token_id], [self.sep_token_id]) if add_special_tokens else ([], [])
        n_a, n_b = len(a.ids), 0 if b is None else len(b.ids)
        ids = cls + a.ids + sep
        type_ids = [0] * len(ids)
        if b is not None:
            ids += b.ids + sep
            type_ids += [1] * (n_b + len(sep))
        row = {"input_ids": ids, "token_type_ids": type_ids, "attention_mask": [1] * len(ids)}
        if special_mask:
            row["special_tokens_mask"] = [1] * len(cls) + [0] * n_a + [1] * len(sep) + (
                [] if b is None else [0] * n_b + [1] * len(sep))
        if track:
            zero_cls, zero_sep = [(0, 0)] * len(cls), [(0, 0)] * len(sep)
            row["offsets"] = zero_cls + a.offsets + zero_sep + ([] if b is None else b.offsets + zero_sep)
        if track == DETAILS:
            none_cls, none_sep = [None] * len(cls), [None] * len(sep)
            row["word_ids"] = none_cls + a.word_ids + none_sep + ([] if b is None else b.word_ids + none_sep)
            row["sequence_ids"] = (none_cls + [0] * n_a + none_sep + ([] if b is None else [1] * n_b + none_sep))
        return row

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None) -> list[int]:
        ids = [self.cls_token_id] + list(token_ids_0) + [self.sep_token_id]
        return ids if token_ids_1 is None else ids + list(token_ids_1) + [self.sep_token_id]

    def create_token_type_ids_from_sequences(self, token_ids_0: list[int],
                                             token_ids_1: list[int] | None = None) -> list[int]:
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    def get_special_tokens_mask(self, token_ids_0: list[int], token_ids_1: list[int] | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        if already_has_special_tokens:
            special = set(self.all_special_ids)
            return [1 if i in special else 0 for i in token_ids_0]
        mask = [1] + [0] * len(token_ids_0) + [1]
        return mask if token_ids_1 is None else mask + [0] * len(token_ids_1) + [1]

    # ----------------------------------------------------------------------------------------- padding
    def _pad(self, columns: dict[str, list[list]], length: int | None, side: str) -> None:
        """Pad every row shorter than `length`, in place, on the given side."""
        if length is None:
            return
        fill = {"input_ids": self.pad_token_id, "token_type_ids": self.pad_token_type_id, "attention_mask": 0,
                "special_tokens_mask": 1, "offsets": (0, 0), "word_ids": None, "sequence_ids": None}
        for key, rows in columns.items():
            for i, values in enumerate(rows):
                if len(values) < length:
                    pad = [fill[key]] * (length - len(values))
                    rows[i] = values + pad if side == "right" else pad + values

    def pad(self, encoded_inputs: dict[str, Any] | list[dict[str, Any]], padding: bool | str = True,
            max_length: int | None = None, pad_to_multiple_of: int | None = None,
            return_attention_mask: bool | None = None, return_tensors: str | None = None,
            padding_side: str | None = None, **kwargs: Any) -> BatchEncoding:
        """Pad already-encoded rows (a dict of lists or a list of dicts), as data collators do."""
        if kwargs:
            warn_ignored("BertTokenizer.pad", kwargs)
        if isinstance(encoded_inputs, (list, tuple)):
            if not encoded_inputs or not all(isinstance(e, dict) for e in encoded_inputs):
                raise UserError("pad expects a dict of lists or a non-empty list of dicts of encoded inputs")
            encoded_inputs = {key: [e[key] for e in encoded_inputs] for key in encoded_inputs[0]}
        if "input_ids" not in encoded_inputs:
            raise UserError(f"pad needs 'input_ids' among the inputs, got {sorted(encoded_inputs)}")
        rows_ids = [as_int_list(r) for r in encoded_inputs["input_ids"]]
        single = bool(rows_ids) and not isinstance(encoded_inputs["input_ids"][0], (list, tuple)) and \
            not hasattr(encoded_inputs["input_ids"][0], "__len__")
        if single:
            encoded_inputs = {k: [v] for k, v in encoded_inputs.items()}
            rows_ids = [as_int_list(encoded_inputs["input_ids"][0])]
        padding_strategy, _, max_length = self._strategies(padding, False, max_length)
        pad_to = pad_length([len(r) for r in rows_ids], padding_strategy, max_length, pad_to_multiple_of)
        data: dict[str, list] = {key: [as_int_list(r) if key in PADDED_BY_PAD or key == "labels" else list(r)
                                       for r in rows] for key, rows in encoded_inputs.items()}
        if "attention_mask" not in data and return_attention_mask is not False:
            data["attention_mask"] = [[1] * len(r) for r in rows_ids]
        self._pad({key: data[key] for key in PADDED_BY_PAD if key in data}, pad_to, padding_side or self.padding_side)
        if single and return_tensors is None:
            data = {k: v[0] for k, v in data.items()}
        encoding = BatchEncoding(data)
        if return_tensors is not None:
            encoding.convert_to_tensors(return_tensors)
        return encoding
