"""`bertkit pretrain`: BERT pretraining from prepared shards (`bertkit.train.pretrain_recipe`).

    bertkit pretrain --data data/wiki --output runs/tiny --model-size tiny --max-steps 2000
    torchrun --nproc_per_node 8 -m bertkit pretrain --config pretrain.json      # same recipe, DDP
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from bertkit.train import distributed as dist_utils
from bertkit.train.console import console_mode
from bertkit.train.pretrain_recipe import PretrainConfig, pretrain
from bertkit.utils.cli_flags import add_dataclass_arguments, dataclass_values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON file of options (keys as the flags, e.g. {\"max_steps\": 1000}); flags override it")
    add_dataclass_arguments(parser, PretrainConfig, aliases={"out": ["--output", "--out"]})
    parser.add_argument("--verbose", action="store_true",
                        help="print the training metrics every --log-every steps too, not only a line per evaluation "
                             "(metrics.jsonl has every row either way)")


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(dataclasses.asdict(PretrainConfig.from_json(args.config)))
    values.update(dataclass_values(args, PretrainConfig))
    return PretrainConfig.from_dict(values)


def run(args: argparse.Namespace) -> int:
    with console_mode("rows" if getattr(args, "verbose", False) else "summary"):
        path = pretrain(config_from_args(args))
    dist_utils.print0(f"checkpoint: {path}")
    return 0
