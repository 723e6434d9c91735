"""Fine-tuning recipes for classification, NER and QA over `bertkit.Trainer`, set by HF's `TrainingArguments`.

    from bertkit.train.recipes import finetune_classifier, recipe_arguments
    result = finetune_classifier("path/to/bert", "train.tsv", eval_file=None,  # the seed's 70/30 split
                                 args=recipe_arguments(output_dir="runs/x", num_train_epochs=2))

Each recipe: read the files -> label maps -> the model with a fresh head (`from_pretrained(base, id2label=...)`)
-> features -> `finetune` with the task's evaluation -> the best model, tokenizer and `bertkit_task.json` (the
settings predict / evaluate reuse) in output_dir. The settings are `TrainingArguments` (the Trainer's own; there
is no second vocabulary and no second loop); `recipe_arguments` gives the recipes' defaults (batch 16, evaluation
and a best checkpoint every epoch, ...), and `RecipeOptions` holds the two things a recipe adds (a frozen
encoder, early stopping). The task's evaluation runs on the eval strategy's schedule, its numbers go to
`output_dir/metrics.jsonl`, the best one (by `metric_for_best_model`, default the task's usual metric) is
checkpointed, and at the end the best weights are back in `model` and saved to `output_dir`. A feature is a dict
of python lists (input_ids, token_type_ids, attention_mask and the task's targets: `labels` or
`start_positions`/`end_positions`).
"""
from __future__ import annotations

import dataclasses
import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from bertkit.errors import MissingFileError, UserError
from bertkit.tasks.evaluation import TASK_FILE, evaluate_classification, evaluate_ner, evaluate_qa
from bertkit.tasks.registry import fine_tunable_tasks, get_task
from bertkit.train.arguments import TrainingArguments, set_seed
from bertkit.train.callbacks import EarlyStoppingCallback
from bertkit.train.trainer import Trainer

# metrics where smaller is better; everything else (accuracy, f1, exact_match, ...) is maximized
LOWER_IS_BETTER = ("loss", "eval_loss", "mse")

# where the recipes' defaults differ from TrainingArguments' (HF's): they evaluate and keep the best every epoch
RECIPE_DEFAULTS: dict[str, Any] = {
    "output_dir": "runs/finetune", "per_device_train_batch_size": 16, "per_device_eval_batch_size": 64,
    "weight_decay": 0.01, "logging_steps": 50, "eval_strategy": "epoch", "load_best_model_at_end": True,
    "save_total_limit": 1,
}


@dataclass
class RecipeOptions:
    """What a fine-tuning recipe adds to `TrainingArguments`."""

    freeze_encoder: bool = False  # feature-extractor mode: only the task head trains
    early_stopping_patience: int = 0  # stop after this many evaluations without improvement; 0 = never


def recipe_arguments(**overrides: Any) -> TrainingArguments:
    """`TrainingArguments` with the recipes' defaults under `overrides`. `eval_steps` alone means evaluating every
    that many steps; checkpoints follow the evaluations (the best one is kept); bf16 is on where the device has
    it natively (the Trainer's rule, `bertkit.model.inference.resolve_precision`)."""
    values = {**RECIPE_DEFAULTS, **overrides}
    if overrides.get("eval_steps") and "eval_strategy" not in overrides:
        values["eval_strategy"] = "steps"
    if values["eval_strategy"] == "no" and "load_best_model_at_end" not in overrides:
        values["load_best_model_at_end"] = False
    values.setdefault("save_strategy", values["eval_strategy"] if values["load_best_model_at_end"] else "no")
    if values.get("eval_steps"):
        values.setdefault("save_steps", values["eval_steps"])
    return TrainingArguments(**values)  # bf16 left unset: the Trainer takes it where the device runs it natively


# ----------------------------------------------------------------------------------------------
# the loop


def freeze_encoder(model: torch.nn.Module) -> int:
    """Feature-extractor mode: freeze the encoder (`model.bert`), train only the head. Returns the number
    of trainable parameters left (1,538 for bert-base with 2 labels, as the seed counts)."""
    encoder = getattr(model, "bert", None)
    if encoder is None:
        raise UserError(f"{type(model).__name__} has no .bert encoder to freeze")
    for parameter in encoder.parameters():
        parameter.requires_grad = False
    return count_trainable(model)


