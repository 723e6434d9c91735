"""Model outputs: dataclasses readable by attribute (`out.logits`), by key (`out["logits"]`) and by position
(`out[0]`, `out[:2]`), where positions skip the fields that are None, exactly as HuggingFace's ModelOutput does.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterator

import torch

Tensor = torch.Tensor


class ModelOutput:
    """Base of every output dataclass: a read-only mapping of its non-None fields, in declaration order."""

    def _items(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def keys(self) -> list[str]:
        return [k for k, _ in self._items()]

    def values(self) -> list[Any]:
        return [v for _, v in self._items()]

    def items(self) -> list[tuple[str, Any]]:
        return self._items()

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            return dict(self._items())[key]
        return self.to_tuple()[key]

    def __iter__(self) -> Iterator[str]:  # like a dict (and HF): iterating gives the keys
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: Tensor | None = None  # [batch, seq, hidden]
    pooler_output: Tensor | None = None  # [batch, hidden] (dense + tanh on [CLS])
    hidden_states: tuple[Tensor, ...] | None = None  # embeddings + one per layer, each [batch, seq, hidden]
    attentions: tuple[Tensor, ...] | None = None  # one per layer, [batch, heads, seq, seq]


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None  # [batch, seq, vocab]
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class NextSentencePredictorOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None  # [batch, 2]: index 0 = IsNext, 1 = NotNext
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class BertForPreTrainingOutput(ModelOutput):
    loss: Tensor | None = None  # masked-LM loss + next-sentence loss
    prediction_logits: Tensor | None = None  # [batch, seq, vocab]
    seq_relationship_logits: Tensor | None = None  # [batch, 2]
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None  # [batch, num_labels]
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None  # [batch, seq, num_labels]
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Tensor | None = None
    start_logits: Tensor | None = None  # [batch, seq]
    end_logits: Tensor | None = None  # [batch, seq]
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    loss: Tensor | None = None
    logits: Tensor | None = None  # [batch, num_choices]
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None
