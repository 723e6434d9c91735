"""TensorFlow's names for seed 001's code: `TFBertForMaskedLM`, `TFBertForNextSentencePrediction` (and
`TFBertModel`, `TFBertForSequenceClassification`) run bertkit's PyTorch model with TensorFlow tensors in and out.

    import tensorflow as tf
    from bertkit import TFBertForNextSentencePrediction, AutoTokenizer
    model = TFBertForNextSentencePrediction.from_pretrained("path/to/bert")
    encoding = tokenizer(prompt, next_sentence, return_tensors="tf")
    logits = model(encoding["input_ids"], token_type_ids=encoding["token_type_ids"])[0]
    tf.math.argmax(tf.keras.layers.Softmax()(logits), axis=-1).numpy()       # [0]: IsNext

transformers 5 dropped TensorFlow, so the seed's cells run nowhere else today. The weights are the PyTorch ones
(the same numbers as the PyTorch class); TensorFlow only carries the tensors across. It is the optional extra
`pip install 'bertkit[tf]'` (tensorflow-cpu), imported when one of these classes is used.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from bertkit import model as models
from bertkit.utils.extras import require_extra


def _tensorflow() -> Any:
    return require_extra("tensorflow", "tf", "the TF* classes (TensorFlow tensors in and out)")


def _to_torch(value: Any) -> Any:
    if value is None or isinstance(value, torch.Tensor):
        return value
    return torch.from_numpy(np.asarray(value.numpy() if hasattr(value, "numpy") else value))


class _TFWrapper:
    """A bertkit model behind TensorFlow tensors: called like HF's TF model, it returns the same output object with
    every tensor a `tf.Tensor`. `torch_model` is the model itself (pipelines take the wrapper as the model)."""

    torch_class: type = models.BertModel

    def __init__(self, torch_model: torch.nn.Module) -> None:
        self.torch_model = torch_model.eval()
        self.config = torch_model.config

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> _TFWrapper:
        _tensorflow()  # the extra's install hint before a long load
        kwargs.pop("from_pt", None)  # HF's TF flag: the weights are PyTorch's here anyway
        return cls(cls.torch_class.from_pretrained(name_or_path, **kwargs))

    def __call__(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None,
                 training: bool = False, **kwargs: Any) -> Any:
        tf = _tensorflow()
        if isinstance(input_ids, dict) or hasattr(input_ids, "keys"):  # model(encoding) as Keras code calls it
            kwargs = {**{k: v for k, v in input_ids.items() if k not in ("input_ids",)}, **kwargs}
            attention_mask, token_type_ids = kwargs.pop("attention_mask", attention_mask), kwargs.pop(
                "token_type_ids", token_type_ids)
            input_ids = input_ids["input_ids"]
        inputs = {"input_ids": _to_torch(input_ids), "attention_mask": _to_torch(attention_mask),
                  "token_type_ids": _to_torch(token_type_ids)}
        self.torch_model.train(training)
        with torch.set_grad_enabled(False):
            outputs = self.torch_model(**{k: v for k, v in inputs.items() if v is not None},
                                       **{k: _to_torch(v) for k, v in kwargs.items()})
        for key, value in list(outputs.items()):
            if isinstance(value, torch.Tensor):
                setattr(outputs, key, tf.convert_to_tensor(value.float().numpy()))
            elif isinstance(value, tuple):
                setattr(outputs, key, tuple(tf.convert_to_tensor(v.float().numpy()) for v in value))
        return outputs

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        self.torch_model.save_pretrained(folder)


class TFBertModel(_TFWrapper):
    torch_class = models.BertModel


class TFBertForMaskedLM(_TFWrapper):
    torch_class = models.BertForMaskedLM


class TFBertForNextSentencePrediction(_TFWrapper):
    torch_class = models.BertForNextSentencePrediction


class TFBertForSequenceClassification(_TFWrapper):
    torch_class = models.BertForSequenceClassification
