"""Fine-tuning recipes: text classification, NER and extractive QA (`bertkit finetune classify|ner|qa`).

    bertkit finetune classify --model path/to/bert --train train.tsv --eval dev.tsv --output runs/sst2
    bertkit finetune ner --model path/to/bert --train train.txt --eval valid.txt --output runs/conll
    bertkit finetune qa --model path/to/bert --train squad.json --output runs/squad   # no --eval: split by article

From Python:

    from bertkit.tasks.finetune import finetune_classifier
    from bertkit.tasks.train import FinetuneConfig
    result = finetune_classifier("path/to/bert", "train.tsv", eval_file=None,  # the seed's 70/30 split
                                 config=FinetuneConfig(output_dir="runs/x", epochs=2))

Each recipe: read the files -> label maps -> the model with a fresh head (`from_pretrained(base,
id2label=...)`) -> features -> `bertkit.tasks.train.finetune` with the task's evaluation ->
the best model, tokenizer and `bertkit_task.json` (the settings predict / evaluate reuse) in output_dir.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
from pathlib import Path
from typing import Any, Callable

from bertkit.tasks.evaluate import TASK_FILE, evaluate_classification, evaluate_ner, evaluate_qa
from bertkit.tasks.registry import fine_tunable_tasks, get_task
from bertkit.tasks.train import FinetuneConfig, finetune

# what picks the best checkpoint: the task's (bertkit.tasks.registry), or the problem type's for classification
DEFAULT_METRIC = {**{name: get_task(name).default_metric for name in fine_tunable_tasks()},
                  "regression": "mse", "multilabel": "micro_f1"}


def _load(class_name: str, model_dir: str | Path, tokenizer_dir: str | Path | None, **config: Any):
    import bertkit.model
    from bertkit.tokenizer import BertTokenizer

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no model in {str(folder)!r} (config.json missing); --model takes a folder in "
                                "HuggingFace layout, e.g. a pretrained BERT or `bertkit pretrain`'s output")
    tokenizer = BertTokenizer.from_pretrained(tokenizer_dir or folder)
    model = getattr(bertkit.model, class_name).from_pretrained(folder, **config)
    return model, tokenizer


def _subset(items: list, limit: int | None, seed: int) -> list:
    """A seeded random sample of at most `limit` items (CPU-sized runs), order kept."""
    if not limit or limit >= len(items):
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in keep]


def _train_and_eval(read: Callable[[Any], list], train_file: Any, eval_file: Any,
                    split: Callable[[list], tuple[list, list]], max_train: int | None, max_eval: int | None,
                    seed: int) -> tuple[list, list]:
    """The training examples and the evaluation ones (from eval_file, or split off the training data when there
    is none), each capped to a seeded sample."""
    train = read(train_file)
    if eval_file:
        evaluation = read(eval_file)
    else:
        train, evaluation = split(train)
    return _subset(train, max_train, seed), _subset(evaluation, max_eval, seed)


def _save_settings(config: FinetuneConfig, settings: dict[str, Any], result: dict[str, Any]) -> None:
    settings = {**settings, "best_metric": result["best_metric"], "metric_for_best": result["metric_for_best"]}
    (Path(config.output_dir) / TASK_FILE).write_text(json.dumps(settings, indent=2, ensure_ascii=False))


def _numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "predictions"}


class _Evaluation:
    """The task's evaluation for the loop; remembers its last full result so that the final report does not
    evaluate the same weights twice (the common case: the best evaluation is the last one)."""

    def __init__(self, evaluate) -> None:
        self.evaluate, self.last = evaluate, None

    def __call__(self, model) -> dict[str, Any]:
        self.last = self.evaluate(model)
        return _numbers(self.last)

    def final(self, model, result: dict[str, Any]) -> dict[str, Any]:
        if self.last is not None and result["best_step"] == result["steps"]:
            return self.last
        return self.evaluate(model)


def finetune_classifier(
    model_dir: str | Path,
    train_file: str | Path,
    eval_file: str | Path | None = None,
    config: FinetuneConfig | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    problem_type: str = "single_label_classification",
    max_length: int = 128,
    test_size: float = 0.3,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    tokenizer_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune a sequence classifier; without eval_file, test_size of the training file is held out."""
    from bertkit.tasks.classification import (build_label_maps, encode_examples, read_classification_file,
                                              train_eval_split)

    config = config or FinetuneConfig()
    columns = dict(text_column=text_column, text_pair_column=text_pair_column, label_column=label_column,
                   problem_type=problem_type)
    train, evaluation = _train_and_eval(
        lambda path: read_classification_file(path, **columns), train_file, eval_file,
        lambda rows: train_eval_split(rows, test_size=test_size, seed=config.seed),
        max_train_examples, max_eval_examples, config.seed)
    if problem_type == "regression":
        head = {"num_labels": 1, "problem_type": problem_type}
        label2id = None
    else:
        label2id, id2label = build_label_maps(e.label for e in train)
        head = {"id2label": id2label, "label2id": label2id, "problem_type": problem_type}
    model, tokenizer = _load("BertForSequenceClassification", model_dir, tokenizer_dir, **head)
    features = encode_examples(train, tokenizer, label2id, max_length, problem_type)
    if config.metric_for_best is None:
        kind = {"regression": "regression", "multi_label_classification": "multilabel"}.get(problem_type, "classify")
        config = dataclasses.replace(config, metric_for_best=DEFAULT_METRIC[kind])
    evaluation_fn = _Evaluation(lambda m: evaluate_classification(m, tokenizer, evaluation, max_length,
                                                                  config.eval_batch_size))
    result = finetune(model, features, config, tokenizer=tokenizer, evaluate=evaluation_fn)
    final = evaluation_fn.final(model, result)
    _save_settings(config, {"task": "classify", **{k: v for k, v in columns.items()}, "max_length": max_length}, result)
    return {**result, "eval": _numbers(final), "train_examples": len(train), "eval_examples": len(evaluation)}


