"""`bertkit evaluate`: a fine-tuned model on a labelled file, with the field's metrics.

    bertkit evaluate --model runs/sst2 --data dev.tsv
    bertkit evaluate --model runs/conll --data valid.txt            # entity P / R / F1 (seqeval's)
    bertkit evaluate --model runs/squad --data dev-v1.1.json        # official EM / F1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bertkit.tasks import registry
from bertkit.tasks.evaluation import evaluate_file, format_report, load_examples, load_finetuned


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="folder written by `bertkit finetune`")
    parser.add_argument("--data", required=True, help="labelled file: CSV/TSV/JSONL (classify), CoNLL/JSONL (ner), SQuAD JSON (qa)")
    parser.add_argument("--task", choices=registry.fine_tunable_tasks(), help="default: read from the model folder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1")
    parser.add_argument("--output", help="also write the metrics (and predictions) to this JSON file")


def run(args: argparse.Namespace) -> int:
    from bertkit.files import require_file, require_folder, require_output_file

    require_folder(args.model, "--model")
    require_file(args.data, "--data")
    if args.output:
        require_output_file(args.output, "--output")
    task, settings, model, tokenizer = load_finetuned(args.model, args.task, args.device)
    examples = load_examples(task, args.data, settings)
    result = evaluate_file(model, tokenizer, task, examples, settings, args.batch_size)
    print(format_report(task, result))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1, ensure_ascii=False))
        print(f"metrics written to {args.output}")
    return 0
