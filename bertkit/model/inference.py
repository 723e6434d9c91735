"""Running a model over many inputs, and where and how it runs: the one device rule and the one precision rule.

    from bertkit.model.inference import encode_batches, forward_in_batches, resolve_device, autocast
    outputs = encode_batches(model, tokenizer(sentences)["input_ids"], batch_size=32)  # one output per sentence
    device = resolve_device("auto")              # cuda when there is one, else cpu (HF's ints work too: -1, 0)
    with autocast(device, "bf16"):               # "fp32" (nothing), "bf16", "fp16"
        ...

`encode_batches` (feature extraction, embeddings) and `forward_in_batches` (evaluation and prediction of any head)
sort inputs by length so each batch pads only to its own longest row, and give results back in input order.
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import fields, is_dataclass
from dataclasses import replace as dataclass_replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bertkit.errors import UserError

from .bert import BertModel, padding_outputs_unused
from .outputs import BaseModelOutputWithPooling

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def is_torch_module(model: Any) -> bool:
    """True for a PyTorch model. False for another backend (`bertkit.export.OrtModel`, ONNX Runtime): it is called
    like the model and gives the same output classes, but has no parameters, no device and no train/eval mode, so
    the loops here ask this one question before touching any of those."""
    return isinstance(model, torch.nn.Module)


def model_device(model: Any) -> torch.device:
    """Where the model's weights are: its first parameter's device; CPU for a model without parameters and for
    ONNX Runtime (which takes numpy inputs on the host)."""
    parameter = next(model.parameters(), None) if is_torch_module(model) else None
    return parameter.device if parameter is not None else torch.device("cpu")


def resolve_device(device: str | int | torch.device | None = "auto", model: Any = None) -> torch.device:
    """"auto" = cuda when available, else cpu; HF's ints (-1 cpu, 0 cuda:0); None keeps the model where it is.
    A GPU that is not there is a clear error."""
    if device is None:
        return model_device(model) if model is not None else torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, int):
        device = "cpu" if device < 0 else f"cuda:{device}"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {str(device)!r} was asked for but CUDA is not available here; use device='cpu'")
    return device


@functools.lru_cache(maxsize=1)
def cpu_bf16_instructions() -> tuple[str, ...]:
    """The CPU's native bf16 instruction sets (avx512_bf16, amx_bf16), read from /proc/cpuinfo, else asked of
    torch's own CPU probe; () when it has none (bf16 would be emulated there, slower than fp32)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
        return tuple(f for f in ("avx512_bf16", "amx_bf16") if f in flags)
    except OSError:
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        return ("avx512_bf16",) if probe is not None and probe() else ()


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is the fast choice on `device`: a GPU with native bf16, or a CPU with native bf16
    instructions (the one place this is decided)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(cpu_bf16_instructions())


# Tasks whose default stays fp32: their bf16 predictions agreed with fp32 on fewer than 99.5% of held-out inputs
# (benchmarks/bench_precision.py: SQuAD answers 99.0%, with equal F1; SST-2 labels 99.89%, CoNLL tags 99.93%)
FP32_TASKS = ("question-answering",)


def task_precision(task: str, precision: str | None = None) -> str | None:
    """The precision a task's predictions run in: the one asked for (argument or BERTKIT_PRECISION), else "auto",
    except for FP32_TASKS, which stay fp32 unless asked."""
    if precision is None and default_precision() == "auto":  # nothing asked for, here or in the environment
        return "fp32" if task in FP32_TASKS else None
    return precision


