"""`bertkit serve --model DIR`: the model behind a JSON API, with a web page to try it.

    bertkit serve --model path/to/folder            # http://127.0.0.1:8000/ (page), /docs (OpenAPI)
    curl -s localhost:8000/fill-mask -d '{"inputs": "Paris is the [MASK] of France."}'

Endpoints (POST, JSON): /tokenize /embed /fill-mask /next-sentence /classify /ner /qa /attention,
whichever the checkpoint's head supports (the others answer 404 and say why); GET /health (alive),
/ready (model loaded, batchers running, queue not full), /info (model, tasks, limits), / (the page).
Model calls go through one dynamic batcher per task (bertkit.serve.batcher), so concurrent
requests share forward passes. Errors are JSON: {"error": {"code": ..., "message": ...}}.

This file assembles the app (`create_app`) and runs it (the `bertkit serve` command, `background_server`);
the routes are in `routes.py`, each task's request checks in `prepare.py`, the body cap and the last-resort
500 in `edge.py`. FastAPI and uvicorn are the optional [serve] extra; they are imported only when the
server starts.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import importlib
import logging
import time
from pathlib import Path
from typing import Any, Callable

from bertkit.serve import memory
from bertkit.serve.batcher import DynamicBatcher
from bertkit.serve.service import Limits, ModelService, flag

STATIC = Path(__file__).parent / "static"
WORKER_THREADS = 2  # request preparation (tokenizing) and JSON rendering, beside the one model thread
log = logging.getLogger("bertkit.serve")


def require_serve_extras() -> None:
    """Fail with the install command when FastAPI or uvicorn is missing."""
    for module in ("fastapi", "uvicorn"):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(
                f"bertkit serve needs {module}, which is not installed: pip install 'bertkit[serve]' "
                "(or pip install fastapi uvicorn)"
            ) from error


def create_app(
    service: ModelService,
    max_batch_size: int = 32,
    max_wait_ms: float = 5.0,
    *,
    max_queue: int = 256,
    request_timeout: float = 30.0,
    body_timeout: float = 30.0,
    malloc_trim_seconds: float = 1.0,
) -> Any:
    """The FastAPI app for a loaded `ModelService` (the batchers start with the app, and drain when it stops).

    The routes live in `bertkit.serve.routes` and read `app.state.serving`; one POST route per task of
    `bertkit.tasks.registry` that the model serves. The per-request budget is `service.limits`; a request body
    must arrive within `body_timeout` seconds (`bertkit.serve.edge`). While it serves, the allocator's free memory
    goes back to the system at most every `malloc_trim_seconds` (0: never; `bertkit.serve.memory`).
    """
    require_serve_extras()
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from bertkit.serve import routes
    from bertkit.serve.edge import RequestEdge

    app = FastAPI(
        title="bertkit",
        description=f"{service.architecture} from `{service.name}`: {', '.join(service.tasks)}",
        lifespan=lifespan,
    )
    state = routes.ServerState(service, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                               max_queue=max_queue, request_timeout=request_timeout,
                               malloc_trim_seconds=malloc_trim_seconds)
    app.state.serving, app.state.service, app.state.batchers = state, service, state.batchers
    app.add_middleware(RequestEdge, max_body_bytes=service.limits.max_body_bytes, body_timeout=body_timeout,
                       stopping=lambda: state.draining)
    for exception, handler in routes.EXCEPTION_HANDLERS:
        app.add_exception_handler(exception, handler)
    routes.add_task_routes(app, service)
    routes.add_server_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


@contextlib.asynccontextmanager
async def lifespan(app: Any):
    """Start a batcher per model task, one model thread and the worker threads; on the way out, finish what was queued."""
    state = app.state.serving
    memory.limit_arenas()  # before the model and worker threads allocate: each would get its own heap
    trimmer = memory.MallocTrimmer(state.malloc_trim_seconds)
    trimmer.start()
    # One thread runs every forward pass: on CPU a pass already uses all cores.
    model_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bertkit-model")
    state.workers = concurrent.futures.ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="bertkit-prepare")
    for task in state.service.tasks:
        if task == "tokenize":  # runs no model
            continue
        state.batchers[task] = DynamicBatcher(then(state.service.batch_function(task), trimmer.touch),
                                              max_batch_size=state.max_batch_size, max_wait_ms=state.max_wait_ms,
                                              executor=model_thread)
        state.batchers[task].start()
    try:
        yield
    finally:
        # uvicorn has let the requests in flight finish; finish whatever they queued, then stop.
        await asyncio.gather(*(batcher.close() for batcher in state.batchers.values()))
        model_thread.shutdown(wait=True)
        state.workers.shutdown(wait=True)
        state.workers = None
        trimmer.stop()


def then(function: Callable[[Any], Any], after: Callable[[], None]) -> Callable[[Any], Any]:
    """`function`, calling `after()` once it returned (or raised)."""

    def both(argument: Any) -> Any:
        try:
            return function(argument)
        finally:
            after()

    return both


@contextlib.contextmanager
def background_server(app: Any, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float = 30.0):
    """Run `app` with uvicorn in a thread (a notebook, a test); yields the server's base URL.

    Port 0 picks a free port. Leaving the block shuts down gracefully: requests in flight finish.
    The uvicorn.Server is at `app.state.server` (set `should_exit` to start the shutdown early).
    """
    require_serve_extras()
    import threading
    import time

    import uvicorn

    from bertkit.serve.connections import server_config

    server = uvicorn.Server(server_config(app, host, port, shutdown_timeout=shutdown_timeout, log_level="warning"))
    app.state.server = server
    thread = threading.Thread(target=server.run, name="bertkit-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port} (is the port taken?)")
        time.sleep(0.02)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=shutdown_timeout + 10)


# ---- the `bertkit serve` command ----

def draining_server(config: Any, state: Any, drain_seconds: float) -> Any:
    """uvicorn's server with a drain: on the first SIGTERM / Ctrl-C the app answers new work 503 with
    `Connection: close` (kept-alive connections get an answer, not a reset), cuts bodies still uploading with a
    503, and /ready says not-ready for `drain_seconds`; then uvicorn's graceful shutdown lets the requests in
    flight finish, and the process exits with status 0 (uvicorn would re-raise the signal: -15). A second signal
    stops at once."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        drain_until: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            state.draining = True
            if self.drain_until is None and drain_seconds > 0:
                self.drain_until = time.monotonic() + drain_seconds
                return
            super().handle_exit(sig, frame)

        async def on_tick(self, counter: int) -> bool:
            if self.drain_until is not None and time.monotonic() >= self.drain_until:
                self.should_exit = True
            return await super().on_tick(counter)

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                yield
                self._captured_signals.clear()  # a drained, graceful stop is a success

    return DrainingServer(config)


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
    parser.add_argument("--shutdown-timeout", type=float, default=30.0, help="seconds in-flight requests get to finish on Ctrl-C / SIGTERM")
    parser.add_argument("--drain-seconds", type=float, default=1.0,
                        help="after SIGTERM, seconds new requests get a 503 (Connection: close) before connections close (default 1)")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True, help="log each request")


