"""bertkit model -> ONNX file, checked against the PyTorch model before `export_onnx` returns.

The graph: inputs input_ids, attention_mask, token_type_ids (int64, [batch, sequence], both axes dynamic);
outputs under HuggingFace's names (last_hidden_state + pooler_output, logits, start_logits + end_logits, ...).

Why a wrapper (`OnnxGraph`) instead of tracing the model's forward: `attention_bias` returns None when nothing is
masked (`bool(attention_mask.all())`), a Python branch that tracing would bake in for whatever example it saw. The
wrapper calls the same submodules (embeddings, encoder, pooler, head) but always builds the additive mask, and
builds it as HF's exported graphs do, `(1 - mask) * finfo.min`, because that is the pattern ONNX Runtime's
transformer optimizer recognises and fuses into one Attention op. Dropout is skipped (the model is in eval mode).
The check after export runs the real `model.forward` on the same inputs, so a head table here that drifted from
the heads' forwards would fail loudly instead of exporting wrong numbers.

Optional passes on the exported file:
  * optimize=True: ONNX Runtime's offline transformer optimizer (fused Attention, SkipLayerNorm, BiasGelu);
  * quantize="int8": ONNX Runtime dynamic quantization (int8 weights, activations quantized per batch at run
    time: no calibration data), of the optimized graph when optimize=True. Its check reports the differences
    (max abs diff, argmax agreement, cosine) instead of holding them to 1e-4.
"""
from __future__ import annotations

import json
import logging as std_logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bertkit.errors import MissingFileError, UserError
from bertkit.model.bert import BertModel, BertPreTrainedModel
from bertkit.utils import logging

from .head_outputs import HEADS, head_spec, require

logger = logging.get_logger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_OPSET = 17  # LayerNormalization is a standard op from 17 on (one node instead of ~9)
FP32_ATOL = 1e-4


class OnnxGraph(nn.Module):
    """What is traced: embeddings -> encoder (mask always applied) -> pooler -> head, tensors in, tuple out."""

    def __init__(self, model: BertPreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.bert: BertModel = getattr(model, "bert", model)
        self.spec = head_spec(model)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor) -> tuple[Tensor, ...]:
        x = self.bert.embeddings(input_ids, token_type_ids)
        # HF's additive mask: 0 on real tokens, finfo.min on padding; the same numbers as attention_bias, in the
        # form ONNX Runtime's attention fusion matches
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        x, _, _ = self.bert.encoder(x, bias)
        pooled = self.bert.pooler(x) if self.bert.pooler is not None else None
        return tuple(self.spec.head(self.model, x, pooled))


# --- inputs for the check ------------------------------------------------------------------------------------
def _tokenizer_for(model: nn.Module, folder: Path | None) -> Any:
    folder = folder or (Path(model.name_or_path) if getattr(model, "name_or_path", None) else None)
    if folder is None or not (folder / "vocab.txt").is_file():
        return None
    from bertkit.tokenizer import BertTokenizer

    return BertTokenizer.from_pretrained(folder)


