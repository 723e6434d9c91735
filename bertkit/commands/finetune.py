"""`bertkit finetune classify|ner|qa`: the command over `bertkit.train.recipes`'s recipes.

    bertkit finetune classify --model path/to/bert --train train.tsv --eval dev.tsv --output runs/sst2
    bertkit finetune ner --model path/to/bert --train train.txt --eval valid.txt --output runs/conll
    bertkit finetune qa --model path/to/bert --train squad.json --output runs/squad   # no --eval: split by article
"""
from __future__ import annotations

import argparse

from bertkit.tasks.evaluation import format_report
from bertkit.train.arguments import TrainingArguments
from bertkit.train.recipes import RECIPE_DEFAULTS, RecipeOptions, finetune_classifier, finetune_ner, finetune_qa, recipe_arguments
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
    "bf16": "bf16 autocast (default: on for GPUs that support it)",
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", required=True, help="pretrained model folder (HuggingFace layout)")
    common.add_argument("--tokenizer", help="tokenizer folder (default: the model folder)")
    common.add_argument("--train", required=True, help="training file")
    common.add_argument("--eval", help="evaluation file (default: hold out part of --train)")

    classify = tasks.add_parser("classify", parents=[common], help="text / text-pair classification, multi-label, regression")
    classify.add_argument("--text-column", help="default: text, sentence, document, ...")
    classify.add_argument("--text-pair-column", help="second text for pairs (NLI, paraphrase)")
    classify.add_argument("--label-column", help="default: label, labels, ...")
    classify.add_argument("--problem-type", default="single_label_classification",
                          choices=["single_label_classification", "multi_label_classification", "regression"])
    classify.add_argument("--max-length", type=int, default=128)
    classify.add_argument("--test-size", type=float, default=0.3, help="held-out fraction when no --eval (seed: 0.3)")
    _training_arguments(classify)

    ner = tasks.add_parser("ner", parents=[common], help="named entity recognition (CoNLL or JSONL, BIO / IOBES)")
    ner.add_argument("--token-column", type=int, default=0, help="CoNLL column of the word (0-based)")
    ner.add_argument("--tag-column", type=int, default=-1, help="CoNLL column of the tag (-1 = last)")
    ner.add_argument("--label-all-subwords", action="store_true", help="label every sub-word, not only the first")
    ner.add_argument("--max-length", type=int, default=128)
    ner.add_argument("--test-size", type=float, default=0.3)
    _training_arguments(ner)

    qa = tasks.add_parser("qa", parents=[common], help="extractive QA on SQuAD v1.1 / v2.0 / KorQuAD JSON")
    qa.add_argument("--max-seq-length", type=int, default=384)
    qa.add_argument("--doc-stride", type=int, default=128, help="tokens shared by consecutive windows")
    qa.add_argument("--max-query-length", type=int, default=64)
    qa.add_argument("--n-best", dest="n_best_size", type=int, default=20)
    qa.add_argument("--max-answer-length", type=int, default=30)
    qa.add_argument("--version-2", dest="version_2_with_negative", action="store_true",
                    help="unanswerable questions allowed (SQuAD v2.0); on by itself when the data has some")
    qa.add_argument("--eval-fraction", type=float, default=0.3, help="articles held out when no --eval")
    _training_arguments(qa)


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
    common = dict(model_dir=args.model, train_file=args.train, eval_file=args.eval, args=training,
                  options=RecipeOptions(**dataclass_values(args, RecipeOptions)),
                  tokenizer_dir=args.tokenizer, max_train_examples=args.max_train_examples,
                  max_eval_examples=args.max_eval_examples)
    if args.task == "classify":
        result = finetune_classifier(**common, text_column=args.text_column, text_pair_column=args.text_pair_column,
                                     label_column=args.label_column, problem_type=args.problem_type,
                                     max_length=args.max_length, test_size=args.test_size)
    elif args.task == "ner":
        result = finetune_ner(**common, token_column=args.token_column, tag_column=args.tag_column,
                              label_all_subwords=args.label_all_subwords, max_length=args.max_length,
                              test_size=args.test_size)
    else:
        result = finetune_qa(**common, max_seq_length=args.max_seq_length, doc_stride=args.doc_stride,
                             max_query_length=args.max_query_length, n_best_size=args.n_best_size,
                             max_answer_length=args.max_answer_length,
                             version_2_with_negative=args.version_2_with_negative, eval_fraction=args.eval_fraction)
    print(format_report(args.task, result["eval"]))
    print(f"best {result['metric_for_best']}={result['best_metric']} at step {result['best_step']} "
          f"({result['steps']} steps, {result['train_runtime']:.1f}s); model saved to {training.output_dir}")
    return 0
