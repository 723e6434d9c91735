"""The loss of a batch from what a model returned, and HF's label smoothing.

    loss = loss_of(model, batch, model(**batch))              # an output object, a dict or a tuple
    loss = label_smoothed_loss(model, batch, smoothing=0.1)   # TrainingArguments(label_smoothing_factor=0.1)
"""
from __future__ import annotations

from typing import Any

import torch

from bertkit.errors import UserError


def loss_of(model: torch.nn.Module, inputs: dict[str, torch.Tensor], outputs: Any) -> torch.Tensor:
    """The loss in `outputs`: an output object or dict with `loss`, or a tuple whose first element is the loss, as
    HF's Trainer accepts; a clear error when the model computed none."""
    loss = outputs["loss"] if hasattr(outputs, "keys") else outputs[0] if isinstance(outputs, (tuple, list)) else None
    if not isinstance(loss, torch.Tensor):
        raise UserError(f"{type(model).__name__} returned no loss for a training batch with inputs "
                        f"{sorted(inputs)}: pass labels the model uses, or override Trainer.compute_loss")
    return loss


def label_smoothed_loss(model: torch.nn.Module, inputs: dict[str, torch.Tensor], smoothing: float) -> torch.Tensor:
    """HF's label smoothing: the model runs without labels, and the cross-entropy over its logits puts `smoothing`
    of each target's weight evenly on every class (labels -100 ignored)."""
    labels = inputs["labels"]
    outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
    logits = outputs["logits"] if hasattr(outputs, "keys") else outputs[0]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                             ignore_index=-100, label_smoothing=smoothing)