def default_precision() -> str:
    """"auto" unless the environment says otherwise (BERTKIT_PRECISION=fp32 turns bf16 off everywhere at once)."""
    value = os.environ.get("BERTKIT_PRECISION", "auto").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise UserError(f"BERTKIT_PRECISION must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """"auto" (or None: `default_precision()`) = bf16 autocast where the device runs bf16 natively (a GPU that has
    it, a CPU with avx512_bf16 / AMX), fp16 on an older GPU, fp32 elsewhere; the choice is said once. fp16 on CPU
    is an error."""
    precision = default_precision() if precision in (None, "auto") else precision
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise UserError("fp16 needs a GPU; on CPU use --precision fp32 (or bf16)")
        return precision
    if device.type == "cuda":
        chosen = "bf16" if bf16_supported(device) else "fp16"
        _say_choice(chosen, f"{torch.cuda.get_device_name(device)}")
        return chosen
    chosen = "bf16" if bf16_supported(device) else "fp32"
    _say_choice(chosen, f"this CPU has {', '.join(cpu_bf16_instructions())}" if chosen == "bf16"
                else "this CPU has no native bf16")
    return chosen


@functools.lru_cache(maxsize=None)
def _say_choice(chosen: str, reason: str) -> None:
    from bertkit.utils.logging import get_logger

    if chosen != "fp32":
        get_logger().warning(f"precision auto: {chosen} autocast ({reason}); pass precision='fp32' (--precision "
                             "fp32, or BERTKIT_PRECISION=fp32) for full fp32")


def autocast(device: torch.device, precision: str):
    """bf16/fp16 autocast, or nothing for fp32 (or "auto" on a device without native bf16)."""
    precision = resolve_precision(precision, device) if precision == "auto" else precision
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def compile_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """`torch.compile` the model in place for inference on CPU or GPU and return it: dynamic shapes (one graph for
    every batch size and length, so length-bucketed batches do not recompile) and inductor's freezing (weights
    folded in as constants and pre-packed for oneDNN's matmuls; bias adds, GELU and LayerNorm fused around them).
    The first calls compile (tens of seconds on CPU); later calls run the compiled code. Freezing applies to
    no-grad calls only, and a frozen graph keeps the weights it saw: compile again after changing the weights."""
    if not is_torch_module(model):
        raise UserError(f"compile_for_inference takes a PyTorch model, got {type(model).__name__}")
    model.eval().compile(dynamic=True, options={"freezing": True})
    return model


def compile_for_training(model: torch.nn.Module, enabled: bool = True) -> torch.nn.Module:
    """`torch.compile` for training steps (HF's `torch_compile=True`), dynamic shapes; the Trainer pads batch
    lengths to a multiple of 16 then, so a run meets at most max_length / 16 widths. Opt-in: on 2 CPU cores a
    MiniLM bf16 step ran 1.9x slower compiled, after 2 minutes of compiling (docs/performance.md)."""
    return torch.compile(model, dynamic=True) if enabled else model


def row_length(row: dict[str, Any]) -> int:
    mask = row.get("attention_mask")
    return int(sum(mask)) if mask is not None else len(row["input_ids"])


LABEL_NAMES = ("labels", "start_positions", "end_positions")


@torch.no_grad()  # not inference_mode: autocast caches its weight casts only under no_grad
def forward_in_batches(
    model: Any,
    rows: Sequence[dict[str, Any]],
    collate: Callable[[list], dict[str, torch.Tensor]],
    batch_size: int = 64,
    precision: str = "fp32",
    label_names: Sequence[str] = LABEL_NAMES,
    transform: Callable | None = None,
    progress: bool = False,
    run: Callable[[Any, dict[str, torch.Tensor]], tuple[Any, Any]] | None = None,
    row_losses: bool = False,
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]], float | None]:
    """Run the model over rows in length-sorted batches (little padding), for evaluation and prediction.

    Returns ({output name: one array per row}, {label name: one array per row}, mean loss or None), in the rows'
    order. Token-level arrays (a [seq, ...] per row) are cut to the row's own length.
    model: a bertkit model, or an `OrtModel` (ONNX Runtime: no loss, whatever labels the rows carry).
    run: (model, batch) -> (loss or None, outputs), instead of calling the model (the Trainer's compute_loss).
    row_losses: also give each row its batch's loss, as outputs["losses"] (HF's include_for_metrics=["loss"])."""
    torch_model = is_torch_module(model)
    was_training = model.training if torch_model else False
    if torch_model:
        model.eval()
    device = model_device(model)
    lengths = [row_length(r) for r in rows]
    full_lengths = [len(r["input_ids"]) for r in rows]
    order = sorted(range(len(rows)), key=lambda i: -lengths[i])
    outputs: dict[str, list[Any]] = {}
    labels: dict[str, list[Any]] = {}
    loss_sum, loss_rows = torch.zeros((), device=device), 0
    # one autocast region over every batch: its cache keeps each weight's bf16 copy from batch to batch
    with autocast(device, precision):
        for start in tqdm(range(0, len(order), batch_size), desc="predict", disable=not progress, leave=False):
            chunk = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate([rows[i] for i in chunk]).items()}
            seq_len = batch["input_ids"].shape[1]
            # each row's outputs are cut to its length below, so padding positions are never read (unless rows came padded)
            with padding_outputs_unused(all(lengths[i] == full_lengths[i] for i in chunk)):
                if run is None:
                    out = model(**batch, return_dict=True)
                    loss = getattr(out, "loss", None)
                else:
                    loss, out = run(model, batch)
            if loss is not None:
                loss_sum += loss.detach().float() * len(chunk)
                loss_rows += len(chunk)
                if row_losses:
                    for i in chunk:
                        outputs.setdefault("losses", [None] * len(rows))[i] = loss.detach().float().cpu().numpy()
            named = [(name, value, outputs) for name, value in out.items()
                     if name not in ("loss", "hidden_states", "attentions") and isinstance(value, torch.Tensor)]
            named += [(name, batch[name], labels) for name in label_names if name in batch]
            for name, value, into in named:
                if transform is not None and into is outputs:
                    value = transform(value, batch.get("labels"))
                token_level = value.dim() >= 2 and value.shape[1] == seq_len and (value.dim() == 3 or name != "logits")
                for i, row in zip(chunk, value.float().cpu().numpy() if into is outputs else value.cpu().numpy()):
                    into.setdefault(name, [None] * len(rows))[i] = row[: full_lengths[i]] if token_level else row
    if torch_model:
        model.train(was_training)
    return outputs, labels, float(loss_sum) / loss_rows if loss_rows else None


