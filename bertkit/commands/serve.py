"""`bertkit serve --model DIR`: the model behind a JSON API with a web page (`bertkit.serve`).

    bertkit serve --model path/to/folder            # http://127.0.0.1:8000/ (page), /docs (OpenAPI)
    curl -s localhost:8000/fill-mask -d '{"inputs": "Paris is the [MASK] of France."}'
"""
from __future__ import annotations

import argparse
import dataclasses

from bertkit.commands.options import add_precision_argument, apply_precision
from bertkit.errors import UserError
from bertkit.serve.app import create_app, draining_server, require_serve_extras
from bertkit.serve.service import Limits, ModelService, flag

LIMIT_HELP = {  # the per-request budget: `Limits` fields beyond --max-texts / --max-length / --truncate
    "max_total_tokens": "tokens of all inputs of one request together (more: 413 too_many_tokens)",
    "max_masks": "[MASK]s per fill-mask text (more: 422 too_many_masks)",
    "max_top_k": "fill-mask top_k and QA top_k (more: 422 top_k_too_large)",
    "max_body_bytes": "request body in bytes, checked before parsing (more: 413 body_too_large)",
    "max_response_bytes": "JSON answer in bytes, estimated before running and checked after (more: 413 response_too_large)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (HuggingFace layout: config.json, weights, vocab.txt)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--max-batch-size", type=int, default=32, help="inputs per forward pass (default 32; 1 turns batching off)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to batch with (default 5)")
    parser.add_argument("--max-texts", type=int, default=32, help="inputs per request (default 32)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per input (default: the model's positions, 512)")
    parser.add_argument("--truncate", action="store_true", help="cut over-long inputs instead of refusing them (413)")
    defaults = Limits()
    for name, text in LIMIT_HELP.items():
        parser.add_argument(flag(name), type=int, default=getattr(defaults, name), help=f"{text} (default {getattr(defaults, name)})")
    parser.add_argument("--max-queue", type=int, default=256,
                        help="inputs waiting for the model, all tasks; over it /ready is 503 and new work gets "
                             "503 + Retry-After (default 256)")
    parser.add_argument("--request-timeout", type=float, default=30.0,
                        help="seconds from arrival to answer; later: 503 queue_timeout (still queued) or 504 (default 30)")
    parser.add_argument("--header-timeout", type=float, default=10.0,
                        help="seconds a client gets to send a request's headers; later: 408 and the connection closed (default 10)")
    parser.add_argument("--body-timeout", type=float, default=30.0,
                        help="seconds a client gets to send a request's body; later: 408 and the connection closed (default 30)")
    parser.add_argument("--max-connections", type=int, default=512,
                        help="open connections (and requests in progress); requests over it get 503 (default 512)")
    parser.add_argument("--malloc-trim-seconds", type=float, default=1.0,
                        help="hand the allocator's free memory back to the system at most this often while serving; "
                             "0: never (default 1; see docs/serving.md)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per forward pass, torch's or ONNX Runtime's (default: the backend's choice)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="torch (default) or onnxruntime: the task pipelines run on ONNX exports made once into "
                        "MODEL/onnx/ (the attention view stays on torch); needs pip install 'bertkit[onnx]'")
    add_precision_argument(parser)
    parser.add_argument("--shutdown-timeout", type=float, default=30.0, help="seconds in-flight requests get to finish on Ctrl-C / SIGTERM")
    parser.add_argument("--drain-seconds", type=float, default=1.0,
                        help="after SIGTERM, seconds new requests get a 503 (Connection: close) before connections close (default 1)")
    parser.add_argument("--tei", action="store_true",
                        help="answer a body that fits both bertkit's and text-embeddings-inference's /embed or /tokenize "
                             "(e.g. {\"inputs\": ...}) in TEI's shape, for TEI clients (default: bertkit's {\"results\"})")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True, help="log each request")


def check_arguments(args: argparse.Namespace) -> None:
    """Every flag's range, before the model loads."""
    lowest = {"max_batch_size": 1, "max_texts": 1, "port": 0, "threads": 1, "max_queue": 1, "max_connections": 1,
              **dict.fromkeys(LIMIT_HELP, 1)}
    for name, low in lowest.items():
        if getattr(args, name) is not None and getattr(args, name) < low:
            raise UserError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(args, name)}")
    if args.port > 65535:
        raise UserError(f"--port must be at most 65535, got {args.port}")
    for name in ("max_wait_ms", "drain_seconds", "shutdown_timeout", "malloc_trim_seconds"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")
    for name in ("request_timeout", "header_timeout", "body_timeout"):
        if getattr(args, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be more than 0, got {getattr(args, name)}")
    if args.max_length is not None and args.max_length < 3:
        raise UserError(f"--max-length must be at least 3 ([CLS] + a token + [SEP]), got {args.max_length}")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    require_serve_extras()  # the install hint, one line, before anything loads
    import torch

    from bertkit.serve.connections import check_port_free, server_config

    check_port_free(args.host, args.port)

    apply_precision(args.precision)
    if args.threads is not None:  # torch's threads also bound the attention view's passes under onnxruntime
        torch.set_num_threads(args.threads)
    fields = [f.name for f in dataclasses.fields(Limits)]
    limits = Limits(**{name: getattr(args, name) for name in fields})
    service = ModelService(args.model, limits, device=args.device, backend=args.backend, threads=args.threads)
    app = create_app(service, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                     max_queue=args.max_queue, request_timeout=args.request_timeout, body_timeout=args.body_timeout,
                     malloc_trim_seconds=args.malloc_trim_seconds, tei=args.tei)
    print(f"bertkit serve: {service.architecture} from {args.model} on {args.backend}; tasks: {', '.join(service.tasks)}")
    print(f"bertkit serve: page http://{args.host}:{args.port}/  API docs http://{args.host}:{args.port}/docs", flush=True)
    config = server_config(app, args.host, args.port, header_timeout=args.header_timeout,
                           max_connections=args.max_connections, shutdown_timeout=args.shutdown_timeout,
                           access_log=args.access_log, log_level="info")
    server = draining_server(config, app.state.serving, args.drain_seconds)
    app.state.server = server
    server.run()
    if not server.started:  # uvicorn has logged why (the port is taken, the address is wrong, ...)
        print(f"bertkit serve: the server did not start on {args.host}:{args.port}", flush=True)
        return 3
    return 0