def check_arguments(args: argparse.Namespace) -> None:
    """Every flag's range, before the model loads."""
    lowest = {"max_batch_size": 1, "max_texts": 1, "port": 0, "threads": 1, "max_queue": 1, "max_connections": 1,
              **dict.fromkeys(LIMIT_HELP, 1)}
    for name, low in lowest.items():
        if getattr(args, name) is not None and getattr(args, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(args, name)}")
    if args.port > 65535:
        raise ValueError(f"--port must be at most 65535, got {args.port}")
    for name in ("max_wait_ms", "drain_seconds", "shutdown_timeout", "malloc_trim_seconds"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(args, name)}")
    for name in ("request_timeout", "header_timeout", "body_timeout"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be more than 0, got {getattr(args, name)}")
    if args.max_length is not None and args.max_length < 3:
        raise ValueError(f"--max-length must be at least 3 ([CLS] + a token + [SEP]), got {args.max_length}")


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    try:
        require_serve_extras()
    except ImportError as error:
        from bertkit.errors import UserError

        raise UserError(str(error)) from error
    import torch

    from bertkit.serve.connections import check_port_free, server_config

    check_port_free(args.host, args.port)

    if args.threads is not None:  # torch's threads also bound the attention view's passes under onnxruntime
        torch.set_num_threads(args.threads)
    fields = [f.name for f in dataclasses.fields(Limits)]
    limits = Limits(**{name: getattr(args, name) for name in fields})
    try:
        service = ModelService(args.model, limits, device=args.device, backend=args.backend, threads=args.threads)
    except ImportError as error:  # onnxruntime missing: the install hint, one line
        from bertkit.errors import UserError

        raise UserError(str(error)) from error
    app = create_app(service, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
                     max_queue=args.max_queue, request_timeout=args.request_timeout, body_timeout=args.body_timeout,
                     malloc_trim_seconds=args.malloc_trim_seconds)
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
