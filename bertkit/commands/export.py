"""`bertkit export onnx`: a model folder -> one ONNX file, checked against PyTorch, with its tokenizer beside it.

    bertkit export onnx --model runs/sst2 --output runs/sst2-onnx/model.onnx
    bertkit export onnx --model runs/sst2 --out runs/sst2-int8/model.onnx --quantize int8 --optimize

A thin layer over `bertkit.export.export_onnx` (the model is exported with its head: the class config.json names).
The tokenizer and settings files are copied beside the .onnx (`copy_model_files`) and the model's config.json is
written there, so that folder is self-contained: `pipeline(task, model="runs/sst2-onnx/model.onnx")` and
`bertkit predict|embed --model` on it need nothing else, and optimum's `ORTModelFor*.from_pretrained(folder)` loads it.
The check's figures (per output: worst max abs diff on real tokens, argmax agreement or cosine) are printed; an fp32
export that disagrees with PyTorch by more than 1e-4 is refused.
"""
from __future__ import annotations

import argparse

from bertkit.errors import UserError

FORMATS = ("onnx",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=FORMATS, help="what to export to (onnx)")
    parser.add_argument("--model", "-m", required=True, help="model folder (HuggingFace layout: config.json, weights, vocab.txt)")
    parser.add_argument("--output", "--out", "-o", dest="output", required=True, help="the .onnx file to write")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="int8: ONNX Runtime dynamic quantization (int8 weights; checked and reported, not held to 1e-4)")
    parser.add_argument("--optimize", action="store_true",
                        help="apply ONNX Runtime's transformer fusions offline (the file then needs ONNX Runtime to run)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17: LayerNormalization is one op)")


def run(args: argparse.Namespace) -> int:
    from bertkit.files import require_folder, require_output_file

    folder = require_folder(args.model, "--model")
    output = require_output_file(args.output, "--output")
    if output.suffix != ".onnx":
        raise UserError(f"--output must be a file name ending in .onnx, got {output.name!r}")
    if args.opset < 14:
        raise UserError(f"--opset must be 14 or more (scaled dot-product attention's ops), got {args.opset}")
    try:
        from bertkit.export.cache import copy_model_files
        from bertkit.export.head_outputs import require
        from bertkit.export.onnx import check_batches, export_onnx, load_for_export, verify_onnx

        require("onnx")
        require("onnxruntime")
    except ImportError as error:  # the optional extra: one line with the install hint
        raise UserError(str(error)) from error
    model, _ = load_for_export(folder)
    path = export_onnx(model, output, quantize=args.quantize, opset=args.opset, optimize=args.optimize)
    copied = copy_model_files(folder, path.parent)
    if (folder / "config.json").resolve() != (path.parent / "config.json").resolve():
        # optimum's ORTModelFor* and transformers' AutoConfig read the config from the folder, not from the graph
        model.config.save_pretrained(path.parent)
        copied.insert(0, "config.json")
    # the same check export_onnx ran before it wrote the file, run again for its figures
    report = verify_onnx(path, model, check_batches(model, folder))
    size = path.stat().st_size / 1e6
    kind = "int8" if args.quantize else "fp32"
    print(f"exported {type(model).__name__} from {folder} to {path} ({size:.1f} MB, {kind}, opset {args.opset}"
          f"{', optimized' if args.optimize else ''})")
    print("check against PyTorch (real tokens, batches of 1, 2, 5 and 8 sequences):")
    for name, stats in report.items():
        print(f"  {name}: " + ", ".join(f"{key} {value:.3g}" for key, value in stats.items()))
    if copied:
        print(f"beside it: {', '.join(copied)}")
    return 0
