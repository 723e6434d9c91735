"""Metrics against their references: scikit-learn (classification), seqeval (entities), the official
SQuAD v1.1/v2.0 evaluation functions (copied below as the oracle)."""
from __future__ import annotations

import collections
import re
import string
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics import f1_score as seqeval_f1
from seqeval.metrics import precision_score as seqeval_precision
from seqeval.metrics import recall_score as seqeval_recall
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from bertkit.tasks import metrics

# --------------------------------------------------------------------------- the official SQuAD script's functions


def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_v11_f1(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def official_v11_evaluate(gold: dict[str, list[str]], predictions: dict[str, str]) -> dict:
    f1 = exact_match = total = 0
    for qid, answers in gold.items():
        total += 1
        if qid not in predictions:
            continue
        exact_match += max(official_normalize_answer(predictions[qid]) == official_normalize_answer(a) for a in answers)
        f1 += max(official_v11_f1(predictions[qid], a) for a in answers)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def official_v2_compute_f1(a_gold, a_pred):
    gold_toks = official_normalize_answer(a_gold).split() if a_gold else []
    pred_toks = official_normalize_answer(a_pred).split() if a_pred else []
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


ANSWERS = ["The Denver Broncos", "Denver Broncos", "the  broncos!", "Broncos", "an apple a day", "Santa Clara, California",
           "1,000", "1000", "Levi's Stadium", "Levis Stadium", "", "a", "the the", "Chopin", "Frédéric Chopin",
           "서울특별시", "서울", "1989년 2월 15일"]


@settings(max_examples=200, deadline=None)
@given(pred=st.sampled_from(ANSWERS) | st.text(max_size=20), gold=st.sampled_from(ANSWERS[:-8]) | st.text(min_size=1, max_size=20))
def test_squad_exact_and_f1_equal_the_official_script(pred, gold):
    assert metrics.normalize_answer(pred) == official_normalize_answer(pred)
    assert metrics.exact_match_score(pred, gold) == float(official_normalize_answer(pred) == official_normalize_answer(gold))
    assert metrics.f1_score(pred, gold) == pytest.approx(official_v2_compute_f1(gold, pred))
    if official_normalize_answer(gold):  # v1.1 never has empty gold answers
        assert metrics.f1_score(pred, gold) == pytest.approx(official_v11_f1(pred, gold))


def test_squad_metrics_aggregate_like_the_official_v11_evaluation():
    rng = np.random.default_rng(0)
    gold = {f"q{i}": list(rng.choice(ANSWERS[:10], size=3)) for i in range(50)}
    gold = {k: [a for a in v if official_normalize_answer(a)] or ["Chopin"] for k, v in gold.items()}
    predictions = {f"q{i}": str(rng.choice(ANSWERS)) for i in range(45)}  # 5 questions left unanswered
    ours = metrics.squad_metrics(predictions, gold)
    reference = official_v11_evaluate(gold, predictions)
    assert ours["exact_match"] == pytest.approx(reference["exact_match"])
    assert ours["f1"] == pytest.approx(reference["f1"])
    assert ours["total"] == 50


def test_squad_v2_unanswerable_questions_score_only_the_empty_answer():
    gold = {"a": [], "b": [], "c": ["Paris"]}
    result = metrics.squad_metrics({"a": "", "b": "Paris", "c": "paris"}, gold)
    assert result["exact_match"] == pytest.approx(200 / 3)
    assert result["f1"] == pytest.approx(200 / 3)


# --------------------------------------------------------------------------- entities vs seqeval

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "S-ORG", "E-PER", "I-ORG", "B-ORG", "B", "I"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.sampled_from(TAGS), min_size=1, max_size=12), st.integers(0, 2**31)),
                min_size=1, max_size=6))
def test_entity_metrics_equal_seqeval_on_random_tag_sequences(data):
    rng = np.random.default_rng(len(data))
    true = [tags for tags, _ in data]
    # predictions: the gold sequence with some tags replaced, so there is partial agreement
    pred = [[t if rng.random() < 0.6 else TAGS[seed % len(TAGS)] for t in tags] for tags, seed in data]
    ours = metrics.entity_metrics(true, pred)
    with warnings.catch_warnings():  # seqeval warns on sentences without entities
        warnings.simplefilter("ignore")
        assert ours["precision"] == pytest.approx(seqeval_precision(true, pred))
        assert ours["recall"] == pytest.approx(seqeval_recall(true, pred))
        assert ours["f1"] == pytest.approx(seqeval_f1(true, pred))
        report = seqeval_report(true, pred, output_dict=True, zero_division=0)
    for entity_type, row in ours["per_type"].items():
        assert row["support"] == report[entity_type]["support"]
        assert row["f1"] == pytest.approx(report[entity_type]["f1-score"])


def test_entities_of_the_seed_sentence():
    tags = ["B-PER", "I-PER", "O", "B-ORG", "O", "B-LOC", "O"]  # Elon Musk founded Tesla in California .
    assert metrics.get_entities(tags) == [("PER", 0, 1), ("ORG", 3, 3), ("LOC", 5, 5)]
    assert metrics.get_entities(["S-PER", "B-LOC", "E-LOC"]) == [("PER", 0, 0), ("LOC", 1, 2)]


def test_entity_metrics_reject_misaligned_predictions():
    with pytest.raises(ValueError, match="2 predicted tags for 3 words"):
        metrics.entity_metrics([["O", "O", "B-PER"]], [["O", "O"]])


# --------------------------------------------------------------------------- classification vs scikit-learn


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_classification_metrics_equal_scikit_learn(pairs):
    labels = [a for a, _ in pairs]
    predictions = [b for _, b in pairs]
    ours = metrics.classification_metrics(predictions, labels)
    assert ours["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert ours["macro_f1"] == pytest.approx(f1_score(labels, predictions, average="macro", zero_division=0))
    classes = sorted(set(labels) | set(predictions))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predictions, labels=classes, zero_division=0)
    for i, cls in enumerate(classes):
        row = ours["per_class"][str(cls)]
        assert row["precision"] == pytest.approx(precision[i])
        assert row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == support[i]


def test_report_names_classes_and_lists_never_predicted_ones():
    report = metrics.classification_report([0, 0, 1], [0, 1, 1], {0: "neg", 1: "pos", 2: "neutral"})
    assert set(report) == {"neg", "pos", "neutral"}
    assert report["neutral"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["pos"]["recall"] == pytest.approx(0.5)


def test_multilabel_and_regression_metrics_equal_scikit_learn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=(40, 5))
    predictions = rng.integers(0, 2, size=(40, 5))
    ours = metrics.multilabel_metrics(predictions, labels)
    assert ours["micro_f1"] == pytest.approx(f1_score(labels, predictions, average="micro"))
    assert ours["subset_accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    y, p = rng.normal(size=30), rng.normal(size=30)
    reg = metrics.regression_metrics(p, y)
    assert reg["mse"] == pytest.approx(np.mean((p - y) ** 2))
    from scipy.stats import pearsonr

    assert reg["pearson"] == pytest.approx(pearsonr(p, y)[0])