def check_batches(model: BertPreTrainedModel, folder: Path | None = None, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Padded batches of sizes 1, 2, 5 and 8 with mixed lengths (so one graph is run at several shapes): bertkit's
    sample sentences through the model's own tokenizer when it has one, else random ids. Odd rows get segment 1
    on their second half, so token_type_ids is exercised too."""
    config = model.config
    max_len = min(128, config.max_position_embeddings)
    tokenizer = _tokenizer_for(model, folder)
    sizes = (1, 2, 5, 8)
    if tokenizer is not None:
        text = (Path(__file__).resolve().parents[1] / "samples" / "wiki_en.txt").read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if line.strip()][: sum(sizes)]
        sequences = tokenizer(lines, truncation=True, max_length=max_len)["input_ids"]
    else:
        g = torch.Generator().manual_seed(seed)
        lengths = torch.randint(2, max(3, min(max_len, 48)), (sum(sizes),), generator=g).tolist()
        sequences = [torch.randint(0, config.vocab_size, (n,), generator=g).tolist() for n in lengths]
    batches, start = [], 0
    for size in sizes:
        rows = sequences[start:start + size]
        start += size
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), config.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, :len(row)], mask[i, :len(row)] = row, 1
            if i % 2 and config.type_vocab_size > 1:
                types[i, len(row) // 2:len(row)] = 1
        batches.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    return batches


# --- the check -------------------------------------------------------------------------------------------
def _compare(name: str, got: np.ndarray, ref: np.ndarray, mask: np.ndarray, per_token: bool) -> dict[str, float]:
    """Differences on real positions: max abs diff, argmax agreement (logits) or cosine similarity (vectors)."""
    got, ref = torch.from_numpy(np.asarray(got, dtype=np.float32)), torch.from_numpy(np.asarray(ref, dtype=np.float32))
    real = torch.from_numpy(mask).bool()
    stats: dict[str, float] = {}
    if per_token and got.dim() == 2:  # start/end logits [batch, seq]: argmax over the real positions of each row
        stats["max_abs_diff"] = float((got - ref)[real].abs().max())
        low = torch.finfo(torch.float32).min
        agree = got.masked_fill(~real, low).argmax(-1) == ref.masked_fill(~real, low).argmax(-1)
        stats["argmax_agreement"] = float(agree.float().mean())
        return stats
    if per_token:
        got, ref = got[real], ref[real]
    stats["max_abs_diff"] = float((got - ref).abs().max())
    if "logits" in name:
        stats["argmax_agreement"] = float((got.argmax(-1) == ref.argmax(-1)).float().mean())
    else:
        stats["min_cosine"] = float(torch.nn.functional.cosine_similarity(got, ref, dim=-1).min())
    return stats


def verify_onnx(
    path: str | os.PathLike,
    model: BertPreTrainedModel,
    batches: list[dict[str, np.ndarray]] | None = None,
    threads: int = 1,
) -> dict[str, dict[str, float]]:
    """Run the ONNX file in ONNX Runtime and the PyTorch model's own forward on the same padded batches; return,
    per output, the worst max_abs_diff and argmax_agreement (logits) or min_cosine (vectors) over the batches,
    measured on real (non-padding) positions."""
    from .ort import OrtModel

    spec = head_spec(model)
    batches = batches if batches is not None else check_batches(model)
    runner = OrtModel(path, threads=threads)
    report: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for batch in batches:
            got = runner.run(**batch)
            ref = model(**{k: torch.from_numpy(v) for k, v in batch.items()}, return_dict=True)
            for name in spec.outputs:
                stats = _compare(name, got[name], ref[name].numpy(), batch["attention_mask"], name in spec.per_token)
                worst = report.setdefault(name, {})
                for key, value in stats.items():
                    better_low = key == "max_abs_diff"
                    worst[key] = max(worst.get(key, value), value) if better_low else min(worst.get(key, value), value)
    return report


# --- loading, the export itself, the passes ----------------------------------------------------------------
def load_for_export(model_or_folder: BertPreTrainedModel | str | os.PathLike) -> tuple[BertPreTrainedModel, Path | None]:
    """A bertkit model object, or a folder loaded as the class its config.json names (BertModel if none)."""
    if isinstance(model_or_folder, nn.Module):
        if not isinstance(model_or_folder, BertPreTrainedModel):
            raise UserError(f"export_onnx takes a bertkit model or a model folder, got {type(model_or_folder).__name__}")
        return model_or_folder, None
    folder = Path(model_or_folder)
    if not (folder / "config.json").is_file():
        raise MissingFileError(f"{str(folder)!r} is not a model folder (no config.json there); pass a folder "
                                "written by save_pretrained (HuggingFace layout) or a bertkit model object")
    from bertkit import model as models

    architectures = models.BertConfig.from_pretrained(folder).architectures or ["BertModel"]
    cls = next((getattr(models, a) for a in architectures if a in HEADS and hasattr(models, a)), models.BertModel)
    return cls.from_pretrained(folder), folder


def _set_metadata(path: Path, model: BertPreTrainedModel, **extra: str) -> None:
    """Record the architecture and the config in the file, so `OrtModel` can rebuild HF-style outputs and
    pipelines can read id2label without the model folder."""
    onnx = require("onnx")
    graph = onnx.load(str(path))
    props = {"bertkit.architecture": type(model).__name__, "bertkit.config": model.config.to_json_string(), **extra}
    keep = [p for p in graph.metadata_props if p.key not in props]
    del graph.metadata_props[:]
    graph.metadata_props.extend(keep)
    for key, value in props.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def _trace(model: BertPreTrainedModel, path: Path, opset: int, batch: dict[str, np.ndarray]) -> None:
    graph = OnnxGraph(model).eval()
    per_token, outputs = set(graph.spec.per_token), graph.spec.outputs
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic_axes.update({name: ({0: "batch", 1: "sequence"} if name in per_token else {0: "batch"}) for name in outputs})
    example = tuple(torch.from_numpy(batch[name]) for name in INPUT_NAMES)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer chatter
        # the TorchScript exporter: dynamic_axes is all it needs for dynamic shapes (the dynamo exporter would
        # need onnxscript and symbolic-shape hints for the same graph)
        torch.onnx.export(graph, example, str(path), dynamo=False, opset_version=opset,
                          input_names=list(INPUT_NAMES), output_names=list(outputs), dynamic_axes=dynamic_axes,
                          do_constant_folding=True)


def optimize_onnx(source: str | os.PathLike, target: str | os.PathLike, config: Any) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer (model_type='bert'): fuses attention, Skip+LayerNorm and bias+GELU into
    contrib ops. Returns the counts of fused operators."""
    require("onnxruntime")
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(target))
    return fused


