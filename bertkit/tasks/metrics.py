"""The field's standard metrics, written out so that bertkit needs no metric package at run time.

- classification: accuracy, macro-F1 and a per-class report (precision, recall, F1, support), as
  scikit-learn computes them; multi-label (micro-F1, subset accuracy); regression (MSE, Pearson).
- NER: entity-level precision / recall / F1 exactly as `seqeval` (default, conlleval-compatible mode)
  computes them; tests/test_tasks_metrics.py checks equality against seqeval on random sequences.
- QA: the official SQuAD exact match and F1 (the v1.1 answer normalization; the v2.0 rule for empty answers).
"""
from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Mapping, Sequence

import numpy as np

from bertkit.errors import UserError

# ----------------------------------------------------------------------------------------------
# classification


def _precision_recall_f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    # 0 where undefined (no predictions / no gold), as sklearn's zero_division=0 and seqeval do
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def classification_report(
    predictions: Sequence[int], labels: Sequence[int], id2label: Mapping[int, str] | None = None
) -> dict[str, dict[str, float]]:
    """Per-class precision, recall, F1 and support, for every class seen in labels or predictions
    (and every class of id2label, so a class the model never predicts shows up with zeros)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise UserError(f"{len(predictions)} predictions for {len(labels)} labels: they must match one to one")
    classes = sorted(set(labels.tolist()) | set(predictions.tolist()) | set(int(k) for k in (id2label or {})))
    report = {}
    for cls in classes:
        tp = float(np.sum((predictions == cls) & (labels == cls)))
        fp = float(np.sum((predictions == cls) & (labels != cls)))
        fn = float(np.sum((predictions != cls) & (labels == cls)))
        precision, recall, f1 = _precision_recall_f1(tp, fp, fn)
        name = str(id2label[cls]) if id2label and cls in id2label else str(cls)
        report[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(tp + fn)}
    return report


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if len(labels) == 0:
        raise UserError("no labels to score: the evaluation set is empty")
    return float(np.mean(predictions == labels))


def classification_metrics(
    predictions: Sequence[int], labels: Sequence[int], id2label: Mapping[int, str] | None = None
) -> dict:
    """accuracy, macro-F1 (unweighted mean over classes present in labels or predictions) and the report."""
    report = classification_report(predictions, labels, id2label)
    # sklearn's macro average runs over the union of labels and predictions, not over id2label
    seen = set(np.asarray(labels).tolist()) | set(np.asarray(predictions).tolist())
    names = [str(id2label[c]) if id2label and c in id2label else str(c) for c in seen]
    macro_f1 = float(np.mean([report[n]["f1"] for n in names]))
    return {"accuracy": accuracy(predictions, labels), "macro_f1": macro_f1, "per_class": report}


def multilabel_metrics(predictions: np.ndarray, labels: np.ndarray) -> dict:
    """predictions and labels are 0/1 matrices (examples x classes)."""
    predictions, labels = np.asarray(predictions).astype(bool), np.asarray(labels).astype(bool)
    tp = float(np.sum(predictions & labels))
    fp = float(np.sum(predictions & ~labels))
    fn = float(np.sum(~predictions & labels))
    precision, recall, f1 = _precision_recall_f1(tp, fp, fn)
    return {
        "subset_accuracy": float(np.mean(np.all(predictions == labels, axis=1))),
        "micro_precision": precision,
        "micro_recall": recall,
        "micro_f1": f1,
    }


def regression_metrics(predictions: Sequence[float], labels: Sequence[float]) -> dict:
    predictions, labels = np.asarray(predictions, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    mse = float(np.mean((predictions - labels) ** 2))
    pearson = float(np.corrcoef(predictions, labels)[0, 1]) if len(labels) > 1 and np.std(predictions) > 0 else 0.0
    return {"mse": mse, "pearson": pearson}


# ----------------------------------------------------------------------------------------------
# NER: entity spans the way conlleval / seqeval (default mode) read BIO and IOBES tags


def _split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") from "B-PER"; the prefix is the first character and an untyped tag gets type "_",
    exactly as seqeval splits them (so both agree on odd tags too)."""
    if not tag:
        return "O", "_"
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first index, last index) of each entity. Lenient like conlleval: an I- after O or after
    another type starts a new entity; E-/S- close one. Works for BIO, IOB1 and IOBES."""
    entities = []
    prev_prefix, prev_type, begin = "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, entity_type = _split_tag(tag)
        # does an entity end just before position i?
        ends = (
            prev_prefix in ("E", "S")
            or (prev_prefix in ("B", "I") and prefix in ("B", "S", "O"))
            or (prev_prefix != "O" and prev_type != entity_type)
        )
        if ends:
            entities.append((prev_type, begin, i - 1))
        # does one start at i?
        starts = (
            prefix in ("B", "S")
            or (prev_prefix in ("E", "S", "O") and prefix in ("E", "I"))
            or (prefix != "O" and prev_type != entity_type)
        )
        if starts:
            begin = i
        prev_prefix, prev_type = prefix, entity_type
    return entities


def entity_metrics(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict:
    """Entity-level micro precision / recall / F1 over all sentences, plus a per-type report; equal to
    seqeval.metrics.{precision,recall,f1}_score and classification_report in default mode."""
    if len(true_tags) != len(pred_tags):
        raise UserError(f"{len(pred_tags)} predicted sentences for {len(true_tags)} gold sentences")
    gold, pred = set(), set()
    for sentence, (true, predicted) in enumerate(zip(true_tags, pred_tags)):
        if len(true) != len(predicted):
            raise UserError(f"sentence {sentence}: {len(predicted)} predicted tags for {len(true)} words")
        gold.update((sentence, *e) for e in get_entities(true))
        pred.update((sentence, *e) for e in get_entities(predicted))
    correct = gold & pred
    precision, recall, f1 = _precision_recall_f1(len(correct), len(pred - correct), len(gold - correct))
    per_type = {}
    for entity_type in sorted({e[1] for e in gold | pred}):
        g = {e for e in gold if e[1] == entity_type}
        p = {e for e in pred if e[1] == entity_type}
        tp = len(g & p)
        tp_p, tp_r, tp_f = _precision_recall_f1(tp, len(p) - tp, len(g) - tp)
        per_type[entity_type] = {"precision": tp_p, "recall": tp_r, "f1": tp_f, "support": len(g)}
    flat_true = [t for s in true_tags for t in s]
    flat_pred = [t for s in pred_tags for t in s]
    token_accuracy = float(np.mean([a == b for a, b in zip(flat_true, flat_pred)])) if flat_true else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": token_accuracy, "per_type": per_type}


# ----------------------------------------------------------------------------------------------
# SQuAD: the official evaluation (v1.1 normalization; v2.0's rule that an empty answer only matches empty)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, squeeze white space (official SQuAD)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    if not prediction_tokens or not truth_tokens:
        # v2.0: a no-answer prediction scores 1 only against a no-answer gold
        return float(prediction_tokens == truth_tokens)
    common = collections.Counter(prediction_tokens) & collections.Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Mapping[str, str], gold_answers: Mapping[str, Iterable[str]]) -> dict:
    """Official SQuAD EM and F1 in percent: the best score over each question's gold answers, averaged
    over all gold questions (a question without a prediction scores 0). A question without gold answers
    (v2.0 unanswerable) is scored against the empty answer."""
    if not gold_answers:
        raise UserError("no questions to score: the evaluation set is empty")
    exact = f1 = 0.0
    for qid, answers in gold_answers.items():
        answers = [a for a in answers if normalize_answer(a)] or [""]
        if qid not in predictions:
            continue
        exact += max(exact_match_score(predictions[qid], a) for a in answers)
        f1 += max(f1_score(predictions[qid], a) for a in answers)
    n = len(gold_answers)
    return {"exact_match": 100.0 * exact / n, "f1": 100.0 * f1 / n, "total": n}
