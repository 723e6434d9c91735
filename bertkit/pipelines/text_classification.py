"""Text classification (sentiment, topics, sentence pairs) with HuggingFace's call and output shapes.

    classifier = pipeline("text-classification", model="runs/sst2")
    classifier("a charming and often affecting journey")
    # [{'label': '1', 'score': 0.98}]
    classifier(["great", "awful"])                       # one dict per text
    classifier("great", top_k=None)                      # every label, best first
    classifier({"text": "A man sleeps.", "text_pair": "Nobody sleeps."})   # a sentence pair

Scores: softmax over the labels; sigmoid for multi-label models or a single output; raw values for
regression (as HuggingFace's `function_to_apply="default"`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from bertkit.errors import UserError
from bertkit.pipelines.base import Pipeline

FUNCTIONS = ("softmax", "sigmoid", "none")


def scores_from_logits(logits: np.ndarray, config: Any, function_to_apply: str | None = None) -> np.ndarray:
    """HuggingFace's default: regression -> raw, multi-label or one output -> sigmoid, else softmax."""
    if function_to_apply is None:
        problem = getattr(config, "problem_type", None)
        if problem == "regression":
            function_to_apply = "none"
        elif problem == "multi_label_classification" or config.num_labels == 1:
            function_to_apply = "sigmoid"
        else:
            function_to_apply = "softmax"
    if function_to_apply not in FUNCTIONS:
        raise UserError(f"function_to_apply must be one of {FUNCTIONS}, got {function_to_apply!r}")
    logits = np.asarray(logits, dtype=np.float64)
    if function_to_apply == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    if function_to_apply == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return logits


def _all_scores(params: dict[str, Any]) -> dict[str, Any]:
    """transformers 4's return_all_scores=True is top_k=None (every label, best first)."""
    params = dict(params)
    if params.pop("return_all_scores", False):
        params["top_k"] = None
    return params


class TextClassificationPipeline(Pipeline):
    model_class = "BertForSequenceClassification"
    parameters = ("top_k", "function_to_apply", "return_all_scores")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_params = _all_scores(self.default_params)

    def _legacy(self, params: dict[str, Any]) -> bool:
        # HuggingFace's legacy shape: without top_k a text gives [best]; with top_k a sorted list of dicts
        return "top_k" not in params and "top_k" not in self.default_params

    def inputs_of(self, inputs: Any, **params: Any) -> tuple[list[Any], bool, dict[str, Any]]:
        items, is_batch, params = super().inputs_of(inputs, **_all_scores(params))
        return items, is_batch, ({**params, "top_k": 1} if self._legacy(params) else params)

    def shape(self, results: list[Any], inputs: Any, is_batch: bool, params: dict[str, Any]) -> Any:
        if not self._legacy(params):
            return super().shape(results, inputs, is_batch, params)
        if is_batch:
            return [r[0] for r in results]
        return results[0] if isinstance(inputs, str) else results[0][0]  # HF: a text gives [dict], a pair dict

    def preprocess(self, batch: list[Any], **params: Any) -> dict:
        texts, pairs = [], []
        for item in batch:
            if isinstance(item, dict):
                if "text" not in item:
                    raise UserError(f"a pair input needs the keys 'text' and 'text_pair', got {sorted(item)}")
                texts.append(item["text"])
                pairs.append(item.get("text_pair"))
            elif isinstance(item, str):
                texts.append(item)
                pairs.append(None)
            else:
                raise UserError(f"text-classification takes a text, a {{'text', 'text_pair'}} dict or a list of "
                                 f"those, got {type(item).__name__}")
        if any(p is not None for p in pairs):
            if any(p is None for p in pairs):
                raise UserError("a batch mixes single texts and text pairs; send them in separate calls")
            return self.tokenize(texts, pairs)
        return self.tokenize(texts)

    def postprocess(self, encoded: dict, outputs: Any, batch: list[Any], top_k: int | None = 1,
                    function_to_apply: str | None = None, **params: Any) -> list[list[dict]]:
        if top_k is not None and top_k < 1:
            raise UserError(f"top_k must be at least 1 (or None for every label), got {top_k}")
        config = self.model.config
        scores = scores_from_logits(outputs.logits.float().cpu().numpy(), config, function_to_apply)
        results = []
        for row in scores:
            ranked = sorted(({"label": config.id2label[i], "score": float(s)} for i, s in enumerate(row)),
                            key=lambda r: r["score"], reverse=True)
            results.append(ranked if top_k is None else ranked[:top_k])
        return results
