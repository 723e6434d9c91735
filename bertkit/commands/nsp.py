"""`bertkit nsp --model DIR "sentence A" "sentence B"`: does B follow A? (`bertkit.pipelines.next_sentence`)."""
from __future__ import annotations

import argparse
import json

from bertkit.errors import UserError
from bertkit.pipelines.base import load_trained_head
from bertkit.pipelines.next_sentence import NextSentencePredictionPipeline


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True, help="model folder (HuggingFace layout, with an NSP head and vocab.txt)")
    parser.add_argument("sentence_a", nargs="?", help="first sentence")
    parser.add_argument("sentence_b", nargs="?", help="second sentence: does it follow the first?")
    parser.add_argument("--file", help="read pairs from a TSV file: sentence A <tab> sentence B per line")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")


def read_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    pairs = []
    if args.sentence_a is not None:
        if args.sentence_b is None:
            raise UserError("give two sentences: bertkit nsp --model DIR 'sentence A' 'sentence B'")
        pairs.append((args.sentence_a, args.sentence_b))
    if args.file:
        from bertkit.files import read_text

        for number, line in enumerate(read_text(args.file, "--file").splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise UserError(f"{args.file}:{number}: expected 'sentence A<TAB>sentence B', got {len(fields)} field(s)")
            pairs.append((fields[0].strip(), fields[1].strip()))
    if not pairs:
        raise UserError("no sentence pair: give two sentences or --file pairs.tsv")
    return pairs


def run(args: argparse.Namespace) -> int:
    from bertkit.files import require_folder

    require_folder(args.model, "--model")  # a file or a missing path, said before anything loads
    pairs = read_pairs(args)
    nsp = NextSentencePredictionPipeline(load_trained_head(args.model, "next-sentence"), tokenizer=args.model,
                                         device=args.device)
    results = nsp(pairs)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], ensure_ascii=False, indent=2))
        return 0
    for (a, b), result in zip(pairs, results):
        chances = "  ".join(f"{label} {p:.4f}" for label, p in result["probabilities"].items())
        print(f"A: {a}\nB: {b}\n  -> {result['label']}  ({chances})")
    return 0
