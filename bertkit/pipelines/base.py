"""The base every bertkit pipeline builds on: model + tokenizer + device, batching, eval/no-grad.

How a pipeline works (one input or a list of inputs in, plain Python results out):

    results = pipe(inputs, **params)
        -> items, is_batch, params = pipe.inputs_of(inputs, **params)   # HF's call forms -> a list of items
        -> pipe.run(items, **params): one result per item, always a list; the items are split into batches:
               encoded = pipe.preprocess(batch, **params)      # tokenizer -> tensors
               outputs = pipe.forward(encoded, **params)       # model, under no_grad + the precision's autocast
               pipe.postprocess(encoded, outputs, batch, **params) -> one result per item
        -> pipe.shape(results, inputs, is_batch, params)       # HF's return shapes: one input, one result

Every pipeline follows this one protocol; `inputs_of` and `shape` are the thin layer of HF's habits on top (a
question/context pair, a text_pair keyword, a one-item list unwrapped). The server calls `run` directly.

Writing a pipeline (the fine-tuning and serving code does exactly this):

    class MyPipeline(Pipeline):
        model_class = "BertForSequenceClassification"   # what a model *folder* is loaded as (bertkit.model)
        parameters = ("top_k",)                          # call/constructor keywords it accepts

        def preprocess(self, batch, **params):           # list of inputs -> dict of tensors
            return self.tokenize(batch)                  # padded, truncated to the model's window
        def postprocess(self, encoded, outputs, batch, **params):   # -> list, one result per input
            ...

`forward` (calls `run_model`: inputs to the device, model under `model_context`) rarely needs overriding; a
pipeline whose single input is itself a list overrides `is_batch`.

Construction: `Pipeline(model, tokenizer=None, device=None, batch_size=8, backend=None, threads=None, **params)`.
- `model`: a bertkit model object, or a folder in HuggingFace layout (loaded as `model_class`); for the
  onnxruntime backend also an .onnx file or an `OrtModel`.
- `backend`: "torch" (default) or "onnxruntime" (the default when `model` is an .onnx file or an OrtModel). With
  onnxruntime a model *folder* is exported once to FOLDER/onnx/<model_class>.onnx and reused while the weights
  are unchanged (`bertkit.export.cached_export`); a model object is exported to a temporary file. Outputs are the
  same as torch's (tested); the model runs on CPU; hidden states and attentions are torch-only.
- `threads`: ONNX Runtime's intra-op threads (onnxruntime only: torch's are process-wide, torch.set_num_threads).
- `tokenizer`: a tokenizer object or a folder; defaults to the model folder (the .onnx file's folder).
- `device`: None (the model's own device, CPU for a folder), "cpu", "cuda", "cuda:1", an int
  (HuggingFace's convention: -1 is CPU, 0 is cuda:0) or a torch.device.
- `**params`: defaults for the call keywords (e.g. `pipeline("fill-mask", model=..., top_k=3)`);
  unknown keywords are a ValueError that lists the accepted ones.
"""
from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch

from bertkit.errors import MissingFileError, UserError
from bertkit.files import require_folder
from bertkit.hub import resolve_folder
from bertkit.model.bert import padding_outputs_unused
from bertkit.model.inference import as_float32, autocast, is_torch_module, resolve_device, resolve_precision, task_precision

# what the model's forward takes from an encoding (which may also carry offsets, overflow maps, ...)
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
BACKENDS = ("torch", "onnxruntime")

logger = logging.getLogger("bertkit")


def is_onnx_file(model: Any) -> bool:
    return isinstance(model, (str, Path)) and Path(model).suffix == ".onnx"


def resolve_backend(backend: str | None, model: Any) -> str:
    """None -> "onnxruntime" for an .onnx file or an OrtModel, else "torch"; a name outside BACKENDS, or torch
    asked to run an .onnx file, is a ValueError."""
    onnx_given = is_onnx_file(model) or (model is not None and not isinstance(model, (str, Path))
                                         and not is_torch_module(model))
    if backend is None:
        return "onnxruntime" if onnx_given else "torch"
    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch" and onnx_given:
        raise UserError("an ONNX model runs on backend='onnxruntime'; for torch pass the model folder")
    return backend


def model_location(name_or_path: str | Path, what: str = "model") -> Path:
    """A model (or tokenizer) folder, or a hub name resolved to one (`bertkit.hub`); a file is said to be one."""
    if Path(name_or_path).expanduser().is_file():
        require_folder(name_or_path, f"{what} folder")  # raises: "... is a file"
    return resolve_folder(name_or_path, what)


