"""Evaluating a fine-tuned model on labelled examples, with the field's metrics (the library under `bertkit evaluate`).

    bertkit evaluate --model runs/sst2 --data dev.tsv
    bertkit evaluate --model runs/conll --data valid.txt            # entity P / R / F1 (seqeval's)
    bertkit evaluate --model runs/squad --data dev-v1.1.json        # official EM / F1

The evaluation functions are also what the fine-tuning loop calls every epoch:
`evaluate_classification`, `evaluate_ner`, `evaluate_qa` take a model, a tokenizer and examples and
return a dict of numbers (plus the per-class / per-type report and the predictions).
The task and its settings come from `bertkit_task.json`, written next to the model by `bertkit finetune`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bertkit.errors import MissingFileError, UserError
from bertkit.model.config import BertConfig
from bertkit.tasks import registry

TASK_FILE = "bertkit_task.json"


# ----------------------------------------------------------------------------------------------
# the evaluations


def classify_logits(model: Any, tokenizer: Any, examples: Sequence, max_length: int = 128, batch_size: int = 64,
                    with_labels: bool = True) -> tuple[np.ndarray, float | None]:
    """Logits (examples x labels) of a sequence classifier, and the mean loss when labels are given."""
    from bertkit.data.collators import PaddingCollator
    from bertkit.model.inference import predict
    from bertkit.tasks.classification import encode_examples

    problem_type = model.config.problem_type or "single_label_classification"
    label2id = model.config.label2id if with_labels and problem_type != "regression" else None
    if not with_labels:
        examples = [type(e)(e.text, e.text_pair, None) for e in examples]
    features = encode_examples(examples, tokenizer, label2id, max_length, problem_type)
    out = predict(model, features, PaddingCollator(tokenizer.pad_token_id), batch_size)
    return np.stack(out["logits"]), out["loss"]


def evaluate_classification(model: Any, tokenizer: Any, examples: Sequence, max_length: int = 128,
                            batch_size: int = 64) -> dict[str, Any]:
    """accuracy, macro_f1, per_class (single label); micro F1 / subset accuracy (multi-label);
    mse / pearson (regression); and loss."""
    from bertkit.tasks import metrics

    logits, loss = classify_logits(model, tokenizer, examples, max_length, batch_size)
    config = model.config
    problem_type = config.problem_type or "single_label_classification"
    if problem_type == "regression":
        result = metrics.regression_metrics(logits[:, 0], [e.label for e in examples])
        predictions = logits[:, 0].tolist()
    elif problem_type == "multi_label_classification":
        targets = np.array([[1 if config.id2label[i] in e.label else 0 for i in range(config.num_labels)]
                            for e in examples])
        chosen = logits > 0  # sigmoid > 0.5
        result = metrics.multilabel_metrics(chosen, targets)
        predictions = [[config.id2label[i] for i in np.flatnonzero(row)] for row in chosen]
    else:
        labels = [config.label2id[e.label] for e in examples]
        chosen = logits.argmax(-1)
        result = metrics.classification_metrics(chosen, labels, config.id2label)
        predictions = [config.id2label[int(i)] for i in chosen]
    return {**result, "loss": loss, "examples": len(examples), "predictions": predictions}


def evaluate_ner(model: Any, tokenizer: Any, sentences: Sequence, max_length: int = 128, batch_size: int = 64,
                 label_all_subwords: bool = False) -> dict[str, Any]:
    """Entity precision / recall / F1 (equal to seqeval's), token accuracy, per-type report and loss."""
    from bertkit.data.collators import PaddingCollator
    from bertkit.model.inference import predict
    from bertkit.tasks.metrics import entity_metrics
    from bertkit.tasks.ner import encode_sentences, word_predictions

    features = encode_sentences(sentences, tokenizer, model.config.label2id, max_length, label_all_subwords)
    out = predict(model, features, PaddingCollator(tokenizer.pad_token_id), batch_size)
    predicted = [word_predictions(logits, f["word_ids"], model.config.id2label, len(s.words))
                 for logits, f, s in zip(out["logits"], features, sentences)]
    result = entity_metrics([s.tags for s in sentences], predicted)
    return {**result, "loss": out["loss"], "sentences": len(sentences), "predictions": predicted}


def evaluate_qa(model: Any, tokenizer: Any, examples: Sequence, max_seq_length: int = 384, doc_stride: int = 128,
                max_query_length: int = 64, n_best_size: int = 20, max_answer_length: int = 30,
                version_2_with_negative: bool = False, batch_size: int = 64) -> dict[str, Any]:
    """Official SQuAD exact_match and f1 (percent), loss, and the answers (id -> text)."""
    from bertkit.data.collators import PaddingCollator
    from bertkit.model.inference import predict, task_precision
    from bertkit.tasks.metrics import squad_metrics
    from bertkit.tasks.qa import gold_answers, postprocess, prepare_features

    features = prepare_features(examples, tokenizer, max_seq_length, doc_stride, max_query_length)
    out = predict(model, features, PaddingCollator(tokenizer.pad_token_id), batch_size,
                  precision=task_precision("question-answering"))
    answers, _ = postprocess(examples, features, out["start_logits"], out["end_logits"], n_best_size,
                             max_answer_length, version_2_with_negative)
    result = squad_metrics(answers, gold_answers(examples))
    return {**result, "loss": out["loss"], "features": len(features), "predictions": answers}


# ----------------------------------------------------------------------------------------------
# loading a fine-tuned folder


def read_task_settings(model_dir: str | Path) -> dict[str, Any]:
    """The settings `bertkit finetune` saved with the model ({} for a folder it did not write)."""
    path = Path(model_dir) / TASK_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def load_finetuned(model_dir: str | Path, task: str | None = None, device: str = "auto", backend: str = "torch",
                   threads: int | None = None):
    """(task, settings, model, tokenizer) of a fine-tuned folder; the task is read from bertkit_task.json
    or guessed from config.json's architectures.

    backend="onnxruntime": the model is an `OrtModel` (CPU) on the folder's cached export (FOLDER/onnx/<class>.onnx,
    made once), or on `model_dir` itself when it is an .onnx file (its settings and tokenizer beside it, as
    `bertkit export onnx` writes them); `threads` are ONNX Runtime's."""
    import bertkit.model
    from bertkit.model.inference import resolve_device
    from bertkit.tokenizer import BertTokenizer

    path = Path(model_dir)
    onnx_file = path.suffix == ".onnx"
    folder = path.parent if onnx_file else path
    if backend not in ("torch", "onnxruntime") or (onnx_file and backend != "onnxruntime"):
        raise UserError(f"backend must be torch or onnxruntime (onnxruntime for an .onnx file), got {backend!r}")
    if not onnx_file and not (folder / "config.json").is_file():
        raise MissingFileError(f"no fine-tuned model in {str(folder)!r} (config.json missing); "
                                "pass the --output folder of `bertkit finetune`")
    ort_model = None
    if backend == "onnxruntime":
        if resolve_device(device).type != "cpu" and device != "auto":
            raise UserError(f"the onnxruntime backend runs on CPU here; drop --device {device} or use --backend torch")
        from bertkit.export import OrtModel, load_ort_model

        ort_model = OrtModel(path, threads=threads) if onnx_file else None
    settings = read_task_settings(folder)
    task = task or settings.get("task")
    if task is None:
        architectures = ([ort_model.architecture or ""] if ort_model is not None
                         else BertConfig.from_pretrained(folder).architectures or [""])
        spec = registry.task_of_architecture(architectures[0])
        if spec is None:
            raise UserError(f"cannot tell the task of {str(path)!r} (architectures {architectures}); pass --task")
        task = spec.name
    if task not in registry.fine_tunable_tasks():
        raise UserError(f"unknown task {task!r}; choose one of {', '.join(registry.fine_tunable_tasks())}")
    class_name = registry.get_task(task).model_class
    if backend == "onnxruntime":
        model = ort_model or load_ort_model(folder, class_name, threads=threads)
        if model.architecture not in (None, class_name):
            raise UserError(f"{str(path)!r} holds a {model.architecture}; the {task} task needs a {class_name}")
    else:
        model = getattr(bertkit.model, class_name).from_pretrained(folder).to(resolve_device(device)).eval()
    return task, settings, model, BertTokenizer.from_pretrained(folder)


def load_examples(task: str, path: str | Path, settings: dict[str, Any], require_labels: bool = True):
    """A task's examples from a file, with the columns / keys the model was fine-tuned with."""
    return registry.resolve(registry.get_task(task).reader)(path, settings, require_labels)


def evaluate_file(model: Any, tokenizer: Any, task: str, examples: Sequence, settings: dict[str, Any],
                  batch_size: int = 64) -> dict[str, Any]:
    return registry.resolve(registry.get_task(task).evaluator)(model, tokenizer, examples, settings, batch_size)


# the registry's evaluators: one signature (model, tokenizer, examples, settings, batch_size) for every task
def evaluate_classification_task(model: Any, tokenizer: Any, examples: Sequence, settings: dict[str, Any],
                                 batch_size: int = 64) -> dict[str, Any]:
    return evaluate_classification(model, tokenizer, examples, settings.get("max_length", 128), batch_size)


def evaluate_ner_task(model: Any, tokenizer: Any, examples: Sequence, settings: dict[str, Any],
                      batch_size: int = 64) -> dict[str, Any]:
    return evaluate_ner(model, tokenizer, examples, settings.get("max_length", 128), batch_size,
                        settings.get("label_all_subwords", False))


def evaluate_qa_task(model: Any, tokenizer: Any, examples: Sequence, settings: dict[str, Any],
                     batch_size: int = 64) -> dict[str, Any]:
    keys = ("max_seq_length", "doc_stride", "max_query_length", "n_best_size", "max_answer_length",
            "version_2_with_negative")
    return evaluate_qa(model, tokenizer, examples, batch_size=batch_size, **{k: settings[k] for k in keys if k in settings})


def format_report(task: str, result: dict[str, Any]) -> str:
    """A readable table: per class (classification) or per entity type (NER), then the totals."""
    rows = result.get("per_class") or result.get("per_type")
    lines = []
    if rows:
        width = max(10, *(len(name) for name in rows))
        lines.append(f"{'':<{width}}  precision  recall  f1      support")
        for name, row in rows.items():
            lines.append(f"{name:<{width}}  {row['precision']:.4f}     {row['recall']:.4f}  {row['f1']:.4f}  {row['support']}")
    totals = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    lines.append("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in totals.items()))
    return "\n".join(lines)
