"""bertkit: BERT end to end, with the names users already type.

    from bertkit import BertTokenizer, BertModel
    tokenizer = BertTokenizer.from_pretrained("path/to/folder")

Names are imported lazily so that `import bertkit` (and the CLI's --help) does not pay for torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # what an editor and a type checker see; at run time __getattr__ imports on first use
    from bertkit.data.collators import (
        DataCollatorForLanguageModeling,
        DataCollatorForMultipleChoice,
        DataCollatorForTokenClassification,
        DataCollatorForWholeWordMask,
        DataCollatorWithPadding,
        default_data_collator,
    )
    from bertkit.model import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForMultipleChoice,
        AutoModelForNextSentencePrediction,
        AutoModelForPreTraining,
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        BertConfig,
        BertForMaskedLM,
        BertForMultipleChoice,
        BertForNextSentencePrediction,
        BertForPreTraining,
        BertForQuestionAnswering,
        BertForSequenceClassification,
        BertForTokenClassification,
        BertModel,
        BertPreTrainedModel,
        PretrainedConfig,
        PreTrainedModel,
    )
    from bertkit.pipelines import FillMaskPipeline, pipeline
    from bertkit.tf_compat import (
        TFBertForMaskedLM,
        TFBertForNextSentencePrediction,
        TFBertForSequenceClassification,
        TFBertModel,
    )
    from bertkit.tokenizer import AddedToken, AutoTokenizer, BatchEncoding, BertTokenizer, BertTokenizerFast
    from bertkit.tokenizer.vocab_trainer import train_wordpiece
    from bertkit.train.arguments import IntervalStrategy, TrainingArguments, set_seed
    from bertkit.train.callbacks import (
        EarlyStoppingCallback,
        EvalPrediction,
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainOutput,
    )
    from bertkit.train.optim import (
        AdamW,
        get_constant_schedule_with_warmup,
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
        get_scheduler,
    )
    from bertkit.train.trainer import Trainer
    from bertkit.utils.cli_flags import HfArgumentParser

# public name -> module that defines it
_PUBLIC: dict[str, str] = {
    # tokenizer
    "BertTokenizer": "bertkit.tokenizer",
    "BertTokenizerFast": "bertkit.tokenizer",
    "AutoTokenizer": "bertkit.tokenizer",
    "BatchEncoding": "bertkit.tokenizer",
    "AddedToken": "bertkit.tokenizer",
    "train_wordpiece": "bertkit.tokenizer.vocab_trainer",
    # model
    "BertConfig": "bertkit.model",
    "BertModel": "bertkit.model",
    "BertForMaskedLM": "bertkit.model",
    "BertForNextSentencePrediction": "bertkit.model",
    "BertForPreTraining": "bertkit.model",
    "BertForSequenceClassification": "bertkit.model",
    "BertForTokenClassification": "bertkit.model",
    "BertForQuestionAnswering": "bertkit.model",
    "BertForMultipleChoice": "bertkit.model",
    "AutoModel": "bertkit.model",
    "AutoModelForMaskedLM": "bertkit.model",
    "AutoModelForSequenceClassification": "bertkit.model",
    "AutoModelForTokenClassification": "bertkit.model",
    "AutoModelForQuestionAnswering": "bertkit.model",
    "AutoModelForMultipleChoice": "bertkit.model",
    "AutoModelForNextSentencePrediction": "bertkit.model",
    "AutoModelForPreTraining": "bertkit.model",
    "PreTrainedModel": "bertkit.model",
    "PretrainedConfig": "bertkit.model",
    "BertPreTrainedModel": "bertkit.model",
    # seed 001's TensorFlow names (bertkit's PyTorch model, TensorFlow tensors in and out; the [tf] extra)
    "TFBertModel": "bertkit.tf_compat",
    "TFBertForMaskedLM": "bertkit.tf_compat",
    "TFBertForNextSentencePrediction": "bertkit.tf_compat",
    "TFBertForSequenceClassification": "bertkit.tf_compat",
    # pipelines
    "pipeline": "bertkit.pipelines",
    "FillMaskPipeline": "bertkit.pipelines",
    "AutoConfig": "bertkit.model",
    # fine-tuning with HuggingFace's Trainer surface
    "Trainer": "bertkit.train.trainer",
    "TrainingArguments": "bertkit.train.arguments",
    "TrainOutput": "bertkit.train.callbacks",
    "EvalPrediction": "bertkit.train.callbacks",
    "TrainerCallback": "bertkit.train.callbacks",
    "EarlyStoppingCallback": "bertkit.train.callbacks",
    "set_seed": "bertkit.train.arguments",
    "IntervalStrategy": "bertkit.train.arguments",
    "TrainerState": "bertkit.train.callbacks",
    "TrainerControl": "bertkit.train.callbacks",
    "HfArgumentParser": "bertkit.utils.cli_flags",
    "default_data_collator": "bertkit.data.collators",
    "DataCollatorForMultipleChoice": "bertkit.data.collators",
    "AdamW": "bertkit.train.optim",
    "get_scheduler": "bertkit.train.optim",
    "get_linear_schedule_with_warmup": "bertkit.train.optim",
    "get_cosine_schedule_with_warmup": "bertkit.train.optim",
    "get_constant_schedule_with_warmup": "bertkit.train.optim",
    "DataCollatorWithPadding": "bertkit.data.collators",
    "DataCollatorForLanguageModeling": "bertkit.data.collators",
    "DataCollatorForWholeWordMask": "bertkit.data.collators",
    "DataCollatorForTokenClassification": "bertkit.data.collators",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name == "logging":  # `from transformers import logging`: the verbosity helpers, bertkit.utils.logging
        return importlib.import_module("bertkit.utils.logging")
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bertkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__ + ["__version__"]
