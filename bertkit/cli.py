"""The `bertkit` command line.

Each sub-command is one module of `bertkit/commands/` (named after it) over the library's functions; it exposes
`add_arguments(parser)` and `run(args) -> int | None`. Only the chosen command's module is
imported, so `bertkit --help` stays instant (no torch import).

A `UserError` (bertkit.errors: what the user passed was wrong) is printed as one line with exit status 2, and so
is the operating system's refusal of a path; anything else is a bug and prints its traceback. `--traceback` (or
`BERTKIT_TRACEBACK=1`) shows the traceback of user errors too.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from bertkit.errors import UserError

# command name -> (module that implements it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("bertkit.commands.demo", "run the seeds' journey end to end on bundled samples"),
    "tokenize": ("bertkit.commands.tokenize", "tokenize text with a vocabulary folder and print tokens and ids"),
    "train-tokenizer": ("bertkit.commands.train_tokenizer", "train a WordPiece vocabulary on text files"),
    "fill-mask": ("bertkit.commands.fill_mask", "predict the [MASK] token(s) of a sentence"),
    "nsp": ("bertkit.commands.nsp", "next-sentence prediction for a sentence pair"),
    "embed": ("bertkit.commands.embed", "sentence or token embeddings"),
    "prepare-corpus": ("bertkit.commands.prepare_corpus", "tokenize raw text into memory-mapped pretraining shards"),
    "pretrain": ("bertkit.commands.pretrain", "pretrain BERT with MLM (+ NSP)"),
    "plot": ("bertkit.commands.plot", "plot the curves of a JSONL metrics log to PNG"),
    "finetune": ("bertkit.commands.finetune", "fine-tune for classify | ner | qa"),
    "predict": ("bertkit.commands.predict", "run a fine-tuned model over a file"),
    "evaluate": ("bertkit.commands.evaluate", "evaluate a fine-tuned model on a labelled file"),
    "export": ("bertkit.commands.export", "export a model folder to ONNX (checked against PyTorch; int8 optional)"),
    "serve": ("bertkit.commands.serve", "serve a model over HTTP with a web page"),
    "attention": ("bertkit.commands.attention", "write a self-contained attention view (HTML)"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertkit", description="BERT end to end.",
                                     epilog="--traceback (or BERTKIT_TRACEBACK=1): show the traceback of user errors too")
    from bertkit import __version__

    parser.add_argument("--version", action="version", version=f"bertkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def _describe_os_error(error: OSError) -> str:
    """An OSError as one line: the system's own ones ("[Errno 17] File exists: 'x'") get a plain reading."""
    if error.errno is None or error.strerror is None:
        return str(error)  # raised by bertkit with its own message
    path = f" {error.filename!r}" if error.filename is not None else ""
    hints = {
        FileExistsError: "something is already there (a file where a folder is to be made?); pass another path",
        IsADirectoryError: "that is a folder where a file is needed; pass a file path",
        NotADirectoryError: "a file is in the way where a folder is needed; pass another path",
        PermissionError: "no permission; pass a path you can write to",
    }
    hint = next((text for kind, text in hints.items() if isinstance(error, kind)), "check the path")
    return f"{error.strerror.lower()}:{path}; {hint}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    show_traceback = "--traceback" in argv or os.environ.get("BERTKIT_TRACEBACK", "") not in ("", "0")
    argv = [a for a in argv if a != "--traceback"]
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except UserError as error:  # the user's input: one line (anything else is a bug and keeps its traceback)
        if show_traceback:
            raise
        print(f"bertkit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # the operating system's own refusal of a path the user gave (a file where a folder is to be made, no
        # permission, a full disk...): the commands check the common cases with their own message
        if show_traceback or error.errno is None:
            raise
        print(f"bertkit {args.command}: error: {_describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
