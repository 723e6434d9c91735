"""Make the real-data slices that `bertkit demo` ships in bertkit/samples/slices/ (issue 22), from ../shared/data.

    .venv/bin/python benchmarks/make_demo_slices.py ../shared/data bertkit/samples/slices

Only data whose licence allows redistribution (see bertkit/samples/PROVENANCE.md):
  * NSMC Korean movie reviews (ko-sentiment, CC0 1.0): 2,000 training reviews from train.tsv and 300 held-out
    reviews from dev.tsv (other movies), each balanced 50/50, reviews of 3+ words;
  * KLUE-NER v1.1 (ner-klue, CC BY-SA 4.0): 1,000 training sentences from the first 5,000 of its train set and
    150 held-out sentences from its dev set, each of at most 80 characters and naming at least one entity, kept in
    KLUE's own format (a `## id<TAB>marked sentence` line, then one `character<TAB>tag` line per character);
  * SQuAD v1.1 (qa-squad-v1.1, CC BY-SA 4.0): its articles split in two (seed 0, 30% held out), 1,500 training
    questions and 150 questions of the held-out articles, each context cut to the answer's sentence and one
    sentence either side (at most 60 words), as the demo has always cut them.
Every draw is seeded (SEED below) and each file lists its rows in a seeded random order, so the first N rows of a
file are a seeded sample of N. Files are xz-compressed (preset 9); the script prints one JSON line per file.
"""
from __future__ import annotations

import csv
import io
import json
import lzma
import random
import sys
from pathlib import Path

from bertkit.demo.slices import answer_window
from bertkit.tasks.qa import read_squad, split_by_article

SEED = 22
SIZES = {"sentiment": (2000, 300), "ner": (1000, 150), "qa": (1500, 150)}


def write_xz(path: Path, text: str) -> None:
    path.write_bytes(lzma.compress(text.encode("utf-8"), preset=9))
    print(json.dumps({"file": path.name, "bytes": path.stat().st_size, "raw_bytes": len(text.encode("utf-8"))}))


def balanced(rows: list[tuple[str, str]], n: int, rng: random.Random) -> list[tuple[str, str]]:
    by_label = {label: [r for r in rows if r[1] == label] for label in ("0", "1")}
    picked = [r for label in ("0", "1") for r in rng.sample(by_label[label], n // 2)]
    rng.shuffle(picked)
    return picked


def sentiment(data: Path, out: Path, rng: random.Random) -> None:
    def reviews(name: str) -> list[tuple[str, str]]:
        with open(data / "ko-sentiment" / name, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        seen, kept = set(), []
        for row in rows:
            text = " ".join(row["document"].split())
            if len(text.split()) >= 3 and text not in seen:
                seen.add(text)
                kept.append((text, row["label"]))
        return kept

    train, held_out = SIZES["sentiment"]
    for name, source, n in (("nsmc_train.tsv.xz", "train.tsv", train), ("nsmc_heldout.tsv.xz", "dev.tsv", held_out)):
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(balanced(reviews(source), n, rng))
        write_xz(out / name, buffer.getvalue())


def ner(data: Path, out: Path, rng: random.Random) -> None:
    def sentences(name: str) -> list[str]:
        text = lzma.open(data / "ner-klue" / name, "rt", encoding="utf-8").read()
        kept = []
        for block in text.split("\n\n"):
            lines = [line for line in block.split("\n") if line]
            head = [line for line in lines if line.startswith("## klue-ner")]
            chars = [line for line in lines if not line.startswith("##")]
            if len(head) == 1 and len(chars) <= 80 and any(line.split("\t")[1] != "O" for line in chars):
                kept.append("\n".join(head + chars))
        return kept

    train, held_out = SIZES["ner"]
    for name, source, n in (("klue_ner_train.tsv.xz", "klue-ner-v1.1_train.first5000.tsv.xz", train),
                            ("klue_ner_heldout.tsv.xz", "klue-ner-v1.1_dev.tsv.xz", held_out)):
        write_xz(out / name, "\n\n".join(rng.sample(sentences(source), n)) + "\n")


def qa(data: Path, out: Path, rng: random.Random) -> None:
    train_articles, held_out_articles = split_by_article(
        read_squad(data / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz"), eval_fraction=0.3, seed=0)
    train, held_out = SIZES["qa"]
    for name, examples, n in (("squad_train.json.xz", train_articles, train),
                              ("squad_heldout.json.xz", held_out_articles, held_out)):
        windows = (answer_window(e) for e in rng.sample(examples, len(examples)))
        picked = [w for w, _ in zip((w for w in windows if w and len(w["context"].split()) <= 60), range(n))]
        assert len(picked) == n, (name, len(picked))
        articles: dict[str, list] = {}
        for w in picked:  # one paragraph per question, articles in first-seen order (the seeded order)
            articles.setdefault(w["title"], []).append(
                {"context": w["context"], "qas": [{"id": w["id"], "question": w["question"], "answers": w["answers"]}]})
        squad = {"version": "1.1", "data": [{"title": t, "paragraphs": p} for t, p in articles.items()]}
        write_xz(out / name, json.dumps(squad, ensure_ascii=False, separators=(",", ":")) + "\n")


def main(data: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for make in (sentiment, ner, qa):
        make(data, out, random.Random(SEED))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: make_demo_slices.py SHARED_DATA_FOLDER OUTPUT_FOLDER")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
