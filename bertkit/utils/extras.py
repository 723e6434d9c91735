"""The optional dependencies, imported when a feature needs them, with the install command when they are missing.

    onnx = require_extra("onnx", "onnx", "ONNX export")          # MissingExtraError: pip install 'bertkit[onnx]'
    plt = pyplot("the report's charts")                         # matplotlib.pyplot on the file-only Agg backend
"""
from __future__ import annotations

import importlib
from typing import Any

from bertkit.errors import MissingExtraError

# extra -> the packages it installs (pyproject.toml's optional dependencies), for the "or:" half of the hint
EXTRAS = {"onnx": "onnxruntime onnx", "serve": "fastapi uvicorn", "plot": "matplotlib", "ner": "seqeval"}


def require_extra(module: str, extra: str, purpose: str) -> Any:
    """`module`, imported; or a `MissingExtraError` that says `purpose` needs it and how to install it."""
    try:
        return __import__(module, fromlist=["_"])  # the import statement's hook, which tests can stand in for
    except ImportError as error:
        raise MissingExtraError(
            f"{purpose} needs {module.split('.')[0]}, which is not installed: pip install 'bertkit[{extra}]' "
            f"(or: pip install {EXTRAS.get(extra, module)})"
        ) from error


def pyplot(purpose: str) -> Any:
    """matplotlib.pyplot drawing to files only (no display needed)."""
    matplotlib = require_extra("matplotlib", "plot", purpose)
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")
