"""`bertkit finetune TASK`: the command over `bertkit.train.recipes`'s recipes, one sub-command per fine-tunable task
of `bertkit.tasks.registry` (classify, ner, qa), with the task's settings read off its recipe's signature.

    bertkit finetune classify --model path/to/bert --train train.tsv --eval dev.tsv --output runs/sst2
    bertkit finetune ner --model path/to/bert --train train.txt --eval valid.txt --output runs/conll
    bertkit finetune qa --model path/to/bert --train squad.json --output runs/squad   # no --eval: split by article
"""
from __future__ import annotations

import argparse
import inspect
from typing import Any

from bertkit.tasks import registry
from bertkit.tasks.evaluation import format_report
from bertkit.train.arguments import TrainingArguments
from bertkit.train.console import console_mode
from bertkit.train.recipes import RECIPE_DEFAULTS, RecipeOptions, recipe_arguments
from bertkit.utils.cli_flags import add_dataclass_arguments, dataclass_values

# TrainingArguments' fields that make no flag: lists and HF names that change nothing here
NO_FLAG = ("label_names", "report_to", "dataloader_num_workers", "disable_tqdm", "remove_unused_columns",
           "logging_dir", "logging_strategy", "save_steps", "save_strategy", "save_total_limit")
# the flags' help; their names and types come from TrainingArguments' and RecipeOptions' fields
TRAINING_HELP = {
    "output_dir": "folder for the fine-tuned model, metrics.jsonl and settings",
    "warmup_steps": "wins over --warmup-ratio when > 0", "max_grad_norm": "0 = no clipping",
    "max_steps": "> 0 stops after that many steps", "eval_steps": "evaluate every N steps (else every epoch)",
    "metric_for_best_model": "metric that picks the best checkpoint (default: accuracy / f1 / f1; mse for regression)",
    "early_stopping_patience": "stop after N evaluations without improvement",
    "freeze_encoder": "train only the task head (feature extraction)",
    "device": "auto (cuda if available), cpu, cuda, cuda:1",
    "bf16": "bf16 autocast (default: on where the device runs bf16 natively: GPUs that have it, CPUs with avx512_bf16 or AMX)",
    "load_best_model_at_end": "keep the best evaluation's weights (else the last)",
}
# the short spellings (the first ones bertkit had) beside HF's own --field-name
TRAINING_FLAGS = {
    "output_dir": ["--output", "--out", "--output-dir"], "num_train_epochs": ["--epochs", "--num-train-epochs"],
    "learning_rate": ["--lr", "--learning-rate"], "per_device_train_batch_size": ["--batch-size", "--per-device-train-batch-size"],
    "per_device_eval_batch_size": ["--eval-batch-size", "--per-device-eval-batch-size"],
    "eval_steps": ["--eval-every", "--eval-steps"], "logging_steps": ["--log-every", "--logging-steps"],
    "metric_for_best_model": ["--metric", "--metric-for-best-model"],
    "load_best_model_at_end": ["--save-best", "--load-best-model-at-end"],
    "early_stopping_patience": ["--early-stopping", "--early-stopping-patience"],
}


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (HF's TrainingArguments; the recipes' defaults where they differ)")
    add_dataclass_arguments(group, TrainingArguments, aliases=TRAINING_FLAGS, help=TRAINING_HELP, required=("output_dir",),
                            skip=NO_FLAG + ("ignored",), defaults=RECIPE_DEFAULTS)
    add_dataclass_arguments(group, RecipeOptions, aliases=TRAINING_FLAGS, help=TRAINING_HELP)
    group.add_argument("--max-train-examples", type=int, help="train on a seeded sample of this many examples")
    group.add_argument("--max-eval-examples", type=int, help="evaluate on a seeded sample of this many examples")


# the recipe's own keywords that are not task settings (the command fills them from the common flags)
COMMON = ("model_dir", "train_file", "eval_file", "args", "options", "tokenizer_dir", "max_train_examples",
          "max_eval_examples")
