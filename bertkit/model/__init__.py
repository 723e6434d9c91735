"""The BERT model: config, encoder, task heads, HF checkpoints in and out, batched inference.

    from bertkit.model import BertModel
    model = BertModel.from_pretrained("path/to/folder")
"""
from __future__ import annotations

import os
from typing import Any

from .bert import BertModel, BertPreTrainedModel
from .config import NAMED_SIZES, BertConfig
from .heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from .inference import compile_for_inference, encode_batches
from .outputs import ModelOutput


class AutoConfig:
    """HF's AutoConfig for the seeds' code: `AutoConfig.from_pretrained(folder, **overrides)` gives a BertConfig.

    A config.json of another architecture (model_type other than "bert") is a ValueError naming it.
    """

    def __init__(self) -> None:
        raise TypeError("use AutoConfig.from_pretrained(folder)")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **overrides: Any) -> BertConfig:
        return BertConfig.from_pretrained(name_or_path, **overrides)


class _AutoModel:
    """HF's Auto* names for the seeds' code: from_pretrained / from_config build the matching Bert class."""

    model_class: type[BertPreTrainedModel] = BertModel

    def __init__(self) -> None:
        raise TypeError(f"use {type(self).__name__}.from_pretrained(folder) or .from_config(config)")

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> BertPreTrainedModel:
        return cls.model_class.from_pretrained(name_or_path, **kwargs)

    @classmethod
    def from_config(cls, config: BertConfig) -> BertPreTrainedModel:
        return cls.model_class(config)


class AutoModel(_AutoModel):
    model_class = BertModel


class AutoModelForMaskedLM(_AutoModel):
    model_class = BertForMaskedLM


class AutoModelForSequenceClassification(_AutoModel):
    model_class = BertForSequenceClassification


class AutoModelForTokenClassification(_AutoModel):
    model_class = BertForTokenClassification


class AutoModelForQuestionAnswering(_AutoModel):
    model_class = BertForQuestionAnswering


__all__ = [
    "AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForQuestionAnswering", "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification", "BertConfig", "BertForMaskedLM", "BertForMultipleChoice",
    "BertForNextSentencePrediction", "BertForPreTraining", "BertForQuestionAnswering",
    "BertForSequenceClassification", "BertForTokenClassification", "BertModel", "BertPreTrainedModel",
    "ModelOutput", "NAMED_SIZES", "compile_for_inference", "encode_batches",
]