def load_model(model: Any, model_class: str, backend: str | None = None, threads: int | None = None) -> Any:
    """A model object is used as is; a folder is loaded with `bertkit.model.<model_class>.from_pretrained`, or,
    for backend="onnxruntime", as an `OrtModel` on the folder's cached export (`bertkit.export.load_ort_model`)."""
    model = getattr(model, "torch_model", model)  # a TF* wrapper (bertkit.tf_compat) runs its PyTorch model
    backend = resolve_backend(backend, model)
    if threads is not None and backend != "onnxruntime":
        raise UserError("threads= sets ONNX Runtime's threads; for torch call torch.set_num_threads(n)")
    if backend == "onnxruntime":
        if isinstance(model, (str, Path)) and not is_onnx_file(model):
            require_folder(model, "model folder")
        from bertkit.export import load_ort_model

        return load_ort_model(model, model_class, threads=threads)
    if isinstance(model, (str, Path)):
        folder = model_location(model)
        return getattr(importlib.import_module("bertkit.model"), model_class).from_pretrained(folder)
    if not isinstance(model, torch.nn.Module):
        raise UserError(f"model must be a folder path or a bertkit model object, got {type(model).__name__}")
    return model


def load_trained_head(folder: str | Path, task: str) -> Any:
    """`task`'s model class loaded from `folder`, refusing a checkpoint that lacks the head's weights (which
    `from_pretrained` would initialise at random, with only a warning: right for fine-tuning, wrong for a command
    whose answers would then be noise). The pipelines keep HF's behaviour; the commands and the server call this."""
    from bertkit.model.hf_checkpoint import missing_head_weights
    from bertkit.tasks import registry

    spec = registry.get_task(task)
    folder = model_location(folder)
    model_class = getattr(importlib.import_module("bertkit.model"), spec.heads[0] if spec.heads else "BertModel")
    model, info = model_class.from_pretrained(folder, output_loading_info=True)
    missing = missing_head_weights(info)
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise UserError(f"{str(folder)!r} has no trained weights for the {task} head ({shown}): its answers would come "
                        f"from random weights. Use a checkpoint with {spec.needs}, e.g. bert-base-uncased or the "
                        "output of `bertkit pretrain`")
    return model


def load_tokenizer(tokenizer: Any, model: Any) -> Any:
    """A tokenizer object is used as is; a folder (by default the model's own folder, or the .onnx file's) is
    loaded."""
    if tokenizer is None:
        if is_onnx_file(model):
            tokenizer = Path(model).parent
        else:
            tokenizer = model if isinstance(model, (str, Path)) else model_folder(model)
        if tokenizer is None:
            raise UserError(
                "no tokenizer given and the model object does not say which folder it came from; "
                "pass tokenizer=<folder or tokenizer object>"
            )
    if isinstance(tokenizer, (str, Path)):
        folder = model_location(tokenizer, "tokenizer")
        if not (folder / "vocab.txt").is_file() and not (folder / "tokenizer.json").is_file():
            raise MissingFileError(
                f"no tokenizer in {str(folder)!r} (expected vocab.txt or tokenizer.json); pass tokenizer=<folder>"
            )
        return importlib.import_module("bertkit.tokenizer").BertTokenizer.from_pretrained(folder)
    return tokenizer


def model_folder(model: Any) -> str | None:
    """The folder a model was loaded from, if it remembers it (HuggingFace keeps it as name_or_path; an
    `OrtModel` has its file's path)."""
    path = getattr(model, "path", None)
    if isinstance(path, Path) and path.is_file():
        return str(path.parent)
    for owner in (model, getattr(model, "config", None)):
        for attribute in ("name_or_path", "_name_or_path"):
            value = getattr(owner, attribute, None)
            if value and Path(value).is_dir():
                return str(value)
    return None


# keywords every pipeline takes for its tokenizer call (HF's): what its own `parameters` do not claim
TOKENIZER_PARAMETERS = ("truncation", "padding", "max_length", "tokenize_kwargs")


def is_stream(inputs: Any) -> bool:
    """Inputs to consume a chunk at a time and answer with an iterator, as HF's pipelines do: a generator or
    other iterator, a dataset of rows (`datasets.Dataset`, a torch `Dataset`, transformers' `KeyDataset`)."""
    if isinstance(inputs, (str, bytes, dict, list, tuple)) or inputs is None:
        return False
    if type(inputs).__name__ in ("Dataset", "IterableDataset", "KeyDataset", "KeyPairDataset") or \
            isinstance(inputs, torch.utils.data.Dataset):
        return True
    return hasattr(inputs, "__iter__") and not hasattr(inputs, "__len__")