def count_trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def finetune(
    model: torch.nn.Module,
    train_features: Sequence[dict],
    args: TrainingArguments | None = None,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    tokenizer: Any = None,
    collator: Callable | None = None,
    options: RecipeOptions | None = None,
) -> dict[str, Any]:
    """Train `model` in place through `bertkit.Trainer`; returns {"best_metric", "best_step", "steps",
    "train_runtime", "metric_for_best", "trainable_parameters", "history"}. The best evaluation's weights end up
    in `model` and in `args.output_dir` (with the tokenizer); metrics go to `output_dir/metrics.jsonl`."""
    if not train_features:
        raise UserError("no training examples: the training file gave nothing to train on")
    args = args if args is not None else recipe_arguments()
    options = options or RecipeOptions()
    metric = args.metric_for_best_model or "loss"
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "finetune_config.json").write_text(json.dumps(
        {"training_arguments": {**args.to_dict(), "metric_for_best_model": metric}, "recipe": asdict(options)},
        indent=2, default=str))
    set_seed(args.seed)
    if options.freeze_encoder:
        freeze_encoder(model)
    evaluation = "no" if evaluate is None else args.eval_strategy
    keep_best = args.load_best_model_at_end and evaluation != "no"
    checkpoints = output_dir / "checkpoints"  # best-of-this-run only; removed once the best is in output_dir
    shutil.rmtree(checkpoints, ignore_errors=True)
    run_args = dataclasses.replace(
        args, output_dir=str(checkpoints), logging_dir=args.logging_dir or str(output_dir), eval_strategy=evaluation,
        save_strategy=args.save_strategy if keep_best else "no", load_best_model_at_end=keep_best,
        metric_for_best_model=metric,
        greater_is_better=args.greater_is_better if args.greater_is_better is not None else metric not in LOWER_IS_BETTER)
    callbacks = [EarlyStoppingCallback(options.early_stopping_patience)] if options.early_stopping_patience else []
    trainer = RecipeTrainer(model=model, args=run_args, train_dataset=list(train_features), data_collator=collator,
                            processing_class=tokenizer, callbacks=callbacks, recipe_evaluate=evaluate)
    output = trainer.train()
    trainer.save_model(output_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)
    state = trainer.state
    best_metric = state.best_metric
    if best_metric is None and evaluate is not None:
        evaluations = [e for e in state.log_history if f"eval_{metric}" in e]
        best_metric = evaluations[-1][f"eval_{metric}"] if evaluations else None
    return {"best_metric": best_metric, "best_step": state.best_global_step or 0, "steps": output.global_step,
            "train_runtime": round(output.metrics["train_runtime"], 3), "metric_for_best": metric,
            "trainable_parameters": count_trainable(model), "history": state.log_history}


