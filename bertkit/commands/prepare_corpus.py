"""`bertkit prepare-corpus FILES... --tokenizer DIR --output DIR`: raw text -> memory-mapped pretraining shards
(`bertkit.data.corpus`).

    bertkit prepare-corpus wiki.txt.xz --tokenizer my-tokenizer --output shards/ [--workers 2]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from bertkit.data.corpus import FORMATS, prepare_corpus
from bertkit.files import require_folder, require_output_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="text / JSONL / WikiExtractor files, folders or tar archives")
    parser.add_argument("--output", "--out", dest="out", required=True, help="output folder for the shards")
    parser.add_argument("--tokenizer", required=True, help="folder with vocab.txt (and tokenizer_config.json)")
    parser.add_argument("--format", default="auto", choices=FORMATS, help="input format (default: detect)")
    parser.add_argument("--text-field", default="text", help="JSONL field holding the text (default: text)")
    parser.add_argument("--valid-fraction", type=float, default=0.01, help="share of documents held out (default 0.01)")
    parser.add_argument("--shard-tokens", type=int, default=50_000_000, help="tokens per shard (default 50M)")
    parser.add_argument("--max-documents", type=int, default=None, help="stop after this many documents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default="1",
                        help="processes that split, tokenize and write shards (default 1; 'auto': one per core); "
                             "the output holds the same documents and tokens whatever the number")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from bertkit.tokenizer import BertTokenizer

    require_output_folder(args.out, "--output")  # before the slow part, not after it
    folder = Path(args.tokenizer)
    if not folder.is_file():  # a vocab.txt is fine too
        require_folder(folder, "--tokenizer")
    tokenizer = BertTokenizer.from_pretrained(str(folder))
    header = prepare_corpus(
        args.inputs, args.out, tokenizer, fmt=args.format, text_field=args.text_field,
        valid_fraction=args.valid_fraction, shard_tokens=args.shard_tokens, max_documents=args.max_documents,
        seed=args.seed, progress=not args.no_progress, workers=args.workers,
    )
    train = sum(s["tokens"] for s in header["splits"]["train"])
    valid = sum(s["tokens"] for s in header["splits"]["valid"])
    print(f"{header['documents']:,} documents, {train:,} train tokens, {valid:,} held-out tokens -> {args.out}")
    return 0
