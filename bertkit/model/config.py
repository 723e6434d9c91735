"""BertConfig: the shape of a BERT model, read from and written to HuggingFace's config.json.

    config = BertConfig.from_size("tiny", vocab_size=8000)      # named sizes from the BERT paper's table
    config = BertConfig.from_pretrained("path/to/folder")       # HF config.json
    config.save_pretrained("out/")

Keys this class does not know (e.g. `transformers_version`, `gradient_checkpointing`) are kept as attributes
and written back, so a config.json survives a round trip through bertkit unchanged.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from bertkit.errors import MissingFileError, UserError
from bertkit.files import read_json_object

CONFIG_NAME = "config.json"

# name -> (layers, hidden, heads); intermediate size is 4 * hidden as in the paper (Turc et al. 2019 for the small ones)
NAMED_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}

# hidden_act values BertModel understands (HF names) -> (torch.nn class name, keyword arguments); "gelu" is the
# exact erf GELU of the original BERT, the others approximate it with tanh
ACTIVATIONS: dict[str, tuple[str, dict]] = {
    "gelu": ("GELU", {}), "gelu_new": ("GELU", {"approximate": "tanh"}),
    "gelu_pytorch_tanh": ("GELU", {"approximate": "tanh"}), "gelu_fast": ("GELU", {"approximate": "tanh"}),
    "relu": ("ReLU", {}), "silu": ("SiLU", {}), "swish": ("SiLU", {}), "tanh": ("Tanh", {}),
}

# every field BertConfig knows, with HF's defaults (bert-base-uncased)
_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "classifier_dropout": None,
    "tie_word_embeddings": True,
    "problem_type": None,
    "output_hidden_states": False,
    "output_attentions": False,
    "return_dict": True,
    "architectures": None,
    "model_type": "bert",
}
_PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")


# where and how this process loaded the config: not part of what is saved
LOAD_STATE = ("_loaded_from", "_attn_implementation")


class BertConfig:
    """Hyper-parameters of a BERT model; attribute names and defaults are HuggingFace's."""

    model_type = "bert"

    def __init__(self, **kwargs: Any) -> None:
        # labels first: num_labels is derived from id2label (HF keeps the two in step)
        id2label = kwargs.pop("id2label", None)
        label2id = kwargs.pop("label2id", None)
        num_labels = kwargs.pop("num_labels", None)
        if "dtype" in kwargs and "torch_dtype" not in kwargs:  # transformers 5 writes "dtype"
            kwargs["torch_dtype"] = kwargs.pop("dtype")
        for key, default in _DEFAULTS.items():
            setattr(self, key, copy.deepcopy(kwargs.pop(key, default)))
        for key, value in kwargs.items():  # unknown keys are kept and written back
            setattr(self, key, value)

        if id2label is not None:
            self.id2label = {int(k): str(v) for k, v in dict(id2label).items()}
            if num_labels is not None and num_labels != len(self.id2label):
                raise UserError(
                    f"num_labels={num_labels} but id2label has {len(self.id2label)} entries: pass one of them, or both in agreement"
                )
        else:
            self.num_labels = 2 if num_labels is None else num_labels
        if label2id is not None:
            self.label2id = {str(k): int(v) for k, v in dict(label2id).items()}
        else:
            self.label2id = {label: i for i, label in self.id2label.items()}
        self.validate()

    # labels -------------------------------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        if not isinstance(n, int) or n < 1:
            raise UserError(f"num_labels must be a positive integer, got {n!r}")
        if getattr(self, "id2label", None) is None or len(self.id2label) != n:
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
            self.label2id = {label: i for i, label in self.id2label.items()}

    @property
    def use_return_dict(self) -> bool:  # transformers 4's name
        return bool(self.return_dict)

    @property
    def name_or_path(self) -> str:
        """Where the config was loaded from ("" for a fresh one), as HF records it."""
        return str(getattr(self, "_loaded_from", getattr(self, "_name_or_path", "")))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def validate(self) -> None:
        """Raise ValueError for shapes no BERT can have."""
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"config.{key} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise UserError(
                f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_attention_heads}: "
                "each head gets hidden_size / num_attention_heads dimensions, choose sizes that divide"
            )
        if self.model_type != "bert":
            raise UserError(
                f"this is a {self.model_type!r} config (model_type in config.json); bertkit implements BERT "
                "(model_type 'bert') only: use a BERT checkpoint"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise UserError(f"hidden_act={self.hidden_act!r} is not supported; use one of {', '.join(ACTIVATIONS)}")
        if self.position_embedding_type != "absolute":
            raise UserError(
                f"position_embedding_type={self.position_embedding_type!r} is not supported: bertkit implements "
                "BERT's learned absolute positions only"
            )
        if self.problem_type not in _PROBLEM_TYPES:
            raise UserError(f"problem_type={self.problem_type!r}; use one of {_PROBLEM_TYPES}")

    # constructors -------------------------------------------------------------------------------------
    @classmethod
    def from_size(cls, name: str, **overrides: Any) -> "BertConfig":
        """A config of a named size: tiny, mini, small, medium, base, large (any field can be overridden)."""
        if name not in NAMED_SIZES:
            raise UserError(f"unknown size {name!r}; choose one of {', '.join(NAMED_SIZES)} or give the numbers")
        layers, hidden, heads = NAMED_SIZES[name]
        sizes = dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=4 * hidden)
        return cls(**{**sizes, **overrides})

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **overrides: Any) -> "BertConfig":
        return cls(**{**config_dict, **overrides})

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "BertConfig":
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"no config file at {path}: a model folder needs a HuggingFace config.json")
        return cls.from_dict(read_json_object(path, "the file is corrupt or truncated: restore it"))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **overrides: Any) -> "BertConfig":
        """Read `folder/config.json` (or a config.json path) and apply overrides."""
        path = Path(folder)
        if path.is_dir():
            path = path / CONFIG_NAME
        config = cls.from_json_file(path)
        config.update(overrides)
        config._loaded_from = str(folder)
        return config

    def update(self, overrides: dict[str, Any]) -> None:
        """Set fields (labels kept consistent); unknown keys are rejected so typos do not pass silently."""
        overrides = dict(overrides)
        if "id2label" in overrides or "label2id" in overrides or "num_labels" in overrides:
            merged = {**self.to_dict(), **overrides}
            if "num_labels" in overrides and "id2label" not in overrides:
                merged.pop("id2label"), merged.pop("label2id")
            elif "id2label" in overrides and "label2id" not in overrides:
                merged.pop("label2id")
            fresh = type(self)(**merged)
            self.__dict__.update(fresh.__dict__)
            return
        for key, value in overrides.items():
            if not hasattr(self, key):
                raise UserError(
                    f"unknown config field {key!r}; known fields: {', '.join(sorted(self.to_dict()))}"
                )
            setattr(self, key, value)
        self.validate()

    # serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in LOAD_STATE}
        out["id2label"] = {str(k): v for k, v in self.id2label.items()}  # JSON keys are strings, as HF writes them
        out["model_type"] = self.model_type
        if "torch_dtype" in out:
            out["dtype"] = out.pop("torch_dtype")
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_NAME
        path.write_text(self.to_json_string(), encoding="utf-8")
        return path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"BertConfig {self.to_json_string()}"
