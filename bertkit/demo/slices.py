"""Seeded slices of the real data (SST-2, CoNLL-2003, SQuAD), written as task files under --output/data."""
from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path
from typing import Any

from bertkit.demo.plan import TASKS, TaskSize

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"])")


def write_sentiment_slice(data: Path, folder: Path, size: TaskSize, seed: int) -> tuple[Path, Path, str]:
    """SST-2: training sentences of 6+ words (its train file also holds short phrases) and dev sentences."""
    from bertkit.files import open_text

    rng = random.Random(seed)
    with open_text(data / "en-sentiment-sst2" / "train.tsv.xz") as f:
        next(f)  # the header (its column names were changed by its source)
        rows = [line.rstrip("\n").split("\t") for line in f]
    train = rng.sample([(t.strip(), y) for t, y in rows if len(t.split()) >= 6], size.train)
    with open_text(data / "en-sentiment-sst2" / "dev.tsv") as f:
        next(f)
        dev = [(t.strip(), y) for t, y in (line.rstrip("\n").split("\t") for line in f)]
    dev = rng.sample(dev, min(size.eval, len(dev)))
    paths = folder / "sentiment_train.tsv", folder / "sentiment_dev.tsv"
    for path, part in zip(paths, (train, dev)):
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows(part)
    return *paths, (f"{len(train)} SST-2 training sentences of 6+ words and {len(dev)} SST-2 dev sentences, seeded "
                    f"samples from {data / 'en-sentiment-sst2'}")


def write_ner_slice(data: Path, folder: Path, size: TaskSize, seed: int) -> tuple[Path, Path, str]:
    """CoNLL-2003: sentences of 5-40 words that name at least one entity, from train and from valid."""
    from bertkit.tasks.ner import read_conll

    rng = random.Random(seed)
    keep = lambda s: 5 <= len(s.words) <= 40 and any(t != "O" for t in s.tags)
    train = rng.sample([s for s in read_conll(data / "ner-conll2003" / "train.txt.xz") if keep(s)], size.train)
    dev = rng.sample([s for s in read_conll(data / "ner-conll2003" / "valid.txt") if keep(s)], size.eval)
    paths = folder / "ner_train.conll", folder / "ner_dev.conll"
    for path, part in zip(paths, (train, dev)):
        path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(s.words, s.tags)) for s in part) + "\n",
                        encoding="utf-8")
    return *paths, (f"{len(train)} CoNLL-2003 training sentences and {len(dev)} validation sentences (5-40 words, "
                    f"at least one entity; seeded samples) from {data / 'ner-conll2003'}")


def answer_window(example: Any, radius: int = 1) -> dict[str, Any] | None:
    """The question with its context cut to the answer's sentence and `radius` sentences either side (answer
    offsets moved to match; answers that leave the window dropped), or None when none is left."""
    context, bounds, start = example.context, [], 0
    for match in SENTENCE_END.finditer(context):
        bounds.append((start, match.start()))
        start = match.end()
    bounds.append((start, len(context)))
    first = example.answers[0]["answer_start"]
    index = next(i for i, (_, end) in enumerate(bounds) if first <= end)
    low, high = bounds[max(0, index - radius)][0], bounds[min(len(bounds) - 1, index + radius)][1]
    answers = [{"text": a["text"], "answer_start": a["answer_start"] - low} for a in example.answers
               if low <= a["answer_start"] and a["answer_start"] + len(a["text"]) <= high]
    if not answers:
        return None
    return {"id": example.id, "question": example.question, "context": context[low:high], "answers": answers,
            "title": example.title}


def write_qa_slice(data: Path, folder: Path, size: TaskSize, seed: int) -> tuple[Path, Path, str]:
    """SQuAD v1.1 questions, split by article (no context in both halves), each context cut to the answer's
    sentence and its neighbours (at most 60 words) so that short windows hold it."""
    from bertkit.tasks.qa import read_squad, split_by_article

    rng = random.Random(seed)
    train, dev = split_by_article(read_squad(data / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz"),
                                  eval_fraction=0.3, seed=seed)

    def windows(examples: list, n: int) -> list[dict]:
        cut = (answer_window(e) for e in rng.sample(examples, len(examples)))
        return [w for w, _ in zip((w for w in cut if w and len(w["context"].split()) <= 60), range(n))]

    parts = windows(train, size.train), windows(dev, size.eval)
    paths = folder / "qa_train.json", folder / "qa_dev.json"
    for path, part in zip(paths, parts):
        articles: dict[str, list] = {}
        for w in part:
            articles.setdefault(w["title"], []).append(
                {"context": w["context"], "qas": [{"id": w["id"], "question": w["question"], "answers": w["answers"]}]})
        squad = {"version": "1.1", "data": [{"title": t, "paragraphs": p} for t, p in articles.items()]}
        path.write_text(json.dumps(squad, ensure_ascii=False, indent=1), encoding="utf-8")
    return *paths, (f"{len(parts[0])} SQuAD v1.1 training questions and {len(parts[1])} held-out ones (other "
                    f"articles; seeded samples) from {data / 'qa-squad-v1.1'}, each context cut to the answer's "
                    "sentence and the sentences either side")


SLICES = {"sentiment": write_sentiment_slice, "ner": write_ner_slice, "qa": write_qa_slice}
BUNDLED = {"sentiment": (TASKS / "sentiment_train.tsv", TASKS / "sentiment_dev.tsv",
                         "the bundled sample: 44 training and 16 evaluation SST-2 sentences"),
           "ner": (TASKS / "ner_train.conll", TASKS / "ner_dev.conll",
                   "the bundled sample: 18 training and 6 evaluation sentences written by hand"),
           "qa": (TASKS / "qa_train.json", TASKS / "qa_dev.json",
                  "the bundled sample: 14 training and 8 evaluation questions written by hand")}
