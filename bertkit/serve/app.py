"""`bertkit serve --model DIR`: the model behind a JSON API, with a web page to try it.

    bertkit serve --model path/to/folder            # http://127.0.0.1:8000/ (page), /docs (OpenAPI)
    curl -s localhost:8000/fill-mask -d '{"inputs": "Paris is the [MASK] of France."}'

Endpoints (POST, JSON): /tokenize /embed /fill-mask /next-sentence /classify /ner /qa /attention,
whichever the checkpoint's head supports (the others answer 404 and say why); GET /health (alive),
/ready (model loaded, batchers running), /info (model, tasks, limits), / (the page).
Model calls go through one dynamic batcher per task (bertkit.serve.batcher), so concurrent
requests share forward passes. Errors are JSON: {"error": {"code": ..., "message": ...}}.

FastAPI and uvicorn are the optional [serve] extra; they are imported only when the server starts.
"""

import argparse
import asyncio
import concurrent.futures
import contextlib
import importlib
import logging
from pathlib import Path
from typing import Any

from bertkit.serve.batcher import DynamicBatcher
from bertkit.serve.service import ATTENTION_MAX_TOKENS, QA_CONTEXT_WINDOWS, Item, Limits, ModelService, ServeError

STATIC = Path(__file__).parent / "static"
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


