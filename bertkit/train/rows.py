"""The Trainer's data: any dataset -> in-memory rows of python values, length-grouped batch orders, and the
padding a batch does not need.

    rows = read_rows(dataset, accepted={"input_ids", "attention_mask", "labels"}, what="training")
    for indices in batch_order([len(r["input_ids"]) for r in rows], batch_size=8, seed=42, group_by_length=True): ...
"""
from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Sequence

import numpy as np
import torch

from bertkit.data.collators import plain_value
from bertkit.errors import UserError

logger = logging.getLogger("bertkit")


def is_iterable_dataset(dataset: Any) -> bool:
    """A dataset read in order only (torch's or datasets' IterableDataset, a generator): no len(), no indexing."""
    return dataset is not None and not hasattr(dataset, "__len__") and hasattr(dataset, "__iter__")


def take_rows(dataset: Any, count: int) -> list[Any]:
    """The first `count` items of an iterable dataset, iterated again from the start when it runs out (as HF's
    Trainer starts a new epoch of an IterableDataset)."""
    items: list[Any] = []
    while len(items) < count:
        before = len(items)
        items.extend(itertools.islice(iter(dataset), count - len(items)))
        if len(items) == before:
            raise UserError("the training dataset is empty: an IterableDataset must yield at least one row")
    return items


def read_rows(dataset: Any, accepted: set[str] | None, what: str) -> list[dict[str, Any]]:
    """Read a dataset into a list of dicts of python values; `label`/`label_ids` become `labels`; columns the
    model does not take are dropped (said once)."""
    if dataset is None:
        return []
    try:
        count = len(dataset)
    except TypeError:
        raise UserError(f"the {what} dataset has no len(): pass a datasets.Dataset, a torch Dataset or a list "
                         "of dicts (an IterableDataset trains with max_steps > 0)") from None
    rows, dropped = [], set()
    for i in range(count):
        row = dataset[i]
        if not isinstance(row, dict) and hasattr(row, "keys"):
            row = dict(row)
        if not isinstance(row, dict):
            hint = (": it holds raw text; map the tokenizer over it first, e.g. rows = [{**tokenizer(text), "
                    "'labels': label} for text, label in ...]") if isinstance(row, str) else ""
            raise UserError(f"the {what} dataset's item {i} is a {type(row).__name__}, not a dict of columns "
                             "such as {'input_ids': [...], 'labels': 1}" + hint)
        clean = {}
        for key, value in row.items():
            key = "labels" if key in ("label", "label_ids") and "labels" not in row else key
            if accepted is not None and key not in accepted:
                dropped.add(key)
                continue
            clean[key] = plain_value(value)
        if "input_ids" not in clean or (clean["input_ids"] and isinstance(clean["input_ids"], str)):
            text = [k for k, v in row.items() if isinstance(v, str)]
            raise UserError(
                f"the {what} dataset holds no token ids (item {i} has columns {sorted(row)}"
                f"{', text in ' + ', '.join(text) if text else ''}): map the tokenizer over it first, e.g. "
                "dataset.map(lambda batch: tokenizer(batch['text'], truncation=True), batched=True)")
        rows.append(clean)
    if dropped:
        logger.warning(f"The following columns of the {what} dataset are not inputs of the model and were "
                       f"ignored: {', '.join(sorted(dropped))}")
    return rows


