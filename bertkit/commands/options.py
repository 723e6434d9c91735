"""What the commands that run a model share: their input texts, and the --backend / --threads / --precision flags."""
from __future__ import annotations

import os
from typing import Any

import torch

from bertkit.errors import UserError
from bertkit.files import read_text
from bertkit.model.inference import PRECISIONS
from bertkit.pipelines.base import BACKENDS


def read_texts(texts: list[str], file: str | None) -> list[str]:
    """The commands' input: texts from the command line, then one per non-empty line of `file`."""
    if file:
        lines = read_text(file, "--file").splitlines()  # a folder, a missing or a binary file: named
        texts = [*texts, *(line.strip() for line in lines if line.strip())]
    if not texts:
        raise UserError("no input text: give it on the command line or with --file")
    return texts


def add_backend_arguments(parser: Any) -> None:
    """--backend and --threads, the same for every command that runs a model."""
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="torch (default) or onnxruntime: a model folder is exported once to FOLDER/onnx/ and "
                        "reused; an .onnx --model runs on onnxruntime (needs: pip install 'bertkit[onnx]')")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the forward passes (torch's or ONNX Runtime's; default: the backend's choice)")
    add_precision_argument(parser)


def add_precision_argument(parser: Any) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="auto (default): bf16 autocast where the device runs bf16 natively (a GPU, a CPU with "
                        "avx512_bf16 or AMX), else fp32; fp32 to opt out")


def apply_precision(precision: str | None) -> None:
    """--precision for every model the command runs: process-wide, as BERTKIT_PRECISION (like --threads)."""
    if precision is not None:
        os.environ["BERTKIT_PRECISION"] = precision


def backend_options(args: Any) -> dict[str, Any]:
    """--backend / --threads as the pipelines' keywords; torch's threads are process-wide, so they are set here."""
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    apply_precision(getattr(args, "precision", None))
    backend = args.backend or "torch"
    if backend == "torch":
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        return {"backend": backend}
    from bertkit.export.head_outputs import require

    try:
        require("onnxruntime")
    except ImportError as error:  # the optional extra: one line with the install hint, before anything loads
        raise UserError(str(error)) from error
    return {"backend": backend, "threads": args.threads}
