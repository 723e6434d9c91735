"""`bertkit embed --model DIR "text" ...`: sentence or token vectors, printed or written to .json / .npy
(`bertkit.pipelines.feature_extraction`).

    bertkit embed --model all-MiniLM-L6-v2 "A man is eating." "A man eats food." --output vectors.npy
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bertkit.commands.options import add_backend_arguments, backend_options, read_texts
from bertkit.errors import UserError
from bertkit.pipelines.base import is_onnx_file, resolve_backend
from bertkit.pipelines.feature_extraction import POOLINGS, FeatureExtractionPipeline, sentence_transformers_settings


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
        raise UserError(f"--output must end in .json or .npy, got {output.name!r}")
    settings = sentence_transformers_settings(settings_folder)
    pooling = args.pooling or settings.get("pooling", "mean")
    normalize = settings.get("normalize", False) if args.normalize is None else args.normalize
    max_length = args.max_length or settings.get("max_length")
    extractor = FeatureExtractionPipeline(args.model, device=args.device, **backend_options(args))

    if pooling == "none":  # token vectors: ragged, so JSON with the tokens beside their vectors
        if output is not None and output.suffix == ".npy":
            raise UserError("token vectors differ in length per text; write them to .json, or pick a --pooling")
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
