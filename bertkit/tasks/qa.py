"""Extractive question answering: SQuAD-shaped JSON -> windowed features -> answers cut from the context.

    examples = read_squad("dev-v1.1.json")                     # SQuAD v1.1 / v2.0 / KorQuAD
    train, evaluation = split_by_article(examples, eval_fraction=0.3)
    features = prepare_features(train, tokenizer)            # max_seq_length 384, doc_stride 128, query 64
    ...
    answers = postprocess(examples, eval_features, start_logits, end_logits)   # n-best 20, max length 30

A context longer than the window is cut into overlapping windows; `doc_stride` is the number of tokens
consecutive windows share (the tokenizer's `stride`, as HuggingFace's run_qa.py passes it). A training
answer becomes token start/end positions through the offsets; a window that does not hold the whole
answer points at [CLS] (position 0), which is also how v2.0's unanswerable questions are trained.
Answers are read back from the original context by character offsets — never by joining "##" pieces,
which is what broke the seed's Korean answer.
"""
from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bertkit.errors import UserError
from bertkit.files import open_text


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[dict] = field(default_factory=list)  # [{"text": ..., "answer_start": char index}]
    title: str = ""
    is_impossible: bool = False


def read_squad(path: str | Path) -> list[QAExample]:
    """All questions of a SQuAD v1.1 / v2.0 (or KorQuAD 1.0) JSON file, .xz/.gz allowed."""
    path = Path(path)
    with open_text(path) as f:
        text = f.read()
    if not text.strip():
        raise UserError(f"{path.name} is empty: it needs SQuAD JSON ({{'data': [{{'paragraphs': ...}}]}})")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path.name} is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict) or "data" not in data:
        raise UserError(f"{path.name} is not SQuAD-shaped: the top level needs a 'data' list of articles")
    examples = []
    for article_number, article in enumerate(data["data"]):
        title = article.get("title", f"article-{article_number}")
        for paragraph in article.get("paragraphs", []):
            context = paragraph["context"]
            for qa in paragraph.get("qas", []):
                answers = [{"text": a["text"], "answer_start": int(a["answer_start"])} for a in qa.get("answers", [])]
                impossible = bool(qa.get("is_impossible", False)) or not answers
                examples.append(QAExample(str(qa["id"]), qa["question"], context, answers, title, impossible))
    if not examples:
        raise UserError(f"{path.name} holds no questions")
    return examples


def read_task_file(path: str | Path, settings: dict[str, Any], require_labels: bool = True) -> list[QAExample]:
    """The questions of a SQuAD-shaped file (the registry's uniform reader signature)."""
    return read_squad(path)


def split_by_article(examples: Sequence[QAExample], eval_fraction: float = 0.3, seed: int = 42
                     ) -> tuple[list[QAExample], list[QAExample]]:
    """Train / eval split by article title, so no context is seen in both halves."""
    titles = sorted({e.title for e in examples})
    if len(titles) < 2:
        raise UserError("need at least 2 articles to split by article")
    random.Random(seed).shuffle(titles)
    n_eval = min(len(titles) - 1, max(1, round(len(titles) * eval_fraction)))
    eval_titles = set(titles[:n_eval])
    return [e for e in examples if e.title not in eval_titles], [e for e in examples if e.title in eval_titles]


def truncate_question(question: str, tokenizer: Any, max_query_length: int) -> str:
    """The question cut to its first `max_query_length` word pieces (by character offset, so the text
    stays the user's)."""
    question = question.lstrip()  # some SQuAD questions start with spaces that only waste the window
    if len(tokenizer.tokenize(question)) <= max_query_length:
        return question
    offsets = tokenizer(question, return_offsets_mapping=True)["offset_mapping"]
    pieces = [o for o in offsets if o[1] > o[0]]  # drop [CLS]/[SEP]
    return question[: pieces[max_query_length - 1][1]]