def finetune_ner(
    model_dir: str | Path,
    train_file: str | Path,
    eval_file: str | Path | None = None,
    config: FinetuneConfig | None = None,
    token_column: int = 0,
    tag_column: int = -1,
    label_all_subwords: bool = False,
    max_length: int = 128,
    test_size: float = 0.3,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    tokenizer_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune a token classifier on CoNLL / JSONL sentences (BIO or IOBES)."""
    from bertkit.tasks.classification import train_eval_split
    from bertkit.tasks.ner import build_tag_maps, detect_scheme, encode_sentences, read_ner_file

    config = config or FinetuneConfig()
    train, evaluation = _train_and_eval(
        lambda path: read_ner_file(path, token_column, tag_column), train_file, eval_file,
        lambda sentences: train_eval_split(sentences, test_size=test_size, seed=config.seed),
        max_train_examples, max_eval_examples, config.seed)
    # tags seen only in the eval data still get an id (a tag the model never saw is simply never predicted)
    label2id, id2label = build_tag_maps(list(train) + list(evaluation))
    model, tokenizer = _load("BertForTokenClassification", model_dir, tokenizer_dir, id2label=id2label, label2id=label2id)
    features = encode_sentences(train, tokenizer, label2id, max_length, label_all_subwords)
    if config.metric_for_best is None:
        config = dataclasses.replace(config, metric_for_best=DEFAULT_METRIC["ner"])
    evaluation_fn = _Evaluation(lambda m: evaluate_ner(m, tokenizer, evaluation, max_length, config.eval_batch_size,
                                                       label_all_subwords))
    result = finetune(model, features, config, tokenizer=tokenizer, evaluate=evaluation_fn)
    final = evaluation_fn.final(model, result)
    scheme = detect_scheme([t for s in train for t in s.tags])
    _save_settings(config, {"task": "ner", "token_column": token_column, "tag_column": tag_column,
                            "label_all_subwords": label_all_subwords, "max_length": max_length, "scheme": scheme}, result)
    return {**result, "eval": _numbers(final), "train_examples": len(train), "eval_examples": len(evaluation)}


def finetune_qa(
    model_dir: str | Path,
    train_file: str | Path,
    eval_file: str | Path | None = None,
    config: FinetuneConfig | None = None,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    eval_fraction: float = 0.3,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    tokenizer_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune extractive QA on SQuAD-shaped JSON; without eval_file the articles are split."""
    from bertkit.tasks.qa import prepare_features, read_squad, split_by_article

    config = config or FinetuneConfig()
    train, evaluation = _train_and_eval(
        read_squad, train_file, eval_file,
        lambda examples: split_by_article(examples, eval_fraction=eval_fraction, seed=config.seed),
        max_train_examples, max_eval_examples, config.seed)
    version_2_with_negative = version_2_with_negative or any(e.is_impossible for e in train)
    model, tokenizer = _load("BertForQuestionAnswering", model_dir, tokenizer_dir)
    features = prepare_features(train, tokenizer, max_seq_length, doc_stride, max_query_length)
    if config.metric_for_best is None:
        config = dataclasses.replace(config, metric_for_best=DEFAULT_METRIC["qa"])
    knobs = dict(max_seq_length=max_seq_length, doc_stride=doc_stride, max_query_length=max_query_length,
                 n_best_size=n_best_size, max_answer_length=max_answer_length,
                 version_2_with_negative=version_2_with_negative)
    evaluation_fn = _Evaluation(lambda m: evaluate_qa(m, tokenizer, evaluation, batch_size=config.eval_batch_size,
                                                      **knobs))
    result = finetune(model, features, config, tokenizer=tokenizer, evaluate=evaluation_fn)
    final = evaluation_fn.final(model, result)
    _save_settings(config, {"task": "qa", **knobs}, result)
    return {**result, "eval": _numbers(final), "train_examples": len(train), "eval_examples": len(evaluation),
            "train_features": len(features)}


# ----------------------------------------------------------------------------------------------
# the command


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
    from bertkit.tasks.evaluate import format_report

    print(format_report(args.task, result["eval"]))
    print(f"best {result['metric_for_best']}={result['best_metric']} at step {result['best_step']} "
          f"({result['steps']} steps, {result['train_runtime']:.1f}s); model saved to {config.output_dir}")
    return 0
