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

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bertkit.pipelines.base import (
    Pipeline,
    add_backend_arguments,
    backend_options,
    is_onnx_file,
    read_texts,
    resolve_backend,
)

POOLINGS = ("none", "cls", "mean", "max", "pooler")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str, pooler_output: Any = None) -> torch.Tensor:
    """[batch, seq, hidden] token vectors -> [batch, hidden] sentence vectors."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        if pooler_output is None:
            raise ValueError("this model has no pooler (add_pooling_layer=False); use pooling='cls' or 'mean'")
        return pooler_output
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "mean":  # sentence-transformers: sum over real tokens / their count
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if pooling == "max":  # padding must never win the max
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


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
                raise ValueError(f"feature extraction takes a text or a list of texts, got {type(text).__name__}")
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
            raise ValueError("encode() gives one vector per sentence; for token vectors call the pipeline itself")
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not texts:
            return np.zeros((0, self.model.config.hidden_size), dtype=np.float32)
        for text in texts:
            if not isinstance(text, str):
                raise ValueError(f"encode takes a text or a list of texts, got {type(text).__name__}")
        limit = min(max_length or self.max_length, self.max_length)
        encoded = self.tokenizer(texts, truncation=True, max_length=limit)
        outputs = encode_batches(
            self.model, encoded, batch_size=batch_size, output_hidden_states=layer != -1, progress=progress
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


def check_pooling(pooling: str, layer: int) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    if pooling == "pooler" and layer != -1:
        raise ValueError("pooling='pooler' reads the pooler on the last layer; use layer=-1 or pooling='cls'")


def select_layer(outputs: Any, layer: int) -> torch.Tensor:
    """outputs.hidden_states[layer] (0 = embedding output), or the last layer for -1."""
    if layer == -1:
        return outputs.last_hidden_state
    states = outputs.hidden_states
    if not -len(states) <= layer < len(states):
        raise ValueError(f"layer {layer} does not exist: the model has hidden states 0..{len(states) - 1}")
    return states[layer]


# ---- the `bertkit embed` command ----

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", required=True,
                        help="model folder (HuggingFace or sentence-transformers layout), or an .onnx file (onnxruntime)")
    parser.add_argument("text", nargs="*", help="text(s) to embed; or use --file")
    parser.add_argument("--file", help="read one text per line from this file")
    parser.add_argument(
        "--pooling", choices=POOLINGS,
        help="sentence vector: mean, cls, max, pooler; none = token vectors "
        "(default: the folder's sentence-transformers setting, else mean)",
    )
    normalize = parser.add_mutually_exclusive_group()
    normalize.add_argument("--normalize", dest="normalize", action="store_true", default=None, help="L2-normalize")
    normalize.add_argument("--no-normalize", dest="normalize", action="store_false", help="do not L2-normalize")
    parser.add_argument("--layer", type=int, default=-1, help="hidden state to read: 0 = embeddings, -1 = last (default)")
    parser.add_argument("--max-length", type=int, help="truncate texts to this many tokens")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", "-o", help="write the vectors to this .json or .npy file")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    add_backend_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bertkit.files import require_folder

    if is_onnx_file(args.model):  # an exported file: its settings and tokenizer sit beside it
        args.backend = resolve_backend(args.backend, args.model)
        settings_folder = Path(args.model).parent
    else:
        settings_folder = require_folder(args.model, "--model")  # a file or a missing path, said before anything loads
    texts = read_texts(args.text, args.file)
    output = Path(args.output) if args.output else None
    if output is not None and output.suffix not in (".json", ".npy"):
        raise ValueError(f"--output must end in .json or .npy, got {output.name!r}")
    settings = sentence_transformers_settings(settings_folder)
    pooling = args.pooling or settings.get("pooling", "mean")
    normalize = settings.get("normalize", False) if args.normalize is None else args.normalize
    max_length = args.max_length or settings.get("max_length")
    extractor = FeatureExtractionPipeline(args.model, device=args.device, **backend_options(args))

    if pooling == "none":  # token vectors: ragged, so JSON with the tokens beside their vectors
        if output is not None and output.suffix == ".npy":
            raise ValueError("token vectors differ in length per text; write them to .json, or pick a --pooling")
        vectors = extractor(texts, pooling="none", normalize=normalize, layer=args.layer,
                            max_length=max_length, batch_size=args.batch_size)
        records = []
        for text, vector in zip(texts, vectors):
            ids = extractor.tokenizer(text, truncation=True, max_length=max_length or extractor.max_length)["input_ids"]
            records.append({"text": text, "tokens": extractor.tokenizer.convert_ids_to_tokens(ids), "vectors": vector[0]})
        write_or_print(records, output, f"{len(texts)} text(s), token vectors of size {len(vectors[0][0][0])}")
        return 0

    array = extractor.encode(texts, pooling=pooling, normalize=normalize, layer=args.layer,
                             batch_size=args.batch_size, max_length=max_length, progress=len(texts) > args.batch_size)
    if output is not None and output.suffix == ".npy":
        output.parent.mkdir(parents=True, exist_ok=True)
        np.save(output, array)
        print(f"wrote {output} ({array.shape[0]} x {array.shape[1]}, {pooling} pooling, normalized={normalize})")
        return 0
    if output is not None:
        records = [{"text": text, "embedding": vector.tolist()} for text, vector in zip(texts, array)]
        write_or_print(records, output, f"{array.shape[0]} x {array.shape[1]}, {pooling} pooling, normalized={normalize}")
        return 0
    print(f"{array.shape[0]} text(s) -> {array.shape[1]}-dim vectors ({pooling} pooling, normalized={normalize})")
    for text, vector in zip(texts, array):
        head = " ".join(f"{value:+.4f}" for value in vector[:6])
        print(f"  [{head} ...] |v|={np.linalg.norm(vector):.3f}  {text}")
    if len(texts) > 1:  # the cosine similarities are what people look at first
        unit = array / np.linalg.norm(array, axis=1, keepdims=True).clip(min=1e-12)
        print("cosine similarity:")
        for i, row in enumerate(unit @ unit.T):
            print(f"  {i + 1:>3}: " + " ".join(f"{value:.3f}" for value in row))
    return 0


def write_or_print(records: list[dict], output: Path | None, summary: str) -> None:
    if output is None:
        print(json.dumps(records, ensure_ascii=False))
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {output} ({summary})")