def predict(model: Any, features: Sequence[dict], collator: Callable, batch_size: int = 64,
            precision: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Run the model (a bertkit model or an `OrtModel`) over features. Returns {"loss": mean loss or None,
    "<output>": one numpy array per feature} for logits / start_logits / end_logits; token-level outputs are cut to
    each feature's length. precision: None/"auto" = the device's fast choice (`resolve_precision`)."""
    device = model_device(model)
    chosen = resolve_precision(precision, device) if is_torch_module(model) else "fp32"
    outputs, _, loss = forward_in_batches(model, features, collator, batch_size, chosen,
                                          label_names=(), progress=progress)
    return {"loss": loss, **{k: v for k, v in outputs.items() if k in ("logits", "start_logits", "end_logits")}}


def as_float32(value: Any) -> Any:
    """Tensors (in tuples, lists, dicts or output objects) of a reduced-precision run back in float32, so what
    follows (softmax, numpy, comparisons) sees the dtype an fp32 run gives."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, (tuple, list)):
        return type(value)(as_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: as_float32(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return dataclass_replace(value, **{f.name: as_float32(getattr(value, f.name)) for f in fields(value)})
    return value


def _as_sequences(inputs: Any, token_type_ids: Any) -> tuple[list[list[int]], list[list[int]] | None]:
    """Lists of ids (unpadded), or a tokenizer's output (padded lists/tensors + attention_mask) -> unpadded lists."""
    mask = None
    if hasattr(inputs, "keys"):  # dict / BatchEncoding
        mask = inputs.get("attention_mask")
        token_type_ids = inputs.get("token_type_ids") if token_type_ids is None else token_type_ids
        inputs = inputs["input_ids"]

    def to_list(rows: Any) -> list[list[int]]:
        rows = rows.tolist() if hasattr(rows, "tolist") else list(rows)
        if any(not isinstance(row, (list, tuple)) for row in rows):
            raise UserError("encode_batches takes a batch: a list of token-id lists (or a tokenizer's batch output)")
        return [list(row) for row in rows]

    ids = to_list(inputs)
    types = to_list(token_type_ids) if token_type_ids is not None else None
    if mask is not None:
        mask = to_list(mask)
        lengths = [sum(row) for row in mask]
        if any(not all(row[:n]) or any(row[n:]) for row, n in zip(mask, lengths)):
            raise UserError("encode_batches expects right padding (attention_mask = 1...1 0...0); "
                             "tokenize with padding_side='right' or pass unpadded id lists")
        ids = [row[:n] for row, n in zip(ids, lengths)]
        types = [row[:n] for row, n in zip(types, lengths)] if types is not None else None
    return ids, types


def bucketed_batches(
    ids: list[list[int]], types: list[list[int]] | None, batch_size: int, pad_token_id: int
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray, np.ndarray]]:
    """Length bucketing: sort by length (longest first), cut into batches of `batch_size`, pad each batch only to
    its own longest. Yields (input positions, input_ids, attention_mask, token_type_ids) as int64 numpy arrays
    (torch takes them without a copy through torch.from_numpy; ONNX Runtime takes them as they are)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = len(ids[batch[0]])
        input_ids = np.full((len(batch), width), pad_token_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        type_ids = np.zeros((len(batch), width), dtype=np.int64)
        for row, i in enumerate(batch):
            n = len(ids[i])
            input_ids[row, :n] = ids[i]
            mask[row, :n] = 1
            if types is not None:
                type_ids[row, :n] = types[i]
        yield batch, input_ids, mask, type_ids


@torch.no_grad()  # not inference_mode: autocast caches its weight casts only under no_grad
def encode_batches(
    model: Any,
    input_ids: Any,
    token_type_ids: Any = None,
    batch_size: int = 32,
    output_hidden_states: bool = False,
    unpad: bool = True,
    progress: bool = False,
    precision: str | None = None,
) -> list[BaseModelOutputWithPooling]:
    """Encode many sequences fast, with the same numbers as one padded batch through `model`.

    Sorts the sequences by length so each batch pads only to its own longest (length bucketing), runs the
    encoder with unpad=True (token-wise layers on real tokens only), and returns one output per input, in input
    order, without padding: last_hidden_state [len_i, hidden], pooler_output [hidden] (None if the model has no
    pooler), hidden_states (embeddings + every layer, each [len_i, hidden]) when asked.

    model: a bertkit model (a head model BertFor... is encoded through its `.bert`), or another backend that has
    `encode_bucket(input_ids, attention_mask, token_type_ids) -> (last_hidden_state, pooler_output)` on numpy
    batches (`bertkit.export.OrtModel`, ONNX Runtime).
    input_ids: a list of token-id lists, or a tokenizer's batch output (dict with input_ids, attention_mask and
    token_type_ids, padded on the right).
    precision: None/"auto" = bf16 autocast where the device runs it natively (`resolve_precision`), "fp32" to opt
    out; outputs are float32 either way.
    """
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    ids, types = _as_sequences(input_ids, token_type_ids)
    if any(len(row) == 0 for row in ids):
        raise UserError("encode_batches got an empty sequence; every input needs at least one token ([CLS])")
    if types is not None and [len(t) for t in types] != [len(r) for r in ids]:
        raise UserError("token_type_ids must have one entry per token of input_ids")
    backend = getattr(model, "encode_bucket", None)
    if backend is not None and output_hidden_states:
        raise UserError(f"{type(model).__name__} gives the last layer only; use the torch model for output_hidden_states")
    encoder: BertModel = model if backend is not None else getattr(model, "bert", model)
    pad = encoder.config.pad_token_id if encoder.config is not None else 0
    results: list[BaseModelOutputWithPooling | None] = [None] * len(ids)
    chosen = resolve_precision(precision, encoder.device) if backend is None else "fp32"
    batches = bucketed_batches(ids, types, batch_size, pad)
    if progress:
        batches = tqdm(batches, desc="encoding", unit="batch", total=-(-len(ids) // batch_size))
    with contextlib.ExitStack() as region:
        if backend is None:  # one autocast region over every batch: its cache keeps the weights' casts
            region.enter_context(autocast(encoder.device, chosen))
        for batch, input_batch, mask, type_batch in batches:
            hidden_states = None
            if backend is not None:
                hidden, pooled = backend(input_batch, mask, type_batch)
            else:
                device = encoder.device
                out = encoder(*(torch.from_numpy(a).to(device) for a in (input_batch, mask, type_batch)),
                              output_hidden_states=output_hidden_states, unpad=unpad, output_attentions=False,
                              return_dict=True)
                hidden, pooled, hidden_states = as_float32((out.last_hidden_state, out.pooler_output,
                                                            out.hidden_states))
            for row, i in enumerate(batch):
                n = len(ids[i])
                results[i] = BaseModelOutputWithPooling(
                    last_hidden_state=hidden[row, :n],
                    pooler_output=pooled[row] if pooled is not None else None,
                    hidden_states=tuple(h[row, :n] for h in hidden_states) if output_hidden_states else None,
                )
    return results  # type: ignore[return-value]
