"""`pipeline(task, model=..., tokenizer=...)`: a pretrained or fine-tuned model, ready to call.

    from bertkit import pipeline
    unmasker = pipeline("fill-mask", model="path/to/folder")
    unmasker("Paris is the [MASK] of France.", top_k=3)
    unmasker = pipeline("fill-mask", model="path/to/folder", backend="onnxruntime")   # same outputs, ONNX Runtime

Task names are HuggingFace's; "next-sentence-prediction" is ours (HuggingFace has no such pipeline).
Each task's module is imported only when that task is asked for.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from bertkit.errors import UserError
from bertkit.pipelines.base import Pipeline
from bertkit.tasks.registry import pipeline_tasks

# pipeline task name -> (module, class), and alias -> task name: both read off bertkit.tasks.registry
TASKS: dict[str, tuple[str, str]] = {spec.pipeline: tuple(spec.pipeline_class.split(":"))  # type: ignore[misc]
                                     for spec in pipeline_tasks()}
ALIASES: dict[str, str] = {name: spec.pipeline for spec in pipeline_tasks() for name in spec.names  # type: ignore[misc]
                           if name != spec.pipeline}


def pipeline_class(task: str) -> type[Pipeline]:
    name = ALIASES.get(task, task)
    if name not in TASKS:
        known = ", ".join(sorted([*TASKS, *ALIASES]))
        raise UserError(f"unknown task {task!r}; known tasks: {known}")
    module_name, class_name = TASKS[name]
    return getattr(importlib.import_module(module_name), class_name)


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
    for module_name, class_name in TASKS.values():
        if class_name == name:
            return getattr(importlib.import_module(module_name), class_name)
    raise AttributeError(f"module 'bertkit.pipelines' has no attribute {name!r}")


__all__ = ["pipeline", "pipeline_class", "Pipeline", "FillMaskPipeline", "TASKS"]
