"""Collators: a list of features -> a batch of tensors, padded to the batch's longest row.

    collate = PaddingCollator(pad_token_id=tokenizer.pad_token_id)
    batch = collate([{"input_ids": [101, 1045, 102], "labels": 1}, {"input_ids": [101, 102], "labels": 0}])

Fine-tuning, evaluation, the pipelines and the HF-shaped collators below all pad here; the MLM collators mask
with `bertkit.data.masking.Masker`, the same code pretraining uses.

    from bertkit import DataCollatorWithPadding, DataCollatorForLanguageModeling
    collate = DataCollatorWithPadding(tokenizer)                       # dynamic padding, label -> labels
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)   # + BERT's 80/10/10 masking

A feature's values may be python lists, numpy arrays or torch tensors (HF `datasets` with `set_format("torch")`).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from bertkit.data.masking import Masker
from bertkit.errors import UserError

# what a feature may hand to the model; everything else in a feature is for post-processing
MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids", "labels", "start_positions", "end_positions")


class PaddingCollator:
    """Pads a list of features to the batch's longest sequence and returns tensors.

    input_ids get the tokenizer's pad id, masks and segment ids 0, token-level labels `label_pad_token_id`
    (-100: ignored by the loss); sequence-level labels, multi-hot vectors and start/end positions are stacked as
    they are. An attention_mask is added when the features have none, so padding is never attended to.

    `length` pads every batch to at least that many tokens (HF's padding="max_length"); `pad_to_multiple_of`
    then rounds the length up (8 suits tensor cores). `token_labels` says whether `labels` are per token;
    None detects it (int lists as long as input_ids).
    """

    def __init__(self, pad_token_id: int = 0, pad_to_multiple_of: int | None = None, length: int | None = None,
                 label_pad_token_id: int = -100, token_labels: bool | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.length = length
        self.label_pad_token_id = label_pad_token_id
        self.token_labels = token_labels

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise UserError("cannot collate an empty list of features")
        # tensors and arrays become python lists once here, so the code below handles one kind of row
        rows = [{k: plain_value(v) for k, v in f.items() if k in MODEL_KEYS} for f in features]
        length = max(len(r["input_ids"]) for r in rows)
        if self.length is not None:
            length = max(length, self.length)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        if "attention_mask" not in rows[0]:
            for r in rows:
                r["attention_mask"] = [1] * len(r["input_ids"])
        pad_values = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0}
        batch: dict[str, torch.Tensor] = {}
        for key in rows[0]:
            values = [r[key] for r in rows]
            token_labels = key == "labels" and (
                _is_token_level(values, rows) if self.token_labels is None else self.token_labels)
            if key in pad_values or token_labels:
                pad = pad_values.get(key, self.label_pad_token_id)
                batch[key] = torch.tensor([list(v) + [pad] * (length - len(v)) for v in values], dtype=torch.long)
            elif key == "labels" and isinstance(values[0], (float, list)):
                batch[key] = torch.tensor(values, dtype=torch.float)  # regression / multi-hot (BCE wants floats)
            else:
                batch[key] = torch.tensor(values, dtype=torch.long)  # class ids, start/end positions
        return batch


def plain_value(value: Any) -> Any:
    # torch tensors and numpy arrays/scalars -> python lists/numbers, in one call each
    return value.tolist() if hasattr(value, "tolist") else value


def _is_token_level(values: list, rows: Sequence[dict[str, Any]]) -> bool:
    # token labels are int lists as long as input_ids (multi-hot vectors are float lists)
    first = values[0]
    return isinstance(first, list) and (not first or isinstance(first[0], int)) and len(first) == len(rows[0]["input_ids"])


def _check_return_tensors(return_tensors: str) -> str:
    if return_tensors not in ("pt", "np"):
        raise UserError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
    return return_tensors


def _as(batch: dict[str, torch.Tensor], return_tensors: str) -> dict[str, Any]:
    return batch if return_tensors == "pt" else {k: v.numpy() for k, v in batch.items()}


def _max_length_if(padding: bool | str, max_length: int | None) -> int | None:
    # HF: padding=True/"longest" pads to the longest row and ignores max_length; "max_length" pads to it
    padding = getattr(padding, "value", padding)  # a PaddingStrategy enum
    if padding in (True, "longest"):
        return None
    if padding == "max_length":
        if max_length is None:
            raise UserError("padding='max_length' needs max_length")
        return max_length
    if padding in (False, "do_not_pad"):
        return None  # equal-length rows need no padding; ragged ones are padded to the longest instead of failing
    raise UserError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")


class DataCollatorWithPadding:
    """HuggingFace's DataCollatorWithPadding: pads input_ids (with the tokenizer's pad id), attention_mask and
    token_type_ids to the batch's longest row, and renames `label` / `label_ids` to `labels`.

    Unlike HF, keys the model does not take (offsets, ids, raw text) are dropped rather than tensorised.
    """

    def __init__(self, tokenizer: Any, padding: bool | str = True, max_length: int | None = None,
                 pad_to_multiple_of: int | None = None, return_tensors: str = "pt") -> None:
        self.tokenizer = tokenizer
        self.return_tensors = _check_return_tensors(return_tensors)
        self._collate = PaddingCollator(tokenizer.pad_token_id, pad_to_multiple_of, _max_length_if(padding, max_length))

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return _as(self._collate([_rename_labels(f) for f in features]), self.return_tensors)


def _rename_labels(feature: Mapping[str, Any]) -> dict[str, Any]:
    feature = dict(feature)
    for name in ("label", "label_ids"):
        if name in feature:
            feature["labels"] = feature.pop(name)
    return feature


class DataCollatorForTokenClassification:
    """HuggingFace's DataCollatorForTokenClassification: pads like DataCollatorWithPadding and pads the
    per-token labels with `label_pad_token_id` (-100: ignored by the loss) to the same length.

    The labels come out as `labels` even when the features call them `label` (HF keeps `label` then).
    """

    def __init__(self, tokenizer: Any, padding: bool | str = True, max_length: int | None = None,
                 pad_to_multiple_of: int | None = None, label_pad_token_id: int = -100,
                 return_tensors: str = "pt") -> None:
        self.tokenizer = tokenizer
        self.label_pad_token_id = label_pad_token_id
        self.return_tensors = _check_return_tensors(return_tensors)
        self._collate = PaddingCollator(tokenizer.pad_token_id, pad_to_multiple_of, _max_length_if(padding, max_length),
                                        label_pad_token_id=label_pad_token_id, token_labels=True)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return _as(self._collate([_rename_labels(f) for f in features]), self.return_tensors)


def default_data_collator(features: Sequence[Mapping[str, Any]], return_tensors: str = "pt") -> dict[str, Any]:
    """HuggingFace's `default_data_collator`: features already of equal length stacked into tensors, every
    column kept (no padding; `label` / `label_ids` become `labels`, float labels stay float)."""
    if not features:
        raise UserError("cannot collate an empty list of features")
    rows = [_rename_labels({k: plain_value(v) for k, v in f.items()}) for f in features]
    batch: dict[str, torch.Tensor] = {}
    for key, first in rows[0].items():
        if first is None or isinstance(first, str):
            continue  # HF skips None and strings too
        values = [r[key] for r in rows]
        try:
            floats = isinstance(first, float) or (isinstance(first, list) and first and isinstance(first[0], float))
            batch[key] = torch.tensor(values, dtype=torch.float if floats else torch.long)
        except ValueError:
            lengths = sorted({len(v) for v in values if isinstance(v, list)})
            raise UserError(f"default_data_collator stacks rows of equal length, but {key!r} has lengths {lengths}: "
                            "tokenize with padding='max_length', or use DataCollatorWithPadding") from None
    return _as(batch, _check_return_tensors(return_tensors))


class DataCollatorForMultipleChoice(DataCollatorWithPadding):
    """HuggingFace's DataCollatorForMultipleChoice: each feature holds one row per choice (input_ids as a list of
    lists); the choices of the whole batch are padded together and come out [batch, choices, seq]."""

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        features = [_rename_labels(f) for f in features]
        choices = len(features[0]["input_ids"])
        if any(len(f["input_ids"]) != choices for f in features):
            raise UserError("every feature needs the same number of choices (input_ids as one list per choice)")
        flat = [{k: plain_value(v)[c] for k, v in f.items() if k != "labels"} for f in features for c in range(choices)]
        batch = {k: v.view(len(features), choices, -1) for k, v in self._collate(flat).items()}
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([plain_value(f["labels"]) for f in features], dtype=torch.long)
        return _as(batch, self.return_tensors)


class DataCollatorForLanguageModeling:
    """HuggingFace's DataCollatorForLanguageModeling on bertkit's masking (`Masker`, shared with pretraining).

    mlm=True: of each row's maskable tokens (never [CLS]/[SEP]/[PAD] or another special token) the collator
    picks exactly max(1, round(mlm_probability * n)) positions, as Google's create_pretraining_data.py does;
    HF instead draws each token independently with probability mlm_probability, so its count varies per row.
    Chosen tokens become [MASK] with `mask_replace_prob`, a random ordinary vocabulary token with
    `random_replace_prob`, else stay; labels are the original ids there and -100 everywhere else.
    whole_word_mask=True chooses a word's "##" pieces together with its first piece (HF 5 finds words from
    offsets and turns off random replacement; bertkit keeps BERT's 80/10/10 for whole words too).

    mlm=False: labels are input_ids with padding set to -100 (causal-LM style, as HF).

    Examples are dicts (input_ids, optionally token_type_ids / attention_mask) or bare id sequences; values may be
    lists, numpy arrays or tensors. With `seed` the collator owns a generator (one stream across batches);
    without it each batch's generator is seeded from torch's global RNG, so torch.manual_seed / set_seed make
    masks reproducible, as with HF.
    """

    def __init__(self, tokenizer: Any, mlm: bool = True, mlm_probability: float | None = 0.15,
                 mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
                 pad_to_multiple_of: int | None = None, return_tensors: str = "pt", seed: int | None = None,
                 whole_word_mask: bool = False) -> None:
        if whole_word_mask and not mlm:
            raise UserError("whole_word_mask needs mlm=True")
        if mlm and mlm_probability is None:
            raise UserError("mlm=True needs an mlm_probability between 0 and 1 (BERT uses 0.15)")
        self.tokenizer = tokenizer
        self.mlm = mlm
        self.whole_word_mask = whole_word_mask
        self.return_tensors = _check_return_tensors(return_tensors)
        self.pad_token_id = tokenizer.pad_token_id
        self._collate = PaddingCollator(tokenizer.pad_token_id, pad_to_multiple_of)
        self.masker = Masker.from_tokenizer(
            tokenizer, whole_word=whole_word_mask, mlm_probability=mlm_probability,
            mask_replace_prob=mask_replace_prob, random_replace_prob=random_replace_prob) if mlm else None
        self.rng = np.random.default_rng(seed) if seed is not None else None

    def __call__(self, examples: Sequence[Mapping[str, Any] | Sequence[int]]) -> dict[str, Any]:
        features = [e if isinstance(e, Mapping) else {"input_ids": e} for e in examples]
        batch = self._collate([{k: v for k, v in f.items() if k != "labels"} for f in features])
        ids = batch["input_ids"]
        if not self.mlm:
            labels = ids.clone()
            labels[(batch["attention_mask"] == 0) | (ids == self.pad_token_id)] = -100
            batch["labels"] = labels
            return _as(batch, self.return_tensors)
        rng = self.rng or np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        masked, labels = zip(*(self.masker.mask(row, rng) for row in ids.numpy()))
        # padding is [PAD], a special token, so the masker never chooses it
        batch["input_ids"] = torch.from_numpy(np.stack(masked))
        batch["labels"] = torch.from_numpy(np.stack(labels))
        return _as(batch, self.return_tensors)


class DataCollatorForWholeWordMask(DataCollatorForLanguageModeling):
    """HuggingFace 4's name for DataCollatorForLanguageModeling(whole_word_mask=True)."""

    def __init__(self, tokenizer: Any, mlm: bool = True, mlm_probability: float = 0.15,
                 mask_replace_prob: float = 0.8, random_replace_prob: float = 0.1,
                 pad_to_multiple_of: int | None = None, return_tensors: str = "pt", seed: int | None = None) -> None:
        super().__init__(tokenizer, mlm, mlm_probability, mask_replace_prob, random_replace_prob,
                         pad_to_multiple_of, return_tensors, seed, whole_word_mask=True)
