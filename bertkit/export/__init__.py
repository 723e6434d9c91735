"""Export a bertkit model to ONNX and run it with ONNX Runtime (optional extra: pip install 'bertkit[onnx]').

    from bertkit.export import export_onnx, OrtModel
    path = export_onnx("path/to/folder", "model.onnx")                  # checked against PyTorch before it returns
    path = export_onnx("path/to/folder", "model.int8.onnx", quantize="int8")
    model = OrtModel(path, threads=2)
    logits = model(**tokenizer(texts, padding=True, return_tensors="np")).logits

    from bertkit.model import encode_batches                            # the same length bucketing as torch
    outputs = encode_batches(OrtModel("minilm.onnx"), tokenizer(texts)["input_ids"], batch_size=32)

Modules, each importing only those before it: `head_outputs` (what each model class outputs), `onnx` (the exporter,
the graph optimizer pass, int8, the check against PyTorch), `ort` (the ONNX Runtime runner; `encode_batches`
runs it through `OrtModel.encode_bucket`), `cache` (`cached_export`: a folder's export made once,
FOLDER/onnx/<class>.onnx; `load_ort_model`: what the pipelines' backend="onnxruntime" loads).
Names are imported lazily: importing this package needs neither onnx nor onnxruntime.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what an editor and a type checker see; at run time __getattr__ imports on first use
    from bertkit.export.cache import cached_export, copy_model_files, load_ort_model
    from bertkit.export.onnx import export_onnx, optimize_onnx, quantize_onnx, verify_onnx
    from bertkit.export.ort import OrtModel

_PUBLIC: dict[str, str] = {
    "export_onnx": "bertkit.export.onnx",
    "verify_onnx": "bertkit.export.onnx",
    "optimize_onnx": "bertkit.export.onnx",
    "quantize_onnx": "bertkit.export.onnx",
    "cached_export": "bertkit.export.cache",
    "copy_model_files": "bertkit.export.cache",
    "OrtModel": "bertkit.export.ort",
    "load_ort_model": "bertkit.export.cache",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bertkit.export' has no attribute {name!r}")
