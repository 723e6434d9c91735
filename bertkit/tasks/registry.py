"""Every task bertkit knows, described once: its names, the head it needs, its pipeline, and for the fine-tuning
tasks the model class, the file reader, the evaluation and the default metric.

    from bertkit.tasks.registry import get_task
    spec = get_task("sentiment-analysis")        # any name: the server's, the pipeline's, or an alias
    spec.name, spec.pipeline, spec.model_class  # 'classify', 'text-classification', 'BertForSequenceClassification'

The pipelines (`pipeline(task)`), the commands (`finetune`, `predict`, `evaluate`), the evaluator and the server
read this table; adding a task means adding one `TaskSpec` here (and its modules). Functions and classes are
named as "module:attribute" strings so that reading the table imports nothing.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from bertkit.errors import UserError


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the server's and the commands' name
    pipeline: str | None = None  # HuggingFace's pipeline task name (None: the server answers it itself)
    pipeline_class: str | None = None  # "module:Class"
    aliases: tuple[str, ...] = ()  # more names pipeline() accepts
    heads: tuple[str, ...] = ()  # checkpoint classes ("architectures") that serve it; () = any encoder
    needs: str = ""  # what a model needs for it, for the error that says which checkpoint would serve it
    model_class: str | None = None  # the head class fine-tuning builds (fine-tunable tasks only)
    reader: str | None = None  # "module:function"(path, settings, require_labels) -> examples
    evaluator: str | None = None  # "module:function"(model, tokenizer, examples, settings, batch_size) -> metrics
    default_metric: str | None = None  # what picks the best checkpoint

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *((self.pipeline,) if self.pipeline else ()), *self.aliases)

    @property
    def fine_tunable(self) -> bool:
        return self.model_class is not None


TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("tokenize"),
    TaskSpec("embed", "feature-extraction", "bertkit.pipelines.feature_extraction:FeatureExtractionPipeline",
             aliases=("embeddings",)),
    TaskSpec("fill-mask", "fill-mask", "bertkit.pipelines.mask_filling:FillMaskPipeline",
             heads=("BertForMaskedLM", "BertForPreTraining"),
             needs="a masked-LM head (BertForMaskedLM or BertForPreTraining)"),
    TaskSpec("next-sentence", "next-sentence-prediction", "bertkit.pipelines.next_sentence:NextSentencePredictionPipeline",
             aliases=("nsp",), heads=("BertForNextSentencePrediction", "BertForPreTraining"),
             needs="a next-sentence head (BertForNextSentencePrediction or BertForPreTraining)"),
    TaskSpec("classify", "text-classification", "bertkit.pipelines.text_classification:TextClassificationPipeline",
             aliases=("sentiment-analysis",), heads=("BertForSequenceClassification",),
             needs="a sequence-classification head (BertForSequenceClassification; `bertkit finetune classify`)",
             model_class="BertForSequenceClassification",
             reader="bertkit.tasks.classification:read_task_file",
             evaluator="bertkit.tasks.evaluation:evaluate_classification_task", default_metric="accuracy"),
    TaskSpec("ner", "token-classification", "bertkit.pipelines.token_classification:TokenClassificationPipeline",
             heads=("BertForTokenClassification",),
             needs="a token-classification head (BertForTokenClassification; `bertkit finetune ner`)",
             model_class="BertForTokenClassification", reader="bertkit.tasks.ner:read_task_file",
             evaluator="bertkit.tasks.evaluation:evaluate_ner_task", default_metric="f1"),
    TaskSpec("qa", "question-answering", "bertkit.pipelines.question_answering:QuestionAnsweringPipeline",
             heads=("BertForQuestionAnswering",),
             needs="a question-answering head (BertForQuestionAnswering; `bertkit finetune qa`)",
             model_class="BertForQuestionAnswering", reader="bertkit.tasks.qa:read_task_file",
             evaluator="bertkit.tasks.evaluation:evaluate_qa_task", default_metric="f1"),
    TaskSpec("attention"),
)


def get_task(name: str) -> TaskSpec:
    """The task called `name` (its own name, its pipeline's or an alias); a clear error listing them otherwise."""
    for spec in TASKS:
        if name in spec.names:
            return spec
    known = sorted(n for spec in TASKS for n in spec.names)
    raise UserError(f"unknown task {name!r}; known tasks: {', '.join(known)}")


def fine_tunable_tasks() -> tuple[str, ...]:
    return tuple(spec.name for spec in TASKS if spec.fine_tunable)


def pipeline_tasks() -> tuple[TaskSpec, ...]:
    return tuple(spec for spec in TASKS if spec.pipeline)


def served_by(architecture: str) -> tuple[str, ...]:
    """The tasks a checkpoint of this class can serve: every encoder task, and those its head adds."""
    return tuple(spec.name for spec in TASKS if not spec.heads or architecture in spec.heads)


def head_architectures() -> tuple[str, ...]:
    """Every checkpoint class some task needs, plus the bare encoder."""
    return ("BertModel", *dict.fromkeys(head for spec in TASKS for head in spec.heads))


def task_of_architecture(architecture: str) -> TaskSpec | None:
    """The fine-tuning task whose head this checkpoint class is (None for encoders and pretraining heads)."""
    return next((spec for spec in TASKS if spec.model_class == architecture), None)


def resolve(reference: str) -> Any:
    """"module:attribute" -> the attribute (imported now)."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
