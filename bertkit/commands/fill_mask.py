"""`bertkit fill-mask --model DIR "Paris is the [MASK] of France."`: the likeliest words for each [MASK]
(`bertkit.pipelines.mask_filling`).
"""
from __future__ import annotations

import argparse
import json

from bertkit.commands.options import read_texts
from bertkit.pipelines.base import load_trained_head
from bertkit.pipelines.mask_filling import FillMaskPipeline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True, help="model folder (HuggingFace layout, with an MLM head and vocab.txt)")
    parser.add_argument("text", nargs="*", help="text(s) with [MASK]; or use --file")
    parser.add_argument("--file", help="read one text per line from this file")
    parser.add_argument("--top-k", type=int, default=5, help="predictions per mask (default 5)")
    parser.add_argument("--targets", nargs="+", help="score only these words")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")


def run(args: argparse.Namespace) -> int:
    from bertkit.files import require_folder

    require_folder(args.model, "--model")  # a file or a missing path, said before anything loads
    texts = read_texts(args.text, args.file)
    unmasker = FillMaskPipeline(load_trained_head(args.model, "fill-mask"), tokenizer=args.model, device=args.device)
    results = unmasker(texts, top_k=args.top_k, targets=args.targets)  # batched forward passes
    if len(texts) == 1:  # the pipeline unwraps a list of one text (HuggingFace's habit)
        results = [results]
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], ensure_ascii=False, indent=2))
        return 0
    for text, result in zip(texts, results):
        print(text)
        per_mask = result if isinstance(result[0], list) else [result]
        for index, candidates in enumerate(per_mask, start=1):
            if len(per_mask) > 1:
                print(f"  mask {index}:")
            for candidate in candidates:
                print(f"  {candidate['score']:.4f}  {candidate['token_str']:<15} {candidate['sequence']}")
    return 0
