"""bertkit's fine-tuning loop vs HuggingFace's Trainer: same checkpoint, data and hyper-parameters, one
process, ONE JSON line with both scores, both training wall times and the ratio.

    python benchmarks/hf_trainer_compare.py                                    # full SST-2 train -> dev
    python benchmarks/hf_trainer_compare.py --train-examples 400 --device cpu  # a CPU subset

Both start from all-MiniLM-L6-v2 with a fresh 2-label head, train on the same seeded SST-2 subset
(dynamic padding, max_length 64), AdamW with no decay on bias/LayerNorm, linear warmup + decay, gradient
clipping, no evaluation during training; then both are scored on the same dev set. The heads start from
different random draws (each library seeds its own init), so scores differ by a little noise.
Needs `transformers` and `accelerate` (test/benchmark-only dependencies).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "en-sentiment-sst2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-examples", type=int, help="seeded subset of the 67,349 training rows")
    parser.add_argument("--eval-examples", type=int, help="seeded subset of the 872 dev rows")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import numpy as np
    import torch

    from benchmarks.finetune_real import minilm
    from bertkit.tasks import finetune as recipes
    from bertkit.tasks.classification import build_label_maps, read_classification_file
    from bertkit.tasks.train import FinetuneConfig

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    work = Path(tempfile.mkdtemp(prefix="bertkit-vs-hf-"))
    train = recipes._subset(read_classification_file(DATA / "train.tsv.xz"), args.train_examples, args.seed)
    dev = recipes._subset(read_classification_file(DATA / "dev.tsv"), args.eval_examples, args.seed)
    label2id, id2label = build_label_maps(e.label for e in train)

    # ---- bertkit: the same recipe `bertkit finetune classify` runs (evaluation only at the end)
    from bertkit.model import BertForSequenceClassification
    from bertkit.tasks.classification import encode_examples
    from bertkit.tasks.evaluate import evaluate_classification
    from bertkit.tasks.train import finetune
    from bertkit.tokenizer import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(minilm())
    model = BertForSequenceClassification.from_pretrained(minilm(), id2label=id2label, label2id=label2id)
    features = encode_examples(train, tokenizer, label2id, args.max_length)
    config = FinetuneConfig(output_dir=str(work / "bertkit"), epochs=args.epochs, batch_size=args.batch_size,
                            learning_rate=args.lr, warmup_ratio=args.warmup_ratio, weight_decay=args.weight_decay,
                            max_grad_norm=1.0, log_every=10, device=device, seed=args.seed, bf16=None)
    result = finetune(model, features, config, tokenizer=tokenizer)
    ours = evaluate_classification(model, tokenizer, dev, args.max_length, 64)
    ours_time = result["train_runtime"]
    del model

    # ---- HuggingFace Trainer with the same numbers
    from transformers import (AutoModelForSequenceClassification, BertTokenizerFast, DataCollatorWithPadding, Trainer,
                              TrainingArguments, set_seed)

    set_seed(args.seed)
    hf_tokenizer = BertTokenizerFast.from_pretrained(minilm())
    hf_model = AutoModelForSequenceClassification.from_pretrained(minilm(), id2label=id2label, label2id=label2id)

    class Rows(torch.utils.data.Dataset):
        def __init__(self, examples):
            encoded = hf_tokenizer([e.text for e in examples], truncation=True, max_length=args.max_length)
            self.rows = [{**{k: encoded[k][i] for k in encoded}, "labels": label2id[e.label]} for i, e in enumerate(examples)]

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            return self.rows[i]

    steps = int(np.ceil(len(train) / args.batch_size) * args.epochs)
    training_args = TrainingArguments(
        output_dir=str(work / "hf"), num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=64, learning_rate=args.lr, warmup_steps=int(np.ceil(args.warmup_ratio * steps)),
        weight_decay=args.weight_decay, max_grad_norm=1.0, lr_scheduler_type="linear", logging_steps=10,
        eval_strategy="no", save_strategy="no", report_to=[], seed=args.seed, use_cpu=device == "cpu",
        bf16=device.startswith("cuda") and torch.cuda.is_bf16_supported(), dataloader_num_workers=0,
    )
    trainer = Trainer(model=hf_model, args=training_args, train_dataset=Rows(train),
                      data_collator=DataCollatorWithPadding(hf_tokenizer))
    start = time.perf_counter()
    trainer.train()
    hf_time = time.perf_counter() - start
    prediction = trainer.predict(Rows(dev))
    hf_accuracy = float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())

    print(json.dumps({
        "benchmark": "hf_trainer_compare", "task": "sst2", "model": "all-MiniLM-L6-v2", "device": device,
        "cpus": os.cpu_count(), "train_examples": len(train), "eval_examples": len(dev), "epochs": args.epochs,
        "batch_size": args.batch_size, "learning_rate": args.lr, "max_length": args.max_length, "steps": steps,
        "bertkit": {"accuracy": round(ours["accuracy"], 4), "macro_f1": round(ours["macro_f1"], 4),
                    "train_s": round(ours_time, 1)},
        "hf_trainer": {"accuracy": round(hf_accuracy, 4), "train_s": round(hf_time, 1)},
        "train_time_ratio_bertkit_over_hf": round(ours_time / hf_time, 3),
    }))


if __name__ == "__main__":
    main()