def as_batch(inputs: Any) -> Any:
    """A sized column of inputs that is not a list (datasets' `Column`, a numpy array of texts) as a list."""
    if isinstance(inputs, (str, bytes, dict, list, tuple)) or not hasattr(inputs, "__len__") or \
            not hasattr(inputs, "__iter__"):
        return inputs
    return list(inputs)


class Pipeline:
    """Model + tokenizer + device; turns inputs into batches, runs the model without gradients."""

    model_class: ClassVar[str] = "BertModel"
    parameters: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        device: str | int | torch.device | None = None,
        batch_size: int = 8,
        backend: str | None = None,
        threads: int | None = None,
        precision: str | None = None,
        **params: Any,
    ) -> None:
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        loaded = load_model(model, self.model_class, backend, threads)
        self.tokenizer = load_tokenizer(tokenizer, model)  # by default from the folder the model came from
        self.device = resolve_device(device, loaded)
        if is_torch_module(loaded):
            self.model = loaded.to(self.device).eval()
        else:  # ONNX Runtime: the session runs on the host; there is no train mode to leave
            if self.device.type != "cpu":
                raise UserError(f"the onnxruntime backend runs on CPU here; drop device={device!r} or use backend='torch'")
            self.model = loaded
        self.backend = "torch" if is_torch_module(loaded) else "onnxruntime"
        # bf16 autocast where the device runs it natively ("auto", said once); "fp32" opts out
        self.precision = resolve_precision(task_precision(self.task or "", precision), self.device) \
            if self.backend == "torch" else "fp32"
        self.batch_size = batch_size
        self.check_parameters(params)
        self.default_params = params
        self._tokenizer_options: dict[str, Any] = {}  # this run's truncation / padding / max_length / tokenize_kwargs
        self._warned_truncation = False

    @property
    def task(self) -> str | None:
        """HF's task name of this pipeline ("text-classification", ...), read off the task registry."""
        from bertkit.tasks import registry

        name = f"{type(self).__module__}:{type(self).__name__}"
        return next((spec.pipeline for spec in registry.pipeline_tasks() if spec.pipeline_class == name), None)

    def accepted_parameters(self) -> tuple[str, ...]:
        return self.parameters + tuple(p for p in TOKENIZER_PARAMETERS if p not in self.parameters)

    def check_parameters(self, params: dict[str, Any]) -> None:
        unknown = sorted(set(params) - set(self.accepted_parameters()))
        if unknown:
            accepted = ", ".join(self.accepted_parameters())
            raise UserError(f"{type(self).__name__} got unknown argument(s) {unknown}; it accepts: {accepted}")

    def is_batch(self, inputs: Any) -> bool:
        return isinstance(inputs, list)

    def __call__(self, inputs: Any = None, *args: Any, batch_size: int | None = None, **params: Any) -> Any:
        """HF's call: one input gives one result, a list gives a list (each pipeline's HF shape on top); a
        generator, a `datasets.Dataset` or a `KeyDataset` gives an iterator of results, read `batch_size` inputs
        at a time, in input order."""
        if is_stream(inputs) and not args:
            return self.stream(inputs, batch_size, **params)
        inputs = as_batch(inputs)
        items, is_batch, run_params = self.inputs_of(inputs, *args, **params)
        results = self.run(items, batch_size, **run_params)
        return self.shape(results, inputs, is_batch, params)

    def stream(self, inputs: Any, batch_size: int | None = None, **params: Any) -> Iterator[Any]:
        """One result per input of an iterable, never holding more than a chunk of inputs."""
        chunk_size = batch_size or self.batch_size
        iterator = iter(inputs) if hasattr(inputs, "__iter__") else (inputs[i] for i in range(len(inputs)))
        while chunk := list(itertools.islice(iterator, chunk_size)):
            items, _, run_params = self.inputs_of(chunk, **params)
            # each result as an element of a batch's answer (HF's iterators give those, not a lone call's shape)
            yield from self.shape(self.run(items, chunk_size, **run_params), chunk, True, params)

    def inputs_of(self, inputs: Any, *args: Any, **params: Any) -> tuple[list[Any], bool, dict[str, Any]]:
        """(items, whether the call was a batch, the params for `run`): HF's call forms -> a list of items."""
        if args:
            raise TypeError(f"{type(self).__name__} takes one input (or a list of them) and keyword arguments; "
                            f"got {len(args)} more positional argument(s)")
        batch = self.is_batch(inputs)
        return (list(inputs) if batch else [inputs]), batch, params

    def shape(self, results: list[Any], inputs: Any, is_batch: bool, params: dict[str, Any]) -> Any:
        """HF's return shape: a list for a batch, the one result for one input."""
        return results if is_batch else results[0]

    def run(self, items: list[Any], batch_size: int | None = None, **params: Any) -> list[Any]:
        """One result per item, in order: preprocess -> forward -> postprocess over batches of `batch_size`."""
        self.check_parameters(params)
        params = {**self.default_params, **params}
        own = set(self.parameters)
        self._tokenizer_options = {k: params.pop(k) for k in TOKENIZER_PARAMETERS if k in params and k not in own}
        batch_size = batch_size or self.batch_size
        results: list[Any] = []
        # one autocast region over every batch: its cache keeps each weight's bf16 copy from batch to batch
        with self.model_context():
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                encoded = self.preprocess(chunk, **params)
                outputs = self.forward(encoded, **params)
                results.extend(self.postprocess(encoded, outputs, chunk, **params))
        return results

    def model_context(self) -> contextlib.ExitStack:
        """Where the model runs: no autograd (no_grad, not inference_mode: autocast caches its weight casts only
        under no_grad), the pipeline's precision, and no one reading the padding positions' outputs."""
        stack = contextlib.ExitStack()
        for context in (torch.no_grad(), autocast(self.device, self.precision), padding_outputs_unused()):
            stack.enter_context(context)
        return stack

    def tokenize(self, texts: list[str], text_pairs: list[str] | None = None, **tokenizer_kwargs: Any) -> Any:
        """Padded, truncated to the model's window, as tensors. The pipeline's own keywords override these
        defaults, and the caller's (truncation=, padding=, max_length=, tokenize_kwargs=) override both. Inputs
        cut to fit are said once per pipeline (HF cuts them silently)."""
        options = dict(self._tokenizer_options)
        kwargs = {"padding": True, "truncation": True, "max_length": self.max_length, "return_tensors": "pt",
                  **tokenizer_kwargs, **(options.pop("tokenize_kwargs", None) or {}), **options}
        if kwargs.get("padding") is False:
            kwargs["padding"] = True  # a batch of tensors needs one length
        if kwargs.get("max_length") is not None:
            kwargs["max_length"] = min(int(kwargs["max_length"]), self.max_length)
        args = (texts,) if text_pairs is None else (texts, text_pairs)
        encoded = self.tokenizer(*args, **kwargs)
        if kwargs.get("truncation") and not self._warned_truncation and "input_ids" in encoded:
            self._warn_if_truncated(args, encoded, kwargs)
        return encoded

    def _warn_if_truncated(self, args: tuple, encoded: Any, kwargs: dict[str, Any]) -> None:
        """Rows that reach the length cap may have been cut: tokenize just those again, uncut, to know."""
        cap = kwargs.get("max_length") or self.max_length
        lengths = encoded["attention_mask"].sum(dim=-1).tolist() if "attention_mask" in encoded else []
        at_cap = [i for i, n in enumerate(lengths) if n >= cap]
        if not at_cap or kwargs.get("return_overflowing_tokens"):
            return
        rows = [[column[i] for i in at_cap] for column in args]
        full = self.tokenizer(*rows, truncation=False)["input_ids"]
        longest = max(len(ids) for ids in full)
        if longest > cap:
            self._warned_truncation = True
            logger.warning(f"{type(self).__name__}: an input of {longest} tokens was cut to {cap} (the model's limit "
                           "or max_length); later cuts are not said again. Pass truncation=False to refuse them")

    @property
    def max_length(self) -> int:
        """The longest input the model takes (its position table), capped by the tokenizer's limit if it has one."""
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", 512)
        tokenizer_limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < limit:
            limit = tokenizer_limit
        return limit

    def forward(self, encoded: Any, **params: Any) -> Any:
        """Run the model on one batch; a pipeline that needs extra outputs (hidden states) overrides this."""
        return self.run_model(encoded)

    def run_model(self, encoded: Any, **model_kwargs: Any) -> Any:
        inputs = {name: encoded[name].to(self.device) for name in MODEL_INPUTS if name in encoded}
        if self.backend != "torch":  # an exported graph has its outputs fixed at export time
            asked = sorted(name for name, value in model_kwargs.items() if value)
            if asked:
                raise UserError(f"{', '.join(asked)} needs backend='torch': the ONNX graph gives the last layer's "
                                 "outputs only")
        with self.model_context():
            return as_float32(self.model(**inputs, **model_kwargs))

    def preprocess(self, batch: list[Any], **params: Any) -> Any:
        raise NotImplementedError

    def postprocess(self, encoded: Any, outputs: Any, batch: list[Any], **params: Any) -> list[Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={type(self.model).__name__}, device={self.device}, backend={self.backend})"
