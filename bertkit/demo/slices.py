"""Seeded slices of real data, written as task files under --output/data: from ../shared/data beside the checkout
(SST-2, CoNLL-2003, SQuAD: `SLICES`) or, without it, from the slices shipped in the package (NSMC, KLUE-NER, SQuAD:
`SHIPPED_SLICES`, made by benchmarks/make_demo_slices.py; licences in bertkit/samples/PROVENANCE.md)."""
from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path
from typing import Any

from bertkit.demo.plan import SHIPPED, TASKS, TaskSize

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"])")


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(rows)


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
        write_tsv(path, part)
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


def write_shipped_sentiment(folder: Path, size: TaskSize, seed: int) -> tuple[Path, Path, str]:
    """NSMC (Korean movie reviews, CC0): seeded samples of the shipped training and held-out reviews."""
    from bertkit.files import open_text

    rng = random.Random(seed)

    def reviews(name: str, n: int) -> list[tuple[str, str]]:
        with open_text(SHIPPED / name) as f:
            rows = [(r["text"], r["label"]) for r in csv.DictReader(f, delimiter="\t")]
        return rng.sample(rows, min(n, len(rows)))

    train, dev = reviews("nsmc_train.tsv.xz", size.train), reviews("nsmc_heldout.tsv.xz", size.eval)
    paths = folder / "sentiment_train.tsv", folder / "sentiment_dev.tsv"
    for path, part in zip(paths, (train, dev)):
        write_tsv(path, part)
    return *paths, (f"{len(train)} NSMC training reviews and {len(dev)} held-out ones (Korean movie reviews of other "
                    f"movies; seeded samples) from the slices shipped in {SHIPPED}")


def klue_sentences(path: Path) -> list[list[str]]:
    """The sentences of a KLUE-NER file, each as its lines: the `## id<TAB>marked sentence` comment, then one
    `character<TAB>tag` line per character, spaces left out (a space has no word piece, so it could not carry the
    I- tag of an entity that spans it)."""
    from bertkit.files import open_text

    with open_text(path) as f:
        blocks = f.read().split("\n\n")
    return [[line for line in block.split("\n") if line and not line.startswith(" \t")]
            for block in blocks if block.strip()]


def write_shipped_ner(folder: Path, size: TaskSize, seed: int) -> tuple[Path, Path, str]:
    """KLUE-NER v1.1 (Korean, CC BY-SA 4.0): seeded samples of the shipped sentences, one character per line."""
    rng = random.Random(seed)
    parts = [rng.sample(sentences, min(n, len(sentences))) for sentences, n in (
        (klue_sentences(SHIPPED / "klue_ner_train.tsv.xz"), size.train),
        (klue_sentences(SHIPPED / "klue_ner_heldout.tsv.xz"), size.eval))]
    paths = folder / "ner_train.conll", folder / "ner_dev.conll"
    for path, part in zip(paths, parts):
        path.write_text("\n\n".join("\n".join(lines) for lines in part) + "\n", encoding="utf-8")
    return *paths, (f"{len(parts[0])} KLUE-NER training sentences and {len(parts[1])} from its dev set (Korean; one "
                    f"character per line, tags PS person, LC location, OG organization, DT date, TI time, QT "
                    f"quantity; seeded samples) from the slices shipped in {SHIPPED}")


def write_shipped_qa(folder: Path, size: TaskSize, seed: int) -> tuple[Path, Path, str]:
    """SQuAD v1.1 (CC BY-SA 4.0): seeded samples of the shipped questions; the held-out ones come from other
    articles (the contexts are already cut to the answer's sentence and its neighbours)."""
    from bertkit.files import open_text

    rng = random.Random(seed)
    parts = []
    for name, n in (("squad_train.json.xz", size.train), ("squad_heldout.json.xz", size.eval)):
        with open_text(SHIPPED / name) as f:
            articles = json.load(f)["data"]
        questions = [(a["title"], p) for a in articles for p in a["paragraphs"]]  # one question per paragraph
        picked: dict[str, list] = {}
        for title, paragraph in rng.sample(questions, min(n, len(questions))):
            picked.setdefault(title, []).append(paragraph)
        parts.append(({"version": "1.1", "data": [{"title": t, "paragraphs": p} for t, p in picked.items()]},
                      sum(len(p) for p in picked.values())))
    paths = folder / "qa_train.json", folder / "qa_dev.json"
    for path, (squad, _) in zip(paths, parts):
        path.write_text(json.dumps(squad, ensure_ascii=False, indent=1), encoding="utf-8")
    return *paths, (f"{parts[0][1]} SQuAD v1.1 training questions and {parts[1][1]} held-out ones (other articles; "
                    f"seeded samples) from the slices shipped in {SHIPPED}, each context cut to the answer's sentence "
                    "and the sentences either side")


SHIPPED_SLICES = {"sentiment": write_shipped_sentiment, "ner": write_shipped_ner, "qa": write_shipped_qa}
BUNDLED = {"sentiment": (TASKS / "sentiment_train.tsv", TASKS / "sentiment_dev.tsv",
                         "the bundled sample: 44 training and 16 evaluation sentences written by hand"),
           "ner": (TASKS / "ner_train.conll", TASKS / "ner_dev.conll",
                   "the bundled sample: 18 training and 6 evaluation sentences written by hand"),
           "qa": (TASKS / "qa_train.json", TASKS / "qa_dev.json",
                  "the bundled sample: 14 training and 8 evaluation questions written by hand")}
