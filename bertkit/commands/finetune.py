"""`bertkit finetune classify|ner|qa`: the command over `bertkit.train.finetune`'s recipes.

    bertkit finetune classify --model path/to/bert --train train.tsv --eval dev.tsv --output runs/sst2
    bertkit finetune ner --model path/to/bert --train train.txt --eval valid.txt --output runs/conll
    bertkit finetune qa --model path/to/bert --train squad.json --output runs/squad   # no --eval: split by article
"""
from __future__ import annotations

import argparse
import dataclasses

from bertkit.tasks.evaluate import format_report
from bertkit.train.finetune import FinetuneConfig, finetune_classifier, finetune_ner, finetune_qa


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FinetuneConfig()
    group = parser.add_argument_group("training")
    group.add_argument("--output", required=True, help="folder for the fine-tuned model, metrics.jsonl and settings")
    group.add_argument("--epochs", type=float, default=defaults.epochs)
    group.add_argument("--batch-size", type=int, default=defaults.batch_size)
    group.add_argument("--eval-batch-size", type=int, default=defaults.eval_batch_size)
    group.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=defaults.learning_rate)
    group.add_argument("--warmup-ratio", type=float, default=defaults.warmup_ratio)
    group.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps, help="wins over --warmup-ratio when > 0")
    group.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    group.add_argument("--max-grad-norm", type=float, default=defaults.max_grad_norm, help="0 = no clipping")
    group.add_argument("--max-steps", type=int, default=0, help="> 0 stops after that many steps")
    group.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (default: every epoch)")
    group.add_argument("--log-every", type=int, default=defaults.log_every)
    group.add_argument("--metric", dest="metric_for_best", default=None,
                       help="metric that picks the best checkpoint (default: accuracy / f1 / f1; mse for regression)")
    group.add_argument("--early-stopping", dest="early_stopping_patience", type=int, default=0,
                       help="stop after N evaluations without improvement")
    group.add_argument("--freeze-encoder", action="store_true", help="train only the task head (feature extraction)")
    group.add_argument("--seed", type=int, default=defaults.seed)
    group.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1")
    group.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                       help="bf16 autocast (default: on for GPUs that support it)")
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


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    values["output_dir"] = args.output
    return FinetuneConfig(**values)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    common = dict(model_dir=args.model, train_file=args.train, eval_file=args.eval, config=config,
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
          f"({result['steps']} steps, {result['train_runtime']:.1f}s); model saved to {config.output_dir}")
    return 0