def quantize_onnx(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """int8 dynamic quantization: MatMul/Gemm weights to int8 (per row), activations quantized at run time."""
    onnx = require("onnx")
    require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX Runtime advises its pre-processing (shape inference + basic fusions) through the root logger, which also
    # configures the application's logging if it had none; the pass made no measurable difference here (the
    # transformer optimizer is the fusion step that matters), so the advice is filtered out for this call.
    root = std_logging.getLogger()
    hide = std_logging.Filter()
    hide.filter = lambda record: "pre-processing before quantization" not in record.getMessage()  # type: ignore
    guard = std_logging.NullHandler() if not root.handlers else None  # keeps logging.warning from calling basicConfig
    root.addFilter(hide)
    if guard is not None:
        root.addHandler(guard)
    try:
        # DefaultTensorType: shape inference cannot type the outputs of the optimizer's contrib ops (they are fp32)
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.removeFilter(hide)
        if guard is not None:
            root.removeHandler(guard)


def export_onnx(
    model_or_folder: BertPreTrainedModel | str | os.PathLike,
    output_path: str | os.PathLike,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    optimize: bool = False,
    atol: float = FP32_ATOL,
) -> Path:
    """Export a bertkit model (object or folder, with its head) to one ONNX file and check it before returning.

    The file takes input_ids / attention_mask / token_type_ids ([batch, sequence], int64, both axes dynamic) and
    gives HF's output names. The check runs ONNX Runtime and the PyTorch model on real inputs of several batch sizes
    and lengths: fp32 must agree within `atol` on real tokens (a ValueError otherwise, and no file is left);
    quantize="int8" is reported (log, and `verify_onnx` gives the numbers) rather than held to atol.
    optimize=True applies ONNX Runtime's transformer fusions offline (the file then needs ONNX Runtime's contrib
    ops, i.e. ONNX Runtime itself, to run).
    """
    require("onnx")
    require("onnxruntime")
    if quantize not in (None, "int8"):
        raise UserError(f"quantize must be None or 'int8', got {quantize!r}")
    model, folder = load_for_export(model_or_folder)
    output_path = Path(output_path)
    if output_path.is_dir() or output_path.suffix != ".onnx":
        raise UserError(f"output_path must be a file name ending in .onnx, got {str(output_path)!r}")
    output_path.parent.mkdir(parents=True, exist_ok=True)
    if next(model.parameters()).dtype != torch.float32:
        raise UserError(f"export an fp32 model (got {model.dtype}); int8 comes from quantize='int8'")
    batches = check_batches(model, folder)
    device, was_training = model.device, model.training
    # an inference graph (dropout off) from the CPU copy; the exporter also sets the traced module's mode back
    # afterwards, recursively, so the caller's mode is restored explicitly at the end
    model.cpu().eval()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            current = Path(tmp) / "model.onnx"
            _trace(model, current, opset, batches[-1])  # trace on a padded batch (any batch would do: no branch)
            if optimize:
                fused = optimize_onnx(current, Path(tmp) / "optimized.onnx", model.config)
                current = Path(tmp) / "optimized.onnx"
                logger.info("ONNX Runtime transformer optimizer fused: %s", fused)
            _set_metadata(current, model, **{"bertkit.optimized": str(optimize)})
            report = verify_onnx(current, model, batches)
            worst = max(stats["max_abs_diff"] for stats in report.values())
            if not worst <= atol:  # (also catches NaN)
                raise UserError(f"the exported graph disagrees with the PyTorch model: max abs diff {worst:.3g} > "
                                 f"{atol:g} on real tokens ({report}); please report this with the model's config")
            if quantize == "int8":
                quantize_onnx(current, Path(tmp) / "int8.onnx")
                current = Path(tmp) / "int8.onnx"
                _set_metadata(current, model, **{"bertkit.optimized": str(optimize), "bertkit.quantize": "int8"})
                report = verify_onnx(current, model, batches)
                bad = [n for n, s in report.items() if not np.isfinite(s["max_abs_diff"])]
                if bad:
                    raise UserError(f"the int8 graph gives non-finite outputs for {bad}: {report}")
            logger.info("exported %s to %s; check against PyTorch: %s", type(model).__name__, output_path,
                        json.dumps(report))
            shutil.move(str(current), output_path)
    finally:
        model.to(device).train(was_training)
    return output_path
