"""Next-sentence prediction: does sentence B follow sentence A? (BERT's second pretraining task)

    nsp = pipeline("next-sentence-prediction", model="path/to/folder")
    nsp("I am going outside.", "I will be back after 6.")
    # {'label': 'IsNext', 'score': 0.98, 'probabilities': {'IsNext': 0.98, 'NotNext': 0.02}}

A pair is given as two arguments, a (A, B) tuple, or {"text": A, "text_pair": B}; a list of pairs gives
a list of results. Class 0 is IsNext and 1 is NotNext, as in HuggingFace's BertForNextSentencePrediction
(and Google's checkpoints). HuggingFace has no NSP pipeline; the name is ours. Also `bertkit nsp`.
"""
from __future__ import annotations

from typing import Any

from bertkit.errors import UserError
from bertkit.pipelines.base import Pipeline

LABELS = ("IsNext", "NotNext")


def relationship_logits(outputs: Any):
    """NSP logits of a BertForNextSentencePrediction (`logits`) or BertForPreTraining output."""
    logits = getattr(outputs, "seq_relationship_logits", None)
    return logits if logits is not None else outputs.logits


def as_pair(item: Any) -> tuple[str, str]:
    if isinstance(item, dict) and "text" in item and "text_pair" in item:
        item = (item["text"], item["text_pair"])
    if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(text, str) for text in item):
        return item[0], item[1]
    raise UserError(
        f"next-sentence prediction takes a sentence pair: nsp(A, B), nsp((A, B)) or "
        f"nsp({{'text': A, 'text_pair': B}}), or a list of pairs; got {item!r}"
    )


class NextSentencePredictionPipeline(Pipeline):
    model_class = "BertForNextSentencePrediction"

    def inputs_of(self, inputs: Any, text_pair: str | list[str] | None = None,
                  **params: Any) -> tuple[list[Any], bool, dict[str, Any]]:
        if text_pair is not None:  # nsp(A, B) or nsp([A1, A2], [B1, B2])
            if isinstance(inputs, list) != isinstance(text_pair, list):
                raise UserError("give text and text_pair both as strings or both as lists of the same length")
            if isinstance(inputs, list):
                if len(inputs) != len(text_pair):
                    raise UserError(f"{len(inputs)} first sentences but {len(text_pair)} second sentences")
                inputs = list(zip(inputs, text_pair))
            else:
                inputs = (inputs, text_pair)
        return super().inputs_of(inputs, **params)

    def preprocess(self, batch: list[Any], **params: Any) -> dict:
        pairs = [as_pair(item) for item in batch]
        return self.tokenize([a for a, _ in pairs], [b for _, b in pairs])

    def postprocess(self, encoded: dict, outputs: Any, batch: list[Any], **params: Any) -> list[dict]:
        probabilities = relationship_logits(outputs).float().softmax(dim=-1).cpu().tolist()
        results = []
        for row in probabilities:
            best = max(range(len(LABELS)), key=lambda index: row[index])
            results.append({
                "label": LABELS[best],
                "score": row[best],
                "probabilities": dict(zip(LABELS, row)),
            })
        return results