def prepare_features(
    examples: Sequence[QAExample],
    tokenizer: Any,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    with_positions: bool = True,
) -> list[dict[str, Any]]:
    """One feature per window: model inputs, `example_index`, `offset_mapping` (character spans of context
    tokens, None elsewhere) and, with_positions, `start_positions`/`end_positions` of the first answer."""
    features = []
    for index, example in enumerate(examples):
        question = truncate_question(example.question, tokenizer, max_query_length)
        encoded = tokenizer(question, example.context, truncation="only_second", max_length=max_seq_length,
                            stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        for window in range(len(encoded["input_ids"])):
            sequence_ids = encoded.sequence_ids(window)
            offsets = [tuple(o) if s == 1 else None for o, s in zip(encoded["offset_mapping"][window], sequence_ids)]
            feature = {k: encoded[k][window] for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded}
            feature["example_index"] = index
            feature["offset_mapping"] = offsets
            if with_positions:
                feature["start_positions"], feature["end_positions"] = answer_positions(example, offsets)
            features.append(feature)
    return features


def answer_positions(example: QAExample, offsets: Sequence[tuple[int, int] | None]) -> tuple[int, int]:
    """Token start/end of the first gold answer inside this window, or (0, 0) ([CLS]) when it is not."""
    if example.is_impossible or not example.answers:
        return 0, 0
    start_char = example.answers[0]["answer_start"]
    end_char = start_char + len(example.answers[0]["text"])
    context_tokens = [i for i, o in enumerate(offsets) if o is not None]
    if not context_tokens:
        return 0, 0
    first, last = context_tokens[0], context_tokens[-1]
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return 0, 0  # the answer is (partly) outside this window
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def postprocess(
    examples: Sequence[QAExample],
    features: Sequence[dict[str, Any]],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
    rank_by: str = "logits",
) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Answers for each example: (id -> best answer text, id -> n-best list).

    For every window, the n_best_size highest start and end logits are paired (end >= start, at most
    max_answer_length tokens, both inside the context); the text is context[start_char:end_char].
    Each candidate carries `score` = p(start) * p(end), the softmax over that window's context tokens
    (and [CLS], the null answer), as HuggingFace's QA pipeline reports it. rank_by="logits" ranks by
    start + end logit (the SQuAD scripts), "probability" by that score (the pipeline).
    With version_2_with_negative the empty answer wins when its score (by rank_by) beats the best span's
    by more than null_score_diff_threshold.
    """
    if rank_by not in ("logits", "probability"):
        raise UserError(f"rank_by must be 'logits' or 'probability', got {rank_by!r}")
    by_example: dict[int, list[int]] = defaultdict(list)
    for i, feature in enumerate(features):
        by_example[feature["example_index"]].append(i)
    answers: dict[str, str] = {}
    nbest: dict[str, list[dict]] = {}
    for index, example in enumerate(examples):
        candidates = []
        null = None
        for i in by_example.get(index, []):
            starts, ends = np.asarray(start_logits[i], dtype=np.float64), np.asarray(end_logits[i], dtype=np.float64)
            offsets = features[i]["offset_mapping"]
            allowed = np.array([o is not None for o in offsets[: len(starts)]] + [False] * (len(starts) - len(offsets)))
            allowed[0] = True  # [CLS] stands for "no answer" in the normalization
            log_p_start = np.full_like(starts, -np.inf)
            log_p_end = np.full_like(ends, -np.inf)
            log_p_start[allowed] = _log_softmax(starts[allowed])
            log_p_end[allowed] = _log_softmax(ends[allowed])
            null_logit = starts[0] + ends[0]
            if null is None or null_logit < null["logit"]:  # the most confident window's null score
                null = {"text": "", "logit": null_logit, "score": float(np.exp(log_p_start[0] + log_p_end[0])),
                        "start": 0, "end": 0}
            top_starts = np.argsort(starts)[::-1][:n_best_size]
            top_ends = np.argsort(ends)[::-1][:n_best_size]
            for s in top_starts:
                if s >= len(offsets) or offsets[s] is None:
                    continue
                for e in top_ends:
                    if e >= len(offsets) or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    start_char, end_char = offsets[s][0], offsets[e][1]
                    candidates.append({"text": example.context[start_char:end_char], "logit": starts[s] + ends[e],
                                       "score": float(np.exp(log_p_start[s] + log_p_end[e])),
                                       "start": int(start_char), "end": int(end_char)})
        key = "logit" if rank_by == "logits" else "score"
        candidates.sort(key=lambda c: c[key], reverse=True)
        candidates = candidates[:n_best_size]
        if version_2_with_negative and null is not None:
            candidates = sorted(candidates + [null], key=lambda c: c[key], reverse=True)[:n_best_size]
        if not candidates:  # nothing valid (e.g. an empty context): answer nothing
            candidates = [{"text": "", "logit": 0.0, "score": 0.0, "start": 0, "end": 0}]
        for c in candidates:
            c["logit"] = float(c["logit"])
        best = next((c for c in candidates if c["text"]), candidates[0])
        if version_2_with_negative and null is not None:
            if best["text"] == "" or null[key] - best[key] > null_score_diff_threshold:
                best = null
        answers[example.id] = best["text"]
        nbest[example.id] = candidates
    return answers, nbest


def gold_answers(examples: Sequence[QAExample]) -> dict[str, list[str]]:
    """id -> gold answer texts ([] for unanswerable), the input of metrics.squad_metrics."""
    return {e.id: [a["text"] for a in e.answers] for e in examples}
