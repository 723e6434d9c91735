"""The BERT model: config, encoder, task heads, HF checkpoints in and out, batched inference.

    from bertkit.model import BertModel
    model = BertModel.from_pretrained("path/to/folder")
"""
from __future__ import annotations

import os
from typing import Any

from bertkit.errors import UserError

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

    @classmethod
    def for_model(cls, model_type: str, **kwargs: Any) -> BertConfig:
        """A fresh config of `model_type` (HF's AutoConfig.for_model); bertkit builds BERT only."""
        if model_type != BertConfig.model_type:
            raise UserError(f"bertkit builds BERT models only (model_type 'bert'), got {model_type!r}")
        return BertConfig(**kwargs)


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


def _auto(name: str, model_class: type[BertPreTrainedModel]) -> type[_AutoModel]:
    return type(name, (_AutoModel,), {"model_class": model_class, "__doc__": f"HF's {name}: builds {model_class.__name__}."})


AutoModel = _auto("AutoModel", BertModel)
AutoModelForMaskedLM = _auto("AutoModelForMaskedLM", BertForMaskedLM)
AutoModelForSequenceClassification = _auto("AutoModelForSequenceClassification", BertForSequenceClassification)
AutoModelForTokenClassification = _auto("AutoModelForTokenClassification", BertForTokenClassification)
AutoModelForQuestionAnswering = _auto("AutoModelForQuestionAnswering", BertForQuestionAnswering)
AutoModelForMultipleChoice = _auto("AutoModelForMultipleChoice", BertForMultipleChoice)
AutoModelForNextSentencePrediction = _auto("AutoModelForNextSentencePrediction", BertForNextSentencePrediction)
AutoModelForPreTraining = _auto("AutoModelForPreTraining", BertForPreTraining)

# HF's base names: every bertkit model is a BERT, so the bases are BERT's own
PreTrainedModel = BertPreTrainedModel
PretrainedConfig = BertConfig


__all__ = [
    "AutoConfig", "AutoModel", "AutoModelForMaskedLM", "AutoModelForMultipleChoice", "AutoModelForNextSentencePrediction",
    "AutoModelForPreTraining", "AutoModelForQuestionAnswering", "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification", "PreTrainedModel", "PretrainedConfig", "BertConfig", "BertForMaskedLM", "BertForMultipleChoice",
    "BertForNextSentencePrediction", "BertForPreTraining", "BertForQuestionAnswering",
    "BertForSequenceClassification", "BertForTokenClassification", "BertModel", "BertPreTrainedModel",
    "ModelOutput", "NAMED_SIZES", "compile_for_inference", "encode_batches",
]
