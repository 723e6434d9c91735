"""`bertkit serve --model DIR`: the model behind a JSON API, with a web page to try it.

    bertkit serve --model path/to/folder            # http://127.0.0.1:8000/ (page), /docs (OpenAPI)
    curl -s localhost:8000/fill-mask -d '{"inputs": "Paris is the [MASK] of France."}'

Endpoints (POST, JSON): /tokenize /embed /fill-mask /next-sentence /classify /ner /qa /attention,
whichever the checkpoint's head supports (the others answer 404 and say why); GET /health (alive),
/ready (model loaded, batchers running, queue not full), /info (model, tasks, limits), / (the page).
Model calls go through one dynamic batcher per task (bertkit.serve.batcher), so concurrent
requests share forward passes. Errors are JSON: {"error": {"code": ..., "message": ...}}.

This file assembles the app (`create_app`) and runs it (`draining_server` for `bertkit serve`, whose flags live in
`bertkit/commands/serve.py`; `background_server` for tests and benchmarks); the routes are in `routes.py`,
each task's request checks in `prepare.py`, the body cap and the last-resort 500 in `edge.py`. FastAPI and
uvicorn are the optional [serve] extra; they are imported only when the server starts.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from typing import Any, Callable

from bertkit.serve import memory
from bertkit.serve.attention_view import STATIC
from bertkit.serve.batcher import DynamicBatcher
from bertkit.serve.service import ModelService
from bertkit.tasks import registry
from bertkit.utils.extras import require_extra

WORKER_THREADS = 2  # request preparation (tokenizing) and JSON rendering, beside the one model thread
log = logging.getLogger("bertkit.serve")


def require_serve_extras() -> None:
    """Fail with the install command when FastAPI, uvicorn or prometheus-client is missing."""
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        require_extra(module, "serve", "bertkit serve")


def create_app(
    service: ModelService,
    max_batch_size: int = 32,
    max_wait_ms: float = 5.0,
    *,
    max_queue: int = 256,
    request_timeout: float = 30.0,
    body_timeout: float = 30.0,
    malloc_trim_seconds: float = 1.0,
    tei: bool = False,
) -> Any:
    """The FastAPI app for a loaded `ModelService` (the batchers start with the app, and drain when it stops).

    The routes live in `bertkit.serve.routes` and read `app.state.serving`; one POST route per task of
    `bertkit.tasks.registry` that the model serves. The per-request budget is `service.limits`; a request body
    must arrive within `body_timeout` seconds (`bertkit.serve.edge`). While it serves, the allocator's free memory
    goes back to the system at most every `malloc_trim_seconds` (0: never; `bertkit.serve.memory`).
    Beside bertkit's routes it serves text-embeddings-inference's and OpenAI's (`bertkit.serve.compat`); `tei=True`
    gives a body that fits both bertkit's and TEI's /embed or /tokenize TEI's answer. GET /metrics is Prometheus'.
    """
    require_serve_extras()
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from bertkit.serve import compat, routes
    from bertkit.serve.edge import RequestEdge
    from bertkit.serve.prometheus import Metrics, RequestMetrics

    app = FastAPI(
        title="bertkit",
        description=f"{service.architecture} from `{service.name}`: {', '.join(service.tasks)}",
        lifespan=lifespan,
    )
    state = routes.ServerState(service, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                               max_queue=max_queue, request_timeout=request_timeout,
                               malloc_trim_seconds=malloc_trim_seconds, tei=tei, tokenization_workers=WORKER_THREADS)
    state.metrics = Metrics(lambda: state.in_flight)
    app.state.serving, app.state.service, app.state.batchers = state, service, state.batchers
    app.add_middleware(RequestEdge, max_body_bytes=service.limits.max_body_bytes, body_timeout=body_timeout,
                       stopping=lambda: state.draining)
    app.add_middleware(RequestMetrics, metrics=state.metrics)  # outside the edge: its 408s and 413s count too
    for exception, handler in routes.EXCEPTION_HANDLERS:
        app.add_exception_handler(exception, handler)
    routes.add_task_routes(app, service)
    routes.add_server_routes(app)
    compat.add_compat_routes(app, service.tasks)
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
        if not registry.get_task(task).runs_model:  # answered while the request is prepared (tokenize)
            continue
        run_batch = state.metrics.batched(task, state.service.batch_function(task))
        state.batchers[task] = DynamicBatcher(then(run_batch, trimmer.touch),
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
