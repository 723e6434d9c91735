"""Feature extraction: token embeddings and sentence embeddings ([CLS], mean pooling, pooler) from any layer.

    extractor = pipeline("feature-extraction", model="path/to/all-MiniLM-L6-v2")
    extractor("I love Paris")                    # HuggingFace's shape: [1][tokens][hidden] nested lists
    extractor("I love Paris", pooling="mean", normalize=True)   # one sentence vector: [hidden]
    extractor.encode(["a", "b"], pooling="mean", normalize=True)   # numpy [n, hidden], like sentence-transformers

Mean pooling (average of the token vectors under the attention mask) + L2 normalization is the
sentence-transformers recipe of all-MiniLM-L6-v2; `sentence_transformers_settings(folder)` reads it
from a sentence-transformers folder. `layer` picks a hidden state: 0 is the embedding output,
-1 (default) the last layer, as in `outputs.hidden_states[layer]`. Also the `bertkit embed` command.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bertkit.errors import UserError
from bertkit.pipelines.base import (
    Pipeline,
)

POOLINGS = ("none", "cls", "mean", "max", "pooler")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, pooler_output: Any = None) -> torch.Tensor:
    """[batch, seq, hidden] token vectors -> [batch, hidden] sentence vectors."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        if pooler_output is None:
            raise UserError("this model has no pooler (add_pooling_layer=False); use pooling='cls' or 'mean'")
        return pooler_output
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "mean":  # sentence-transformers: sum over real tokens / their count
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if pooling == "max":  # padding must never win the max
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    raise UserError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


def sentence_transformers_settings(folder: str | Path) -> dict[str, Any]:
    """Pooling, normalization and max length of a sentence-transformers folder ({} when it is a plain model)."""
    folder = Path(folder)
    settings: dict[str, Any] = {}
    pooling_config = folder / "1_Pooling" / "config.json"
    if pooling_config.is_file():
        config = json.loads(pooling_config.read_text())
        for mode in ("cls", "mean", "max"):
            key = f"pooling_mode_{mode}_token" if mode == "cls" else f"pooling_mode_{mode}_tokens"
            if config.get(key):
                settings["pooling"] = mode
                break
    modules = folder / "modules.json"
    if modules.is_file():
        settings["normalize"] = any(m.get("type", "").endswith("Normalize") for m in json.loads(modules.read_text()))
    bert_config = folder / "sentence_bert_config.json"
    if bert_config.is_file():
        max_length = json.loads(bert_config.read_text()).get("max_seq_length")
        if max_length:
            settings["max_length"] = int(max_length)
    return settings


class FeatureExtractionPipeline(Pipeline):
    model_class = "BertModel"
    parameters = ("pooling", "normalize", "layer", "return_tensors", "max_length")

    def preprocess(self, batch: list[str], max_length: int | None = None, **params: Any) -> Any:
        for text in batch:
            if not isinstance(text, str):
                raise UserError(f"feature extraction takes a text or a list of texts, got {type(text).__name__}")
        return self.tokenize(batch, max_length=min(max_length or self.max_length, self.max_length))

    def forward(self, encoded: Any, layer: int = -1, **params: Any) -> Any:
        # hidden states of every layer only when a layer other than the last is asked for
        return self.run_model(encoded, output_hidden_states=layer != -1)

    def embed_batch(
        self, encoded: Any, outputs: Any, pooling: str = "none", normalize: bool = False, layer: int = -1
    ) -> torch.Tensor:
        """Sentence vectors [batch, hidden] (or token vectors [batch, seq, hidden] for pooling="none")."""
        check_pooling(pooling, layer)
        hidden = select_layer(outputs, layer)
        attention_mask = encoded["attention_mask"].to(hidden.device)
        vectors = hidden if pooling == "none" else pool(hidden, attention_mask, pooling, outputs.pooler_output)
        if normalize:
            vectors = F.normalize(vectors, p=2, dim=-1)
        return vectors.float().cpu()

    def postprocess(
        self,
        encoded: Any,
        outputs: Any,
        batch: list[str],
        pooling: str = "none",
        normalize: bool = False,
        layer: int = -1,
        return_tensors: bool = False,
        **params: Any,
    ) -> list[Any]:
        vectors = self.embed_batch(encoded, outputs, pooling, normalize, layer)
        results = []
        for row, vector in enumerate(vectors):
            if pooling == "none":  # HuggingFace's shape: [1, tokens, hidden] without the padding
                vector = vector[: int(encoded["attention_mask"][row].sum())].unsqueeze(0)
            results.append(vector if return_tensors else vector.tolist())
        return results

    def encode(
        self,
        sentences: str | list[str],
        pooling: str = "mean",
        normalize: bool = False,
        layer: int = -1,
        batch_size: int = 32,
        max_length: int | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Sentence embeddings as a numpy array [n, hidden] ([hidden] for one sentence).

        Runs through the model's `encode_batches`: sentences sorted by length so each batch pads only to
        its own longest, padding skipped in the token-wise layers; results come back in input order.
        """
        from bertkit.model import encode_batches

        check_pooling(pooling, layer)
        if pooling == "none":
            raise UserError("encode() gives one vector per sentence; for token vectors call the pipeline itself")
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not texts:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        for text in texts:
            if not isinstance(text, str):
                raise UserError(f"encode takes a text or a list of texts, got {type(text).__name__}")
        limit = min(max_length or self.max_length, self.max_length)
        encoded = self.tokenizer(texts, truncation=True, max_length=limit)
        outputs = encode_batches(
            self.model, encoded, batch_size=batch_size, output_hidden_states=layer != -1, progress=progress,
            precision=self.precision,
        )
        vectors = []
        for output in outputs:  # one unpadded sequence each: [tokens, hidden]
            hidden = select_layer(output, layer).unsqueeze(0)
            pooler = output.pooler_output.unsqueeze(0) if output.pooler_output is not None else None
            vectors.append(pool(hidden, torch.ones(hidden.shape[:2], device=hidden.device), pooling, pooler)[0])
        array = torch.stack(vectors)
        if normalize:
            array = F.normalize(array, p=2, dim=-1)
        array = array.float().cpu().numpy()
        return array[0] if single else array



def folder_defaults(folder: str | Path) -> dict[str, Any]:
    """The pipeline's pooling and normalization as the folder's sentence-transformers files set them (mean pooling,
    not normalized, for a plain model): what the server and `bertkit embed` use when the request says nothing."""
    settings = sentence_transformers_settings(folder)
    return {"pooling": settings.get("pooling", "mean"), "normalize": settings.get("normalize", False)}


def check_pooling(pooling: str, layer: int) -> None:
    if pooling not in POOLINGS:
        raise UserError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    if pooling == "pooler" and layer != -1:
        raise UserError("pooling='pooler' reads the pooler on the last layer; use layer=-1 or pooling='cls'")


def select_layer(outputs: Any, layer: int) -> torch.Tensor:
    """outputs.hidden_states[layer] (0 = embedding output), or the last layer for -1."""
    if layer == -1:
        return outputs.last_hidden_state
    states = outputs.hidden_states
    if not -len(states) <= layer < len(states):
        raise UserError(f"layer {layer} does not exist: the model has hidden states 0..{len(states) - 1}")
    return states[layer]