def batch_order(lengths: Sequence[int], batch_size: int, seed: int, group_by_length: bool,
                shuffle: bool = True) -> list[list[int]]:
    """The batches of one epoch, from a generator seeded by (seed, epoch) so that a resumed run sees the same.

    Random: torch.randperm from a generator seeded with `seed`, which is HF's RandomSampler under accelerate, so a
    run seeded as an HF one draws the same batches. Grouped (a numpy generator; no HF order to follow): a
    permutation cut into mega-batches of 50 batches, each sorted by length and cut into batches (which then pad
    little), and the batches shuffled. The last step matters: HF's LengthGroupedSampler keeps each mega-batch
    sorted longest-first, so each stretch of steps sees ever shorter rows and the end of a short run (its
    learning-rate decay) only the shortest, often trivial, ones."""
    if not shuffle:  # transformers 5's train_sampling_strategy="sequential": the dataset's own order
        return [list(range(start, min(start + batch_size, len(lengths)))) for start in range(0, len(lengths), batch_size)]
    if not group_by_length:
        order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(int(seed))).tolist()
        return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    mega = batch_size * 50
    order = [i for start in range(0, len(order), mega)
             for i in sorted(order[start:start + mega], key=lambda j: -lengths[j])]
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def labelled_tokens_per_row(rows: Sequence[dict[str, Any]]) -> float | None:
    """The mean number of labelled tokens (label != -100) per row when the labels are per token, else None."""
    token_labels = [r["labels"] for r in rows if isinstance(r.get("labels"), list)
                    and len(r["labels"]) == len(r["input_ids"]) and all(isinstance(x, int) for x in r["labels"][:1])]
    if len(token_labels) != len(rows) or not rows:
        return None
    total = sum(sum(1 for label in labels if label != -100) for labels in token_labels)
    return total / len(rows) if total else None


def trim_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop trailing columns that are padding in every row (rows padded to the whole dataset's longest, as
    `tokenizer(..., padding=True)` over a dataset does), unless a label sits there."""
    mask = batch.get("attention_mask")
    if mask is None or mask.dim() != 2 or mask.shape[1] == 0:
        return batch
    used = mask.any(dim=0).nonzero()
    keep = int(used.max()) + 1 if len(used) else 1
    labels = batch.get("labels")
    if labels is not None and labels.dim() == 2 and labels.shape == mask.shape:
        labelled = (labels != -100).any(dim=0).nonzero()
        keep = max(keep, int(labelled.max()) + 1 if len(labelled) else 0)
    if keep == mask.shape[1]:
        return batch
    seq_len = mask.shape[1]
    return {k: (v[:, :keep] if v.dim() >= 2 and v.shape[1] == seq_len and v.shape[0] == mask.shape[0] else v)
            for k, v in batch.items()}


def flat_ints(value: Any) -> list[int]:
    """A row's labels as a flat list of ints (a class id, or token labels); [] for anything else."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list) and value and isinstance(value[0], int):
        return value
    return []


def stack_padded(arrays: list[np.ndarray]) -> np.ndarray:
    """One array from rows of possibly different lengths along axis 0 of each row, padded with -100."""
    if not arrays:
        return np.zeros((0,))
    if arrays[0].ndim == 0 or all(a.shape == arrays[0].shape for a in arrays):
        return np.stack(arrays)
    length = max(a.shape[0] for a in arrays)
    out = np.full((len(arrays), length, *arrays[0].shape[1:]), -100, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out


def metric_inputs(rows: list[dict[str, Any]], include_for_metrics: list[str]) -> np.ndarray | None:
    """The rows' input ids (padded with -100, as HF pads them) when `include_for_metrics` asks for "inputs"."""
    return stack_padded([np.asarray(r["input_ids"]) for r in rows]) if "inputs" in include_for_metrics else None


def check_training_rows(rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]] | None,
                        collate: Callable[[list[dict[str, Any]]], dict[str, Any]], model: Any) -> None:
    """The mistakes in training data that would otherwise surface deep inside torch, or after an hour of training:
    no rows, no labels, labels beyond the model's num_labels."""
    if not rows:
        raise UserError("Trainer.train() needs a train_dataset with at least one row")
    sample = collate([rows[i] for i in range(min(2, len(rows)))])
    targets = ("labels", "start_positions", "next_sentence_label")
    if not any(t in sample for t in targets):
        raise UserError(f"the training data has no labels (columns after collation: {sorted(sample)}): add a "
                         "'label' or 'labels' column (QA: start_positions/end_positions), or use a collator "
                         "that makes them (DataCollatorForLanguageModeling)")
    num_labels = getattr(getattr(model, "config", None), "num_labels", None)
    if num_labels and num_labels > 1 and hasattr(model, "classifier"):
        high = max((v for row in rows + (eval_rows or []) for v in flat_ints(row.get("labels"))), default=-1)
        if high >= num_labels:
            raise UserError(f"labels go up to {high} but the model has num_labels={num_labels}: load it with "
                             f"num_labels={high + 1} (from_pretrained(..., num_labels={high + 1}))")