# task settings' help and short spellings; their names, types and defaults come from the recipe's signature
SETTING_HELP = {
    "text_column": "default: text, sentence, document, ...", "text_pair_column": "second text for pairs (NLI, paraphrase)",
    "label_column": "default: label, labels, ...",
    "problem_type": "single_label_classification, multi_label_classification or regression",
    "test_size": "held-out fraction when no --eval (seed: 0.3)", "token_column": "CoNLL column of the word (0-based)",
    "tag_column": "CoNLL column of the tag (-1 = last)", "label_all_subwords": "label every sub-word, not only the first",
    "doc_stride": "tokens shared by consecutive windows", "eval_fraction": "articles held out when no --eval",
    "version_2_with_negative": "unanswerable questions allowed (SQuAD v2.0); on by itself when the data has some",
}
SETTING_FLAGS = {"n_best_size": ["--n-best", "--n-best-size"], "version_2_with_negative": ["--version-2"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True, help="pretrained model folder (HuggingFace layout)")
    common.add_argument("--tokenizer", help="tokenizer folder (default: the model folder)")
    common.add_argument("--train", required=True, help="training file")
    common.add_argument("--eval", help="evaluation file (default: hold out part of --train)")
    common.add_argument("--verbose", action="store_true",
                        help="print the Trainer's table row at every logging step, not only at each evaluation "
                             "(so does an explicit --logging-steps); metrics.jsonl has every row either way")
    for name in registry.fine_tunable_tasks():  # one sub-command per task of the registry
        spec = registry.get_task(name)
        sub = tasks.add_parser(name, parents=[common], help=spec.summary, description=spec.summary)
        _recipe_settings(sub, spec)
        _training_arguments(sub)


def task_settings(recipe: Any) -> dict[str, inspect.Parameter]:
    """The recipe's own keywords (its task's settings), those the command does not fill from the common flags."""
    return {name: p for name, p in inspect.signature(recipe).parameters.items() if name not in COMMON}


def _recipe_settings(parser: argparse.ArgumentParser, spec: registry.TaskSpec) -> None:
    """A flag for each task setting the recipe takes (`max_length=128` -> --max-length, default 128)."""
    for name, parameter in task_settings(registry.resolve(spec.recipe)).items():
        flags = SETTING_FLAGS.get(name, ["--" + name.replace("_", "-")])
        default, text = parameter.default, SETTING_HELP.get(name, "")
        if isinstance(default, bool):
            parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{text} (default {default})".strip())
        else:
            kind = type(default) if default is not None else str
            parser.add_argument(*flags, dest=name, type=kind, default=default, help=f"{text} (default {default})".strip())


def training_arguments_from(args: argparse.Namespace) -> TrainingArguments:
    """The flags the user set over the recipes' defaults."""
    values = {k: v for k, v in dataclass_values(args, TrainingArguments).items() if k not in NO_FLAG + ("ignored",)}
    return recipe_arguments(**values)


def run(args: argparse.Namespace) -> int:
    from bertkit.files import require_file, require_folder, require_output_folder

    training = training_arguments_from(args)
    # the paths first: a wrong one is said before the model loads and training starts
    require_folder(args.model, "--model")
    for flag, path in (("--train", args.train), ("--eval", args.eval)):
        if path is not None:
            require_file(path, flag)
    require_output_folder(training.output_dir, "--output")
    recipe = registry.resolve(registry.get_task(args.task).recipe)
    settings = {name: getattr(args, name) for name in task_settings(recipe) if hasattr(args, name)}
    # the console: a progress bar and a row per evaluation; a row per logging step only when asked for
    asked = getattr(args, "verbose", False) or "logging_steps" in dataclass_values(args, TrainingArguments)
    with console_mode("rows" if asked else "summary"):
        result = recipe(model_dir=args.model, train_file=args.train, eval_file=args.eval, args=training,
                        options=RecipeOptions(**dataclass_values(args, RecipeOptions)), tokenizer_dir=args.tokenizer,
                        max_train_examples=args.max_train_examples, max_eval_examples=args.max_eval_examples,
                        **settings)
    print(format_report(args.task, result["eval"]))
    print(f"best {result['metric_for_best']}={result['best_metric']} at step {result['best_step']} "
          f"({result['steps']} steps, {result['train_runtime']:.1f}s); model saved to {training.output_dir}")
    return 0
