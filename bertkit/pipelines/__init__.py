"""`pipeline(task, model=..., tokenizer=...)`: a pretrained or fine-tuned model, ready to call.

    from bertkit import pipeline
    unmasker = pipeline("fill-mask", model="path/to/folder")
    unmasker("Paris is the [MASK] of France.", top_k=3)
    unmasker = pipeline("fill-mask", model="path/to/folder", backend="onnxruntime")   # same outputs, ONNX Runtime

Task names are HuggingFace's; "next-sentence-prediction" is ours (HuggingFace has no such pipeline).
Each task's module is imported only when that task is asked for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bertkit.errors import UserError
from bertkit.pipelines.base import Pipeline
from bertkit.tasks import registry


def pipeline_class(task: str) -> type[Pipeline]:
    """The pipeline class of `task` (any of its names in `bertkit.tasks.registry`), read when asked."""
    spec = next((s for s in registry.pipeline_tasks() if task in s.names), None)
    if spec is None:
        known = ", ".join(sorted(name for s in registry.pipeline_tasks() for name in s.names))
        raise UserError(f"unknown task {task!r}; known tasks: {known}")
    return registry.resolve(spec.pipeline_class)


def pipeline(
    task: str,
    model: str | Path | torch.nn.Module | Any = None,
    tokenizer: Any = None,
    device: str | int | torch.device | None = None,
    backend: str | None = None,
    **kwargs: Any,
) -> Pipeline:
    """Build the pipeline for `task` from a model folder or object (tokenizer defaults to the model folder).

    backend: "torch" (default) or "onnxruntime" (the default for an .onnx file or an `OrtModel`); with
    onnxruntime a folder is exported once to FOLDER/onnx/<class>.onnx and reused (see `bertkit.pipelines.base`).
    Extra keywords are the pipeline's defaults (e.g. `top_k=3`, `batch_size=32`, `pooling="mean"`), and
    `threads=` (ONNX Runtime's threads).
    """
    cls = pipeline_class(task)
    if model is None:
        raise UserError(
            f"pipeline({task!r}) needs model=<folder or model object>: bertkit downloads nothing, "
            "so point it at a local folder in HuggingFace layout (config.json + weights + vocab.txt)"
        )
    return cls(model=model, tokenizer=tokenizer, device=device, backend=backend, **kwargs)


def __getattr__(name: str) -> Any:
    # FillMaskPipeline (and the other pipeline classes) without importing every task module up front
    for spec in registry.pipeline_tasks():
        if spec.pipeline_class.endswith(":" + name):
            return registry.resolve(spec.pipeline_class)
    raise AttributeError(f"module 'bertkit.pipelines' has no attribute {name!r}")


__all__ = ["pipeline", "pipeline_class", "Pipeline", "FillMaskPipeline"]