def create_app(service: ModelService, max_batch_size: int = 32, max_wait_ms: float = 5.0) -> Any:
    """The FastAPI app for a loaded `ModelService` (the batchers start with the app, and drain when it stops)."""
    require_serve_extras()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    from bertkit.serve import schemas

    batchers: dict[str, DynamicBatcher] = {}
    batched_tasks = [task for task in service.tasks if task != "tokenize"]  # tokenize runs no model

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        # One thread runs every forward pass: on CPU a pass already uses all cores.
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bertkit-model")
        for task in batched_tasks:
            batchers[task] = DynamicBatcher(
                service.batch_function(task), max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, executor=executor
            )
            batchers[task].start()
        yield
        # uvicorn has let the requests in flight finish; finish whatever they queued, then stop.
        await asyncio.gather(*(batcher.close() for batcher in batchers.values()))
        executor.shutdown(wait=True)

    app = FastAPI(
        title="bertkit",
        description=f"{service.architecture} from `{service.name}`: {', '.join(service.tasks)}",
        lifespan=lifespan,
    )
    app.state.service, app.state.batchers = service, batchers
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": schemas.ErrorResponse, "description": text}
        for status, text in [(400, "malformed JSON"), (404, "this model cannot serve the task"),
                             (413, "too many texts, or a text too long"), (415, "the body is not sent as JSON"),
                             (422, "wrong types or empty input"),
                             (503, "not ready, or shutting down")]
    }

    # -- errors: always {"error": {"code", "message"}} -------------------------------------------
    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)

    @app.exception_handler(ServeError)
    async def on_serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return error(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type:  # FastAPI reads only JSON bodies
            return error(415, "unsupported_media_type",
                         f"the body was sent as {content_type or 'no content type'}; send JSON with the header "
                         "Content-Type: application/json (curl: -H 'Content-Type: application/json')")
        if any(problem.get("type") == "json_invalid" for problem in problems):
            detail = problems[0].get("ctx", {}).get("error", "")
            return error(400, "malformed_json", f"the request body is not valid JSON ({detail}); send a JSON object")
        described: dict[str, list[str]] = {}  # field -> what it should be (a union lists each choice)
        for problem in problems:
            field = ".".join(str(part) for part in problem["loc"][1:2]) or "body"
            described.setdefault(field, [])
            if problem["msg"] not in described[field]:
                described[field].append(problem["msg"])
        summary = "; ".join(f"{field}: {' or '.join(messages)}" for field, messages in described.items())
        return error(422, "invalid_request", f"{summary}. See /docs for the expected body")

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code == 404:
            message += f". Endpoints: {', '.join('/' + task for task in service.tasks)}, /health, /ready, /info, /docs"
        return error(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s %s failed", request.method, request.url.path)
        return error(500, "internal_error", f"the server failed on this request ({type(exc).__name__}: {exc})")

    async def answer(task: str, items: list[Item], lengths: list[int]) -> JSONResponse:
        batcher = batchers.get(task)
        if batcher is None or not batcher.running:
            raise ServeError(503, "not_ready", "the server is starting or shutting down; retry in a moment")
        try:
            results = await batcher.submit_many(items, lengths)
        except ValueError as problem:  # the pipeline refused this input
            raise ServeError(422, "invalid_input", str(problem)) from problem
        # A response object skips FastAPI's re-validation of the return value against the response
        # model, which walks every float of every vector (the schema in /docs stays the same).
        return JSONResponse({"results": results})

    def task_route(task: str, summary: str):
        """POST /<task> when the model serves it; otherwise a 404 that says which head it would need."""
        if task in service.unavailable:
            async def unsupported() -> None:
                service.require(task)

            app.post(f"/{task}", include_in_schema=False)(unsupported)
            return lambda handler: handler
        return app.post(f"/{task}", response_model=schemas.Results, responses=errors, tags=["tasks"], summary=summary)

    # -- the tasks ------------------------------------------------------------------------------
    @task_route("tokenize", "WordPiece tokens, ids and character offsets")
    async def tokenize(body: schemas.TokenizeRequest) -> JSONResponse:
        texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
        pairs = None if body.text_pair is None else ([body.text_pair] if isinstance(body.text_pair, str) else body.text_pair)
        service.check_count(texts)
        if pairs is not None and len(pairs) != len(texts):
            raise ServeError(422, "invalid_request", f"{len(texts)} texts but {len(pairs)} text_pair values; send one per text")
        texts, pairs, _ = service.fit(texts, pairs, truncate=True)  # tokenizing shows the cut, never refuses
        return JSONResponse({"results": service.tokenize(texts, pairs)})

    @task_route("embed", "sentence embeddings (pooled token vectors)")
    async def embed(body: schemas.EmbedRequest) -> JSONResponse:
        texts = body.texts()
        service.check_count(texts)
        texts, _, lengths = service.fit(texts, truncate=body.truncate)
        params = tuple((k, v) for k, v in (("pooling", body.pooling), ("normalize", body.normalize)) if v is not None)
        return await answer("embed", [Item(text, params) for text in texts], lengths)

    @task_route("fill-mask", "predict the [MASK] token(s)")
    async def fill_mask(body: schemas.FillMaskRequest) -> JSONResponse:
        texts = body.texts()
        service.check_count(texts)
        texts, _, lengths = service.fit(texts, truncate=body.truncate)
        mask = service.tokenizer.mask_token
        for index, text in enumerate(texts):
            if mask not in text:
                cut = f" once cut to {service.limits.max_length} tokens" if mask in body.texts()[index] else ""
                raise ServeError(422, "no_mask", f"text {index} has no {mask}{cut}: put {mask} where the word to predict goes")
        return await answer("fill-mask", [Item(text, (("top_k", body.top_k),)) for text in texts], lengths)

    @task_route("next-sentence", "does text_pair follow text? (IsNext / NotNext)")
    async def next_sentence(body: schemas.NextSentenceRequest) -> JSONResponse:
        pairs = body.pairs()
        service.check_count(pairs, "sentence pairs")
        firsts, seconds, lengths = service.fit([p.text for p in pairs], [p.text_pair for p in pairs], truncate=body.truncate)
        return await answer("next-sentence", [Item((a, b)) for a, b in zip(firsts, seconds)], lengths)

    @task_route("classify", "text classification: label and score")
    async def classify(body: schemas.ClassifyRequest) -> JSONResponse:
        texts = body.texts()
        service.check_count(texts)
        texts, _, lengths = service.fit(texts, truncate=body.truncate)
        return await answer("classify", [Item(text) for text in texts], lengths)

    @task_route("ner", "named entities with type, score and character offsets")
    async def ner(body: schemas.NerRequest) -> JSONResponse:
        texts = body.texts()
        service.check_count(texts)
        texts, _, lengths = service.fit(texts, truncate=body.truncate)
        params = (("aggregation_strategy", body.aggregation_strategy),)
        return await answer("ner", [Item(text, params) for text in texts], lengths)

    @task_route("qa", "extractive question answering: answer, score, start, end")
    async def qa(body: schemas.QaRequest) -> JSONResponse:
        questions = body.questions()
        service.check_count(questions, "questions")
        limit = service.limits.max_length
        asked, _, _ = service.fit([q.question for q in questions], truncate=False, limit=limit // 2)
        # the pipeline windows a long context itself; bound the work to a few windows
        contexts, _, lengths = service.fit([q.context for q in questions], truncate=False, limit=limit * QA_CONTEXT_WINDOWS)
        return await answer("qa", [Item((q, c)) for q, c in zip(asked, contexts)], lengths)

    @task_route("attention", "attention weights of every layer and head (for the attention view)")
    async def attention(body: schemas.AttentionRequest) -> JSONResponse:
        if body.layer is not None and not -service.num_layers <= body.layer < service.num_layers:
            raise ServeError(422, "invalid_request", f"layer {body.layer} does not exist: the model has layers 0..{service.num_layers - 1}")
        pairs = None if body.text_pair is None else [body.text_pair]
        limit = min(service.limits.max_length, ATTENTION_MAX_TOKENS)
        texts, pairs, lengths = service.fit([body.inputs], pairs, truncate=body.truncate, limit=limit)
        params = (("layer", body.layer),) if body.layer is not None else ()
        return await answer("attention", [Item((texts[0], pairs[0] if pairs else None), params)], lengths)

    # -- health, the page -------------------------------------------------------------------------
    @app.get("/health", tags=["server"], summary="liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["server"], summary="readiness: model loaded and batchers running (503 otherwise)")
    async def ready() -> Any:
        if not batchers or not all(b.running for b in batchers.values()):
            return error(503, "not_ready", "the server is starting or shutting down")
        return {"status": "ready", "model": service.name, "tasks": service.tasks}

    @app.get("/info", tags=["server"], summary="the model, the tasks it serves, the limits")
    async def info() -> dict[str, Any]:
        return {**service.info(), "batching": {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms},
                "forward_calls": {task: b.stats.forward_calls for task, b in batchers.items()},
                "queued": {task: b.queued for task, b in batchers.items()}}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


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

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=shutdown_timeout)
    server = uvicorn.Server(config)
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

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (HuggingFace layout: config.json, weights, vocab.txt)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--max-batch-size", type=int, default=32, help="inputs per forward pass (default 32; 1 turns batching off)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits for others to batch with (default 5)")
    parser.add_argument("--max-texts", type=int, default=32, help="inputs per request (default 32)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per input (default: the model's positions, 512)")
    parser.add_argument("--truncate", action="store_true", help="cut over-long inputs instead of refusing them (413)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per forward pass (default: torch's choice)")
    parser.add_argument("--shutdown-timeout", type=float, default=30.0, help="seconds in-flight requests get to finish on Ctrl-C / SIGTERM")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True, help="log each request")


def check_arguments(args: argparse.Namespace) -> None:
    for name, low in (("max_batch_size", 1), ("max_texts", 1), ("port", 0), ("threads", 1)):
        if getattr(args, name) is not None and getattr(args, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {low}, got {getattr(args, name)}")
    if args.max_wait_ms < 0:
        raise ValueError(f"--max-wait-ms must be 0 or more, got {args.max_wait_ms}")
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
    import uvicorn

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    limits = Limits(max_texts=args.max_texts, max_length=args.max_length, truncate=args.truncate)
    service = ModelService(args.model, limits, device=args.device)
    app = create_app(service, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms)
    print(f"bertkit serve: {service.architecture} from {args.model}; tasks: {', '.join(service.tasks)}")
    print(f"bertkit serve: page http://{args.host}:{args.port}/  API docs http://{args.host}:{args.port}/docs", flush=True)
    uvicorn.run(
        app, host=args.host, port=args.port, access_log=args.access_log,
        timeout_graceful_shutdown=args.shutdown_timeout, log_level="info",
    )
    return 0
