"""The `bertkit` command line.

Each sub-command lives in the module that holds its concept; that module exposes
`add_arguments(parser)` and `run(args) -> int | None`. Only the chosen command's module is
imported, so `bertkit --help` stays instant (no torch import).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from bertkit.errors import UserError  # noqa: F401 (bertkit.cli.UserError, as the docs name it)

# command name -> (module that implements it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("bertkit.demo", "run the seeds' journey end to end on bundled samples"),
    "tokenize": ("bertkit.tokenizer.cli", "tokenize text with a vocabulary folder and print tokens and ids"),
    "train-tokenizer": ("bertkit.tokenizer.trainer", "train a WordPiece vocabulary on text files"),
    "fill-mask": ("bertkit.pipelines.fill_mask", "predict the [MASK] token(s) of a sentence"),
    "nsp": ("bertkit.pipelines.next_sentence", "next-sentence prediction for a sentence pair"),
    "embed": ("bertkit.pipelines.feature_extraction", "sentence or token embeddings"),
    "prepare-corpus": ("bertkit.data.corpus", "tokenize raw text into memory-mapped pretraining shards"),
    "pretrain": ("bertkit.train.pretrain", "pretrain BERT with MLM (+ NSP)"),
    "plot": ("bertkit.train.plot", "plot the curves of a JSONL metrics log to PNG"),
    "finetune": ("bertkit.commands.finetune", "fine-tune for classify | ner | qa"),
    "predict": ("bertkit.commands.predict", "run a fine-tuned model over a file"),
    "evaluate": ("bertkit.commands.evaluate", "evaluate a fine-tuned model on a labelled file"),
    "serve": ("bertkit.serve.app", "serve a model over HTTP with a web page"),
    "attention": ("bertkit.serve.attention", "write a self-contained attention view (HTML)"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertkit", description="BERT end to end.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as error:
        print(f"bertkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
