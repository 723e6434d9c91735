"""Does the bf16 default keep the answers? Fine-tunes MiniLM briefly on SST-2, CoNLL-2003 and SQuAD (bertkit's
Trainer at its defaults), then predicts the held-out sets twice, in fp32 and in the default precision (bf16 where
the CPU has it), and prints one JSON line per task: the share of predictions that agree (labels; word tags; answer
strings) and both scores.

    python benchmarks/bench_precision.py                      # all three, small sizes (~3 minutes on 2 cores)
    python benchmarks/bench_precision.py --task sst2 --train 2000
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
SIZES = {"sst2": (2000, 872), "conll": (1000, 1000), "squad": (800, 300)}


def both_precisions(run):
    """run() under BERTKIT_PRECISION=fp32, then under the default ("auto")."""
    results = []
    for precision in ("fp32", "auto"):
        os.environ["BERTKIT_PRECISION"] = precision
        results.append(run())
    os.environ.pop("BERTKIT_PRECISION", None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=[*SIZES, "all"], default="all")
    parser.add_argument("--train", type=int, help="training examples (default: the task's small size)")
    args = parser.parse_args()
    os.environ.pop("BERTKIT_PRECISION", None)

    import numpy as np
    import torch

    from bertkit import BertTokenizer
    from bertkit.model.inference import cpu_bf16_instructions, resolve_precision
    from bertkit.tasks import evaluation as ev
    from bertkit.train.recipes import finetune_classifier, finetune_ner, finetune_qa, recipe_arguments

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_trainer import minilm

    default = resolve_precision(None, torch.device("cpu"))
    for task in SIZES if args.task == "all" else [args.task]:
        n_train, n_eval = args.train or SIZES[task][0], SIZES[task][1]
        work = Path(tempfile.mkdtemp(prefix=f"bertkit-precision-{task}-"))
        training = recipe_arguments(output_dir=str(work), num_train_epochs=1, learning_rate=1e-4, eval_strategy="no",
                                    disable_tqdm=True, seed=42)
        # the recipes take files: the slices are written as the commands read them
        result = run_task(task, n_train, n_eval, work, training, ev, np, BertTokenizer, minilm(),
                          finetune_classifier, finetune_ner, finetune_qa)
        print(json.dumps({"benchmark": "bench_precision", "task": task, "default_precision": default,
                          "cpu_bf16": list(cpu_bf16_instructions()), **result}), flush=True)


def run_task(task, n_train, n_eval, work, training, ev, np, BertTokenizer, encoder, finetune_classifier,
             finetune_ner, finetune_qa) -> dict:
    import csv

    from bertkit import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoModelForTokenClassification

    rng = random.Random(0)
    if task == "sst2":
        from bertkit.tasks.classification import read_classification_file

        train = rng.sample(read_classification_file(DATA / "en-sentiment-sst2" / "train.tsv.xz"), n_train)
        dev = read_classification_file(DATA / "en-sentiment-sst2" / "dev.tsv")[:n_eval]
        path = work / "train.tsv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, delimiter="\t")
            writer.writerow(["text", "label"])
            writer.writerows((e.text, e.label) for e in train)
        finetune_classifier(model_dir=str(encoder), train_file=str(path), eval_file=None, args=training,
                                max_length=64)
        model = AutoModelForSequenceClassification.from_pretrained(work)
        tokenizer = BertTokenizer.from_pretrained(work)
        runs = both_precisions(lambda: ev.classify_logits(model, tokenizer, dev, 64)[0].argmax(-1))
        scores = [float((r == np.array([model.config.label2id[e.label] for e in dev])).mean()) for r in runs]
        agree = float((runs[0] == runs[1]).mean())
        return {"examples": len(dev), "agreement": round(agree, 4), "accuracy_fp32": round(scores[0], 4),
                "accuracy_default": round(scores[1], 4)}
    if task == "conll":
        from bertkit.tasks.ner import read_conll

        train = rng.sample(read_conll(DATA / "ner-conll2003" / "train.txt.xz"), n_train)
        dev = read_conll(DATA / "ner-conll2003" / "valid.txt")[:n_eval]
        path = work / "train.conll"
        path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(s.words, s.tags)) for s in train) + "\n")
        finetune_ner(model_dir=str(encoder), train_file=str(path), eval_file=None, args=training, max_length=128)
        model = AutoModelForTokenClassification.from_pretrained(work)
        tokenizer = BertTokenizer.from_pretrained(work)
        runs = both_precisions(lambda: ev.evaluate_ner(model, tokenizer, dev, 128))
        tags = [[t for s in r["predictions"] for t in s] for r in runs]
        agree = float(np.mean([a == b for a, b in zip(*tags)]))
        return {"words": len(tags[0]), "agreement": round(agree, 4), "f1_fp32": round(runs[0]["f1"], 4),
                "f1_default": round(runs[1]["f1"], 4)}
    from bertkit.tasks.qa import read_squad, split_by_article

    examples = read_squad(DATA / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz")
    train, dev = split_by_article(examples, eval_fraction=0.3, seed=0)
    train, dev = rng.sample(train, n_train), rng.sample(dev, n_eval)
    articles: dict = {}
    for e in train:
        articles.setdefault(e.title, []).append({"context": e.context, "qas": [
            {"id": e.id, "question": e.question, "answers": e.answers}]})
    path = work / "train.json"
    path.write_text(json.dumps({"data": [{"title": t, "paragraphs": p} for t, p in articles.items()]}))
    finetune_qa(model_dir=str(encoder), train_file=str(path), eval_file=None, args=training, max_seq_length=256,
                doc_stride=128)
    model = AutoModelForQuestionAnswering.from_pretrained(work)
    tokenizer = BertTokenizer.from_pretrained(work)
    runs = both_precisions(lambda: ev.evaluate_qa(model, tokenizer, dev, max_seq_length=256, doc_stride=128))
    ids = list(runs[0]["predictions"])
    agree = float(np.mean([runs[0]["predictions"][i] == runs[1]["predictions"][i] for i in ids]))
    return {"questions": len(ids), "agreement": round(agree, 4), "f1_fp32": round(runs[0]["f1"], 3),
            "f1_default": round(runs[1]["f1"], 3)}


if __name__ == "__main__":
    main()
