"""Serving and seeing: the HTTP server (`bertkit serve`), its dynamic batcher, the web page, and the
attention view (`bertkit attention`). See docs/serving.md.

    from bertkit.serve import ModelService, create_app, attention_html

The server needs the [serve] extra (fastapi, uvicorn); it is imported only when an app is created,
so the batcher and the attention view work without it. Names are imported lazily (no torch on import).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what an editor and a type checker see; at run time __getattr__ imports on first use
    from bertkit.serve.app import background_server, create_app
    from bertkit.serve.attention_view import attention_data, attention_html
    from bertkit.serve.batcher import DynamicBatcher
    from bertkit.serve.service import Limits, ModelService

_PUBLIC = {
    "create_app": "bertkit.serve.app",
    "background_server": "bertkit.serve.app",
    "ModelService": "bertkit.serve.service",
    "Limits": "bertkit.serve.service",
    "DynamicBatcher": "bertkit.serve.batcher",
    "attention_data": "bertkit.serve.attention_view",
    "attention_html": "bertkit.serve.attention_view",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bertkit.serve' has no attribute {name!r}")
