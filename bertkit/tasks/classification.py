"""Text classification data: a table (CSV / TSV / JSONL) -> examples -> label maps -> model features.

    rows = read_table("reviews.tsv")                                  # list of dicts, one per row
    examples = examples_from_rows(rows, text_column="text", label_column="label")
    train, evaluation = train_eval_split(examples, test_size=0.3, seed=42)   # the seed's split
    label2id, id2label = build_label_maps([e.label for e in train])
    features = encode_examples(train, tokenizer, label2id, max_length=128)

Single texts or pairs (a second text column, e.g. NLI / paraphrase); three kinds of target
(`problem_type`, HuggingFace's names): "single_label_classification" (one label per row),
"multi_label_classification" (a JSON list, or labels joined by `label_separator`, e.g. "sports|politics")
and "regression" (one number per row).
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from bertkit.errors import UserError
from bertkit.files import iter_jsonl, open_text

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
# tried in this order when the user names no text column
TEXT_COLUMN_GUESSES = ("text", "sentence", "document", "review", "content", "sentence1", "question")
PAIR_COLUMN_GUESSES = {"sentence1": "sentence2", "question": "sentence", "premise": "hypothesis"}
LABEL_COLUMN_GUESSES = ("label", "labels", "target", "sentiment", "class")


@dataclass
class ClassificationExample:
    text: str
    text_pair: str | None = None
    label: Any = None  # str (single label), list[str] (multi-label), float (regression) or None (to predict)


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".xz", ".gz")]
    last = suffixes[-1] if suffixes else ""
    if last in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if last in (".tsv", ".txt", ".tab"):
        return "tsv"
    if last == ".csv":
        return "csv"
    raise UserError(f"cannot tell the format of {path.name!r}: use a .csv, .tsv or .jsonl file (optionally .xz/.gz)")


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a CSV / TSV (first line is the header) or JSONL file, as dicts."""
    path = Path(path)
    fmt = _format_of(path)
    with open_text(path, newline="") as f:  # csv needs newline=""
        if fmt == "jsonl":
            rows = [row for _, row in iter_jsonl(f, path.name)]
        else:
            # TSV files of the field (SST-2, NSMC) contain quotes that are part of the text
            reader = csv.DictReader(f, delimiter="\t" if fmt == "tsv" else ",",
                                    quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
            rows = list(reader)
            if reader.fieldnames is None:
                rows = []
    if not rows:
        raise UserError(f"{path.name} is empty: it needs a header line and at least one row")
    return rows


def _pick_column(columns: Sequence[str], wanted: str | None, guesses: Iterable[str], role: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise UserError(f"no {role} column {wanted!r}; the file has columns {list(columns)}: "
                             f"pass the right one with --{role.replace(' ', '-')}-column")
        return wanted
    for guess in guesses:
        if guess in columns:
            return guess
    raise UserError(f"cannot guess the {role} column among {list(columns)}; "
                     f"name it with --{role.replace(' ', '-')}-column")


def examples_from_rows(
    rows: list[dict[str, Any]],
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    problem_type: str = "single_label_classification",
    label_separator: str = "|",
    require_labels: bool = True,
) -> list[ClassificationExample]:
    """Pick the text (and pair) and label columns; labels become str / list[str] / float by problem_type.

    Column names are guessed when not given (text/sentence/document/..., label/labels/...).
    With require_labels=False (prediction) a missing label column is fine.
    """
    if problem_type not in PROBLEM_TYPES:
        raise UserError(f"unknown problem_type {problem_type!r}; choose one of {', '.join(PROBLEM_TYPES)}")
    columns = list(rows[0].keys())
    text_column = _pick_column(columns, text_column, TEXT_COLUMN_GUESSES, "text")
    if text_pair_column is None and text_column in PAIR_COLUMN_GUESSES and PAIR_COLUMN_GUESSES[text_column] in columns:
        text_pair_column = PAIR_COLUMN_GUESSES[text_column]
    elif text_pair_column is not None:
        text_pair_column = _pick_column(columns, text_pair_column, (), "text pair")
    if require_labels or label_column is not None:
        label_column = _pick_column(columns, label_column, LABEL_COLUMN_GUESSES, "label")
    else:
        label_column = next((c for c in LABEL_COLUMN_GUESSES if c in columns), None)

    examples = []
    for number, row in enumerate(rows, 1):
        text = row.get(text_column)
        if text is None or (isinstance(text, str) and not text.strip()):
            raise UserError(f"row {number} has an empty {text_column!r} text; remove it or fill it in")
        pair = row.get(text_pair_column) if text_pair_column else None
        label = row.get(label_column) if label_column else None
        if label_column and label in (None, "") and require_labels:
            raise UserError(f"row {number} has no value in the label column {label_column!r}")
        if label not in (None, ""):
            label = _parse_label(label, problem_type, label_separator, number)
        else:
            label = None
        examples.append(ClassificationExample(str(text).strip(), None if pair is None else str(pair).strip(), label))
    return examples


def _parse_label(value: Any, problem_type: str, separator: str, row: int) -> Any:
    if problem_type == "regression":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"row {row}: regression needs a number as label, got {value!r}") from None
    if problem_type == "multi_label_classification":
        if isinstance(value, list):
            return [str(v) for v in value]
        return [part.strip() for part in str(value).split(separator) if part.strip()]
    if isinstance(value, float) and value.is_integer():  # JSON 1.0 -> "1"
        value = int(value)
    return str(value).strip()


def read_classification_file(path: str | Path, **kwargs: Any) -> list[ClassificationExample]:
    """`read_table` + `examples_from_rows` (same keywords)."""
    return examples_from_rows(read_table(path), **kwargs)


def read_task_file(path: str | Path, settings: dict[str, Any], require_labels: bool = True) -> list[ClassificationExample]:
    """The examples of a file, with the columns the model was fine-tuned with (`bertkit_task.json` settings)."""
    return read_classification_file(path, text_column=settings.get("text_column"),
                                    text_pair_column=settings.get("text_pair_column"),
                                    label_column=settings.get("label_column") if require_labels else None,
                                    problem_type=settings.get("problem_type", "single_label_classification"),
                                    require_labels=require_labels)


def _label_sort_key(label: str) -> tuple:
    # numeric labels in numeric order ("2" before "10"), so "0"/"1" files keep id 0 = "0"
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def build_label_maps(labels: Iterable[Any]) -> tuple[dict[str, int], dict[int, str]]:
    """label2id / id2label over the distinct labels (flattened for multi-label), in a stable sorted order."""
    distinct: set[str] = set()
    for label in labels:
        if isinstance(label, list):
            distinct.update(label)
        elif label is not None:
            distinct.add(str(label))
    if not distinct:
        raise UserError("no labels found in the training data")
    ordered = sorted(distinct, key=_label_sort_key)
    return {label: i for i, label in enumerate(ordered)}, {i: label for i, label in enumerate(ordered)}


def train_eval_split(examples: Sequence, test_size: float = 0.3, seed: int = 42) -> tuple[list, list]:
    """Shuffle with `seed` and hold out `test_size` of the examples (the seed's train_test_split(test_size=0.3))."""
    if not 0 < test_size < 1:
        raise UserError(f"test_size must be between 0 and 1, got {test_size}")
    if len(examples) < 2:
        raise UserError(f"need at least 2 examples to split into train and eval, got {len(examples)}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(examples) - 1, max(1, round(len(examples) * test_size)))
    return [examples[i] for i in order[n_eval:]], [examples[i] for i in order[:n_eval]]


def label_to_target(label: Any, label2id: dict[str, int], problem_type: str) -> Any:
    """The model's `labels` value for one example: class id, multi-hot list, or float."""
    if problem_type == "regression":
        return float(label)
    if problem_type == "multi_label_classification":
        unknown = [l for l in label if l not in label2id]
        if unknown:
            raise UserError(f"labels {unknown} were not seen in training; known labels: {list(label2id)}")
        target = [0.0] * len(label2id)
        for l in label:
            target[label2id[l]] = 1.0
        return target
    if label not in label2id:
        raise UserError(f"label {label!r} was not seen in training; known labels: {list(label2id)}")
    return label2id[label]


def encode_examples(
    examples: Sequence[ClassificationExample],
    tokenizer: Any,
    label2id: dict[str, int] | None = None,
    max_length: int = 128,
    problem_type: str = "single_label_classification",
) -> list[dict[str, Any]]:
    """One unpadded feature dict per example (input_ids, token_type_ids, attention_mask[, labels]);
    `bertkit.data.collators.PaddingCollator` pads each batch to its own longest row."""
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples]
    has_pairs = any(p is not None for p in pairs)
    if has_pairs and any(p is None for p in pairs):
        raise UserError("some examples have a second text and some do not; fill the pair column for every row")
    encoded = tokenizer(texts, pairs if has_pairs else None, truncation=True, max_length=max_length)
    features = []
    for i, example in enumerate(examples):
        feature = {key: encoded[key][i] for key in ("input_ids", "token_type_ids", "attention_mask") if key in encoded}
        if example.label is not None and (label2id is not None or problem_type == "regression"):
            feature["labels"] = label_to_target(example.label, label2id or {}, problem_type)
        features.append(feature)
    return features
