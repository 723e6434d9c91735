"""The ONNX Runtime backend: `OrtModel` runs an exported file like the PyTorch model, and `encode_batches` keeps
`bertkit.model.encode_batches`' contract (length bucketing, one unpadded output per input, in input order).

    model = OrtModel("minilm.onnx", threads=2)
    out = model(input_ids=ids, attention_mask=mask)          # ModelOutput of torch tensors, HF's field names
    vectors = encode_batches(model, tokenizer(texts)["input_ids"], batch_size=32)

Files written by `export_onnx` carry the architecture and config in their metadata, so `OrtModel.config` and the
output class match the PyTorch model. A file exported elsewhere (e.g. from a HuggingFace model) runs too: its
outputs come back as a plain dict-like BaseModelOutputWithPooling when it has last_hidden_state.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bertkit.errors import MissingFileError, UserError
from bertkit.model.config import BertConfig
from bertkit.model.outputs import BaseModelOutputWithPooling, ModelOutput

from .head_outputs import HEADS, require

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OrtModel:
    """An ONNX file in an `onnxruntime.InferenceSession` (CPU by default).

    threads: intra-op threads (None: ONNX Runtime's default, one per physical core); inter-op is 1 (the graph
    is a chain, sequential execution). optimization_level: "all" (default) applies every graph rewrite ONNX
    Runtime has at load time, including the layout-specific ones.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        optimization_level: str = "all",
        providers: list[str] | None = None,
    ) -> None:
        ort = require("onnxruntime")
        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"no ONNX file at {str(self.path)!r}; write one with "
                                    "bertkit.export.export_onnx(model_folder, path) (or `bertkit export onnx`)")
        if optimization_level not in OPTIMIZATION_LEVELS:
            raise UserError(f"optimization_level must be one of {OPTIMIZATION_LEVELS}, got {optimization_level!r}")
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel,
            {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
             "all": "ORT_ENABLE_ALL"}[optimization_level])
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
            raise UserError(f"ONNX Runtime cannot load {str(self.path)!r}: {error}") from error
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.architecture: str | None = meta.get("bertkit.architecture")
        self.config: BertConfig | None = (BertConfig.from_dict(json.loads(meta["bertkit.config"]))
                                          if "bertkit.config" in meta else None)
        self.quantize: str | None = meta.get("bertkit.quantize")

    def __repr__(self) -> str:
        return f"OrtModel({str(self.path)!r}, architecture={self.architecture}, outputs={self.output_names})"

    def run(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> dict[str, np.ndarray]:
        """Padded [batch, seq] ids (numpy, torch or lists) -> {output name: numpy array}. A missing mask means no
        padding; missing segment ids are zeros; an input the graph does not have is not fed."""
        ids = np.ascontiguousarray(_as_int64(input_ids))
        if ids.ndim != 2:
            raise UserError(f"input_ids must be [batch, seq], got shape {ids.shape}")
        given = {"input_ids": ids,
                 "attention_mask": _as_int64(attention_mask) if attention_mask is not None else np.ones_like(ids),
                 "token_type_ids": _as_int64(token_type_ids) if token_type_ids is not None else np.zeros_like(ids)}
        feed = {name: given[name] for name in self.input_names}
        return dict(zip(self.output_names, self.session.run(None, feed)))

    def encode_bucket(self, input_ids: np.ndarray, attention_mask: np.ndarray,
                      token_type_ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(last_hidden_state, pooler_output) of one padded batch: what `bertkit.model.encode_batches` runs
        (length bucketing, results in input order) when handed this model instead of a torch one."""
        if "last_hidden_state" not in self.output_names:
            raise UserError(f"{self.path} is not an encoder export (its outputs are {self.output_names}); export "
                             "the encoder with export_onnx(BertModel.from_pretrained(folder), path)")
        out = self.run(input_ids, attention_mask, token_type_ids)
        pooled = out.get("pooler_output")
        return torch.from_numpy(out["last_hidden_state"]), torch.from_numpy(pooled) if pooled is not None else None

    def __call__(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None,
                 **ignored: Any) -> ModelOutput:
        """Like the PyTorch model's forward (return_dict=True): a ModelOutput of torch tensors with HF's names."""
        outputs = {name: torch.from_numpy(value) for name, value in self.run(input_ids, attention_mask, token_type_ids).items()}
        output_class = HEADS[self.architecture].output_class if self.architecture in HEADS else BaseModelOutputWithPooling
        return output_class(**outputs)


def _as_int64(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.int64)
