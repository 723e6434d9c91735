"""`bertkit plot LOG.jsonl --output curves.png`: the curves of a metrics log as a PNG (`bertkit.train.curves`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from bertkit.train.curves import plot_metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", help="metrics.jsonl written by a run")
    parser.add_argument("--output", "--out", dest="out", default=None, help="PNG to write (default: next to the log, curves.png)")
    parser.add_argument("--title", default=None)


def run(args: argparse.Namespace) -> int:
    out = args.out or str(Path(args.log).with_name("curves.png"))
    path = plot_metrics(args.log, out, args.title)
    print(path)
    return 0