class RecipeTrainer(Trainer):
    """The Trainer with a recipe's own evaluation (entity F1 from tags, QA answers from logits): HF recipes
    subclass Trainer the same way (QuestionAnsweringTrainer)."""

    def __init__(self, *args: Any, recipe_evaluate: Callable[[torch.nn.Module], dict] | None = None,
                 **kwargs: Any) -> None:
        self.recipe_evaluate = recipe_evaluate
        super().__init__(*args, **kwargs)

    def has_evaluation(self) -> bool:
        return self.recipe_evaluate is not None or super().has_evaluation()

    def evaluation_metrics(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        if self.recipe_evaluate is None:
            return super().evaluation_metrics(rows)
        return {k: v for k, v in self.recipe_evaluate(self.model).items() if isinstance(v, (int, float))}


# what picks the best checkpoint: the task's (bertkit.tasks.registry), or the problem type's for classification
DEFAULT_METRIC = {**{name: get_task(name).default_metric for name in fine_tunable_tasks()},
                  "regression": "mse", "multilabel": "micro_f1"}


def _load(class_name: str, model_dir: str | Path, tokenizer_dir: str | Path | None, **config: Any):
    import bertkit.model
    from bertkit.tokenizer import BertTokenizer

    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise MissingFileError(f"no model in {str(folder)!r} (config.json missing); --model takes a folder in "
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


def _save_settings(args: TrainingArguments, settings: dict[str, Any], result: dict[str, Any]) -> None:
    settings = {**settings, "best_metric": result["best_metric"], "metric_for_best": result["metric_for_best"]}
    (Path(args.output_dir) / TASK_FILE).write_text(json.dumps(settings, indent=2, ensure_ascii=False))


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


def _run_recipe(task: str, kind: str, model: torch.nn.Module, tokenizer: Any, features: list, args: TrainingArguments,
                options: RecipeOptions | None,
                evaluate: Callable[[torch.nn.Module], dict[str, Any]], settings: dict[str, Any], train: list,
                evaluation: list) -> dict[str, Any]:
    """What every recipe does once its data and model are ready: train with `evaluate` each epoch (best by the
    kind's usual metric unless the arguments name one), report the final evaluation, and save the task settings
    that `bertkit evaluate|predict|serve` read back."""
    if args.metric_for_best_model is None:
        args = dataclasses.replace(args, metric_for_best_model=DEFAULT_METRIC[kind])
    evaluation_fn = _Evaluation(evaluate)
    result = finetune(model, features, args, tokenizer=tokenizer, evaluate=evaluation_fn, options=options)
    final = evaluation_fn.final(model, result)
    _save_settings(args, {"task": task, **settings}, result)
    return {**result, "eval": _numbers(final), "train_examples": len(train), "eval_examples": len(evaluation)}


def finetune_classifier(
    model_dir: str | Path,
    train_file: str | Path,
    eval_file: str | Path | None = None,
    args: TrainingArguments | None = None,
    options: RecipeOptions | None = None,
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
    from bertkit.tasks.classification import build_label_maps, encode_examples, read_classification_file, train_eval_split

    args = args if args is not None else recipe_arguments()
    columns = dict(text_column=text_column, text_pair_column=text_pair_column, label_column=label_column,
                   problem_type=problem_type)
    train, evaluation = _train_and_eval(
        lambda path: read_classification_file(path, **columns), train_file, eval_file,
        lambda rows: train_eval_split(rows, test_size=test_size, seed=args.seed),
        max_train_examples, max_eval_examples, args.seed)
    if problem_type == "regression":
        head = {"num_labels": 1, "problem_type": problem_type}
        label2id = None
    else:
        label2id, id2label = build_label_maps(e.label for e in train)
        head = {"id2label": id2label, "label2id": label2id, "problem_type": problem_type}
    model, tokenizer = _load("BertForSequenceClassification", model_dir, tokenizer_dir, **head)
    features = encode_examples(train, tokenizer, label2id, max_length, problem_type)
    kind = {"regression": "regression", "multi_label_classification": "multilabel"}.get(problem_type, "classify")
    return _run_recipe(
        "classify", kind, model, tokenizer, features, args, options,
        lambda m: evaluate_classification(m, tokenizer, evaluation, max_length, args.per_device_eval_batch_size),
        {**columns, "max_length": max_length}, train, evaluation)


def finetune_ner(
    model_dir: str | Path,
    train_file: str | Path,
    eval_file: str | Path | None = None,
    args: TrainingArguments | None = None,
    options: RecipeOptions | None = None,
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

    args = args if args is not None else recipe_arguments()
    train, evaluation = _train_and_eval(
        lambda path: read_ner_file(path, token_column, tag_column), train_file, eval_file,
        lambda sentences: train_eval_split(sentences, test_size=test_size, seed=args.seed),
        max_train_examples, max_eval_examples, args.seed)
    # tags seen only in the eval data still get an id (a tag the model never saw is simply never predicted)
    label2id, id2label = build_tag_maps(list(train) + list(evaluation))
    model, tokenizer = _load("BertForTokenClassification", model_dir, tokenizer_dir, id2label=id2label, label2id=label2id)
    features = encode_sentences(train, tokenizer, label2id, max_length, label_all_subwords)
    settings = {"token_column": token_column, "tag_column": tag_column, "label_all_subwords": label_all_subwords,
                "max_length": max_length, "scheme": detect_scheme([t for s in train for t in s.tags])}
    return _run_recipe(
        "ner", "ner", model, tokenizer, features, args, options,
        lambda m: evaluate_ner(m, tokenizer, evaluation, max_length, args.per_device_eval_batch_size, label_all_subwords),
        settings, train, evaluation)


def finetune_qa(
    model_dir: str | Path,
    train_file: str | Path,
    eval_file: str | Path | None = None,
    args: TrainingArguments | None = None,
    options: RecipeOptions | None = None,
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

    args = args if args is not None else recipe_arguments()
    train, evaluation = _train_and_eval(
        read_squad, train_file, eval_file,
        lambda examples: split_by_article(examples, eval_fraction=eval_fraction, seed=args.seed),
        max_train_examples, max_eval_examples, args.seed)
    version_2_with_negative = version_2_with_negative or any(e.is_impossible for e in train)
    model, tokenizer = _load("BertForQuestionAnswering", model_dir, tokenizer_dir)
    features = prepare_features(train, tokenizer, max_seq_length, doc_stride, max_query_length)
    knobs = dict(max_seq_length=max_seq_length, doc_stride=doc_stride, max_query_length=max_query_length,
                 n_best_size=n_best_size, max_answer_length=max_answer_length,
                 version_2_with_negative=version_2_with_negative)
    result = _run_recipe(
        "qa", "qa", model, tokenizer, features, args, options,
        lambda m: evaluate_qa(m, tokenizer, evaluation, batch_size=args.per_device_eval_batch_size, **knobs),
        knobs, train, evaluation)
    return {**result, "train_features": len(features)}
