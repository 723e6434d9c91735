"""Every task bertkit knows, described once: its names, the head it needs, its pipeline, how the server answers it,
and for the fine-tuning tasks the model class, the recipe, the file reader, the evaluation, the file predictor and
the default metric.

    from bertkit.tasks.registry import get_task
    spec = get_task("sentiment-analysis")        # any name: the server's, the pipeline's, or an alias
    spec.name, spec.pipeline, spec.model_class  # 'classify', 'text-classification', 'BertForSequenceClassification'

The pipelines (`pipeline(task)`), the commands (`finetune`, `predict`, `evaluate`), the evaluator and the server
read this table and nothing else per task: adding a task means adding one `TaskSpec` here and writing the
functions it names (tests/test_task_registry.py adds one and checks that no other edit is needed). Functions and
classes are named as "module:attribute" strings, so reading the table imports nothing and no layer is imported
out of order.
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
    summary: str = ""  # one line for `bertkit finetune --help` and the server's /docs
    # fine-tuning and prediction over files (`bertkit finetune TASK`, `bertkit predict`)
    recipe: str | None = None  # "module:function"(model_dir, train_file, eval_file, args, options, ..., **knobs)
    file_predictor: str | None = None  # "module:function"(model, tokenizer, source, output, settings, options) -> rows
    # the server: request schema and preparation (POST /<name>), and what the model call adds
    request_schema: str | None = None  # "module:Class" (a pydantic model)
    prepare: str | None = None  # "module:function"(service, body) -> Work
    runs_model: bool = True  # False: `prepare` answers the request itself (tokenize)
    on_encoder: bool = False  # served by the bare encoder, whatever head the checkpoint has (embeddings)
    folder_defaults: str | None = None  # "module:function"(folder) -> the pipeline's defaults read from the folder
    serve_params: tuple[tuple[str, Any], ...] = ()  # keywords the server's pipeline call always passes

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *((self.pipeline,) if self.pipeline else ()), *self.aliases)

    @property
    def fine_tunable(self) -> bool:
        return self.model_class is not None


SERVE = "bertkit.serve.prepare:prepare_"  # the server's request preparation, one function per task
SCHEMA = "bertkit.serve.schemas:"
FILES = "bertkit.pipelines.file_predictions:predict_"

TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("tokenize", summary="WordPiece tokens, ids and character offsets", request_schema=SCHEMA + "TokenizeRequest",
             prepare=SERVE + "tokenize", runs_model=False),
    TaskSpec("embed", "feature-extraction", "bertkit.pipelines.feature_extraction:FeatureExtractionPipeline",
             aliases=("embeddings",), summary="sentence embeddings (pooled token vectors)",
             request_schema=SCHEMA + "EmbedRequest", prepare=SERVE + "embed", on_encoder=True,
             folder_defaults="bertkit.pipelines.feature_extraction:folder_defaults"),
    TaskSpec("fill-mask", "fill-mask", "bertkit.pipelines.mask_filling:FillMaskPipeline",
             heads=("BertForMaskedLM", "BertForPreTraining"),
             needs="a masked-LM head (BertForMaskedLM or BertForPreTraining)", summary="predict the [MASK] token(s)",
             request_schema=SCHEMA + "FillMaskRequest", prepare=SERVE + "fill_mask"),
    TaskSpec("next-sentence", "next-sentence-prediction", "bertkit.pipelines.next_sentence:NextSentencePredictionPipeline",
             aliases=("nsp",), heads=("BertForNextSentencePrediction", "BertForPreTraining"),
             needs="a next-sentence head (BertForNextSentencePrediction or BertForPreTraining)",
             summary="does text_pair follow text? (IsNext / NotNext)", request_schema=SCHEMA + "NextSentenceRequest",
             prepare=SERVE + "next_sentence"),
    TaskSpec("classify", "text-classification", "bertkit.pipelines.text_classification:TextClassificationPipeline",
             aliases=("sentiment-analysis",), heads=("BertForSequenceClassification",),
             needs="a sequence-classification head (BertForSequenceClassification; `bertkit finetune classify`)",
             model_class="BertForSequenceClassification",
             reader="bertkit.tasks.classification:read_task_file",
             evaluator="bertkit.tasks.evaluation:evaluate_classification_task", default_metric="accuracy",
             summary="text classification: label and score (text / text-pair, multi-label, regression)",
             recipe="bertkit.train.recipes:finetune_classifier", file_predictor=FILES + "classification_file",
             request_schema=SCHEMA + "ClassifyRequest", prepare=SERVE + "classify",
             serve_params=(("top_k", None),)),  # every label, best first
    TaskSpec("ner", "token-classification", "bertkit.pipelines.token_classification:TokenClassificationPipeline",
             heads=("BertForTokenClassification",),
             needs="a token-classification head (BertForTokenClassification; `bertkit finetune ner`)",
             model_class="BertForTokenClassification", reader="bertkit.tasks.ner:read_task_file",
             evaluator="bertkit.tasks.evaluation:evaluate_ner_task", default_metric="f1",
             summary="named entities with type, score and character offsets (CoNLL or JSONL, BIO / IOBES)",
             recipe="bertkit.train.recipes:finetune_ner", file_predictor=FILES + "ner_file",
             request_schema=SCHEMA + "NerRequest", prepare=SERVE + "ner"),
    TaskSpec("qa", "question-answering", "bertkit.pipelines.question_answering:QuestionAnsweringPipeline",
             heads=("BertForQuestionAnswering",),
             needs="a question-answering head (BertForQuestionAnswering; `bertkit finetune qa`)",
             model_class="BertForQuestionAnswering", reader="bertkit.tasks.qa:read_task_file",
             evaluator="bertkit.tasks.evaluation:evaluate_qa_task", default_metric="f1",
             summary="extractive question answering: answer, score, start, end (SQuAD v1.1 / v2.0 / KorQuAD)",
             recipe="bertkit.train.recipes:finetune_qa", file_predictor=FILES + "qa_file",
             request_schema=SCHEMA + "QaRequest", prepare=SERVE + "qa"),
    TaskSpec("attention", summary="attention weights of every layer and head (for the attention view)",
             request_schema=SCHEMA + "AttentionRequest", prepare=SERVE + "attention"),
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
