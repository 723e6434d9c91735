"""A fine-tuned model over a whole file, one function per task (`bertkit predict` dispatches through
`bertkit.tasks.registry`'s `file_predictor`): `predict_<task>_file(model, tokenizer, source, output, settings,
batch_size, **options) -> rows`, the output's format following its extension.

    rows = predict_ner_file(model, tokenizer, Path("test.conll"), Path("tagged.conll"), settings, batch_size=64)
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.errors import UserError


def predict_classification(model: Any, tokenizer: Any, examples: list, max_length: int = 128,
                           batch_size: int = 64) -> list[dict[str, Any]]:
    """label, score and per-label probabilities for each example (softmax; sigmoid for multi-label;
    the raw value for regression)."""
    from bertkit.pipelines.text_classification import scores_from_logits
    from bertkit.tasks.evaluation import classify_logits

    logits, _ = classify_logits(model, tokenizer, examples, max_length, batch_size, with_labels=False)
    config = model.config
    scores = scores_from_logits(logits, config)
    rows = []
    for example, row in zip(examples, scores):
        if config.problem_type == "regression":
            rows.append({"text": example.text, "text_pair": example.text_pair, "label": float(row[0]), "score": float(row[0])})
            continue
        probabilities = {config.id2label[i]: round(float(p), 6) for i, p in enumerate(row)}
        if config.problem_type == "multi_label_classification":
            label = "|".join(config.id2label[i] for i in np.flatnonzero(row > 0.5))
        else:
            label = config.id2label[int(row.argmax())]
        rows.append({"text": example.text, "text_pair": example.text_pair, "label": label,
                     "score": round(float(row.max()), 6), "probabilities": probabilities})
    return rows


def _write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".csv"):
        flat = []
        for row in rows:
            flat_row = {k: v for k, v in row.items() if k != "probabilities" and not (k == "text_pair" and v is None)}
            flat_row.update({f"p_{label}": p for label, p in row.get("probabilities", {}).items()})
            flat.append(flat_row)
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(flat[0]), delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(flat)
    else:
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False) + "\n")


def _is_conll(path: Path) -> bool:
    return path.suffix.lower() not in (".txt", ".jsonl", ".json") or _looks_like_conll(path)


def _looks_like_conll(path: Path) -> bool:
    # a .txt whose lines hold one token each (with or without tag columns), with blank lines between sentences
    from bertkit.files import open_text

    with open_text(path) as f:
        head = [line for _, line in zip(range(50), f)]
    return any(not line.strip() for line in head) and all(len(line.split()) <= 6 for line in head)


def predict_classification_file(model: Any, tokenizer: Any, source: Path, output: Path, settings: dict[str, Any],
                                batch_size: int = 64, **options: Any) -> list:
    """Each row of a classification file + label, score and the per-label probabilities (.tsv / .csv columns, or
    JSONL with a "probabilities" dict)."""
    from bertkit.tasks.evaluation import load_examples

    examples = load_examples("classify", source, settings, require_labels=False)
    rows = predict_classification(model, tokenizer, examples, settings.get("max_length", 128), batch_size)
    _write_rows(rows, output)
    return rows


def predict_ner_file(model: Any, tokenizer: Any, source: Path, output: Path, settings: dict[str, Any], batch_size: int = 64,
                     aggregation_strategy: str = "simple", **options: Any) -> list:
    """CoNLL words -> the same lines with the predicted tag appended; one text per line (or JSONL "text") -> its
    entities, grouped by `aggregation_strategy`."""
    if _is_conll(source):  # word per line -> the same lines + predicted tag
        from bertkit.data.collators import PaddingCollator
        from bertkit.model.inference import predict
        from bertkit.tasks.ner import NerSentence, encode_sentences, read_conll, word_predictions

        sentences = read_conll(source, settings.get("token_column", 0), settings.get("tag_column", -1))
        words_only = [NerSentence(s.words) for s in sentences]
        features = encode_sentences(words_only, tokenizer, None, settings.get("max_length", 128))
        out = predict(model, features, PaddingCollator(tokenizer.pad_token_id), batch_size)
        tagged = [word_predictions(logits, f["word_ids"], model.config.id2label, len(s.words))
                  for logits, f, s in zip(out["logits"], features, sentences)]
        with output.open("w", encoding="utf-8") as f:
            for sentence, tags in zip(sentences, tagged):
                for i, (word, tag) in enumerate(zip(sentence.words, tags)):
                    gold = f" {sentence.tags[i]}" if sentence.tags else ""
                    f.write(f"{word}{gold} {tag}\n")
                f.write("\n")
        return tagged
    from bertkit.files import read_text
    from bertkit.pipelines.token_classification import TokenClassificationPipeline

    if source.suffix.lower() in (".jsonl", ".json"):
        from bertkit.tasks.classification import read_table

        texts = [str(row.get("text", "")) for row in read_table(source)]
    else:
        texts = [line.strip() for line in read_text(source, "--input").splitlines() if line.strip()]
    pipe = TokenClassificationPipeline(model, tokenizer=tokenizer, batch_size=batch_size)
    entities = pipe(texts, aggregation_strategy=aggregation_strategy)
    rows = [{"text": text, "entities": found} for text, found in zip(texts, entities)]
    with output.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows


def predict_qa_file(model: Any, tokenizer: Any, source: Path, output: Path, settings: dict[str, Any], batch_size: int = 64,
                    top_k: int = 1, **options: Any) -> list:
    """SQuAD JSON -> {id: answer} + answers.nbest.json; {"question", "context"} per JSONL line -> the answer(s)."""
    from bertkit.data.collators import PaddingCollator
    from bertkit.model.inference import predict, task_precision
    from bertkit.tasks.qa import postprocess, prepare_features, read_squad

    if source.suffix.lower() == ".jsonl":
        from bertkit.pipelines.question_answering import QuestionAnsweringPipeline
        from bertkit.tasks.classification import read_table

        rows = read_table(source)
        missing = [i + 1 for i, r in enumerate(rows) if "question" not in r or "context" not in r]
        if missing:
            raise UserError(f"{source.name}: rows {missing[:5]} lack 'question' or 'context'; each line needs both")
        pipe = QuestionAnsweringPipeline(model, tokenizer=tokenizer, batch_size=batch_size)
        answers = pipe([{"question": r["question"], "context": r["context"]} for r in rows], top_k=top_k,
                       max_answer_len=settings.get("max_answer_length", 30),
                       max_seq_len=settings.get("max_seq_length", 384), doc_stride=settings.get("doc_stride", 128))
        with output.open("w", encoding="utf-8") as f:
            for row, answer in zip(rows, answers):
                f.write(json.dumps({"question": row["question"], "answers" if top_k > 1 else "answer": answer},
                                   ensure_ascii=False) + "\n")
        return answers
    examples = read_squad(source)
    keys = ("max_seq_length", "doc_stride", "max_query_length")
    features = prepare_features(examples, tokenizer, with_positions=False, **{k: settings[k] for k in keys if k in settings})
    out = predict(model, features, PaddingCollator(tokenizer.pad_token_id), batch_size,
                  precision=task_precision("question-answering"), progress=True)
    answers, nbest = postprocess(examples, features, out["start_logits"], out["end_logits"],
                                 settings.get("n_best_size", 20), settings.get("max_answer_length", 30),
                                 settings.get("version_2_with_negative", False))
    output.write_text(json.dumps(answers, ensure_ascii=False, indent=1))
    output.with_suffix(".nbest.json").write_text(json.dumps(nbest, ensure_ascii=False))
    return list(answers)
