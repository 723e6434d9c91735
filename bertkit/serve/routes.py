"""The server's routes and error handlers, at module level: each reads what it needs from the app's state
(`request.app.state.serving`, a `ServerState`), so one set of functions serves any number of apps.

A task request goes: admit (ready? queue under --max-queue?) -> prepare (`bertkit.serve.prepare`, in a worker
thread: check, tokenize, budget) -> the task's batcher (the model thread), raced against the client going
away and the request's deadline -> the JSON rendered in a worker thread and its size checked. The event loop
only moves bytes and futures, so /health and /ready answer while the model works.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from bertkit.serve import schemas, tei
from bertkit.serve.attention_view import STATIC
from bertkit.serve.batcher import DeadlineExceeded, DynamicBatcher
from bertkit.serve.edge import error_body, render_json
from bertkit.serve.service import ModelService, ServeError
from bertkit.tasks import registry

CLIENT_GONE = 499  # nginx's "client closed request": nobody reads it, the access log shows it
RETRY = {"Retry-After": "1"}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": text}
    for status, text in [(400, "malformed JSON"), (404, "this model cannot serve the task"),
                         (413, "over a limit: body, texts, tokens, text length or answer size"),
                         (415, "the body is not sent as JSON"),
                         (422, "wrong types, empty input, or a parameter over its limit"),
                         (503, "not ready, shutting down, overloaded (Retry-After), or queued past the deadline"),
                         (504, "the model did not finish within the request's deadline")]
}


@dataclass
class ServerState:
    """What the routes read: the model, its batchers, the worker threads and the server-wide settings."""

    service: ModelService
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256  # inputs waiting for or in the model, all tasks: over it, /ready is 503 and new work too
    request_timeout: float = 30.0  # seconds from arrival to answer
    malloc_trim_seconds: float = 1.0  # how often, at most, freed memory goes back to the system (bertkit.serve.memory)
    batchers: dict[str, DynamicBatcher] = field(default_factory=dict)
    workers: concurrent.futures.Executor | None = None  # preparation and JSON rendering, off the event loop
    draining: bool = False  # SIGTERM came: answer new work 503 (Connection: close) until the server stops
    tei: bool = False  # a body that fits bertkit's and TEI's /embed or /tokenize gets TEI's answer (--tei)
    metrics: Any = None  # bertkit.serve.prometheus.Metrics: what /metrics shows
    tokenization_workers: int = 2

    @property
    def running(self) -> bool:
        return bool(self.batchers) and all(b.running for b in self.batchers.values()) and self.workers is not None

    @property
    def in_flight(self) -> int:
        return sum(batcher.in_flight for batcher in self.batchers.values())

    def admit(self, inputs: int = 0) -> None:
        """Refuse new work while not ready or draining, and while the queue is over --max-queue (backpressure)."""
        if self.draining:
            raise ServeError(503, "not_ready", "the server is shutting down; retry on another instance",
                             headers={**RETRY, "Connection": "close"})
        if not self.running:
            raise ServeError(503, "not_ready", "the server is starting or shutting down; retry in a moment", headers=RETRY)
        waiting = self.in_flight
        if waiting and waiting + inputs > self.max_queue:  # an idle server always takes a request
            raise ServeError(
                503, "overloaded",
                f"{waiting} inputs are waiting for the model and this request adds {inputs}; the limit is "
                f"{self.max_queue} (--max-queue); retry after a moment", headers=RETRY,
            )

    async def off_loop(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.workers, function, *args)


def serving(request: Request) -> ServerState:
    return request.app.state.serving


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


# -- the tasks ------------------------------------------------------------------------------------------------
async def answer_task(request: Request, task: str, body: Any) -> Response:
    state = serving(request)
    as_tei = isinstance(body, schemas.EitherApi) and body.answers_tei(state.tei)
    if as_tei and getattr(body, "normalize", False) is None:  # TEI normalizes unless told not to
        body.normalize = True
    work = await task_work(request, task, body)
    if work.results is None:
        return Response(status_code=CLIENT_GONE)
    return await answer(state, tei.tei_answer(state.service, task, body, work.results) if as_tei else {"results": work.results})


async def task_work(request: Request, task: str, body: Any, prepare: Callable[..., Any] | None = None) -> Any:
    """Admit, prepare (`prepare`, else the task's own, in a worker thread), run on the task's batcher: the `Work`
    with its results, which are None when the client went away. Every route that runs a task comes through here."""
    state, arrived = serving(request), time.monotonic()
    state.service.require(task)
    state.admit()
    work = await state.off_loop(prepare or registry.resolve(registry.get_task(task).prepare), state.service, body)
    if state.metrics is not None:
        state.metrics.tokens.labels(task).inc(sum(work.lengths))
    if work.results is None:
        state.admit(len(work.items))
        work.results = await infer(request, state, task, work.items, work.lengths, arrived)
    return work


async def answer(state: ServerState, content: Any) -> Response:
    # a response object skips FastAPI's re-validation of the return value against the response model,
    # which walks every float of every vector (the schema in /docs stays the same)
    content = await state.off_loop(render_json, content, state.service.limits.max_response_bytes)
    return Response(content, media_type="application/json")


async def infer(request: Request, state: ServerState, task: str, items: list, lengths: list[int], arrived: float) -> list | None:
    """The batcher's answers; None when the client went away first (its inputs then leave the queue)."""
    timeout = max(0.0, state.request_timeout - (time.monotonic() - arrived))
    answers = asyncio.ensure_future(state.batchers[task].submit_many(items, lengths, timeout=timeout))
    gone = asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({answers, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not answers.done():
        answers.cancel()
        return None
    try:
        return answers.result()
    except DeadlineExceeded as late:
        if late.started:
            raise ServeError(504, "deadline_exceeded",
                             f"the model did not finish this request within {state.request_timeout:g} s (--request-timeout); "
                             "send fewer or shorter texts") from None
        raise ServeError(503, "queue_timeout",
                         f"the request waited {state.request_timeout:g} s (--request-timeout) for the model, which is "
                         "busy; retry after a moment", headers=RETRY) from None
    except ValueError as problem:  # the pipeline refused this input
        raise ServeError(422, "invalid_input", str(problem)) from problem


async def disconnected(request: Request) -> None:
    """Returns when the client hangs up (the body is read by now, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def task_endpoint(task: str, schema: type) -> Callable:
    """POST /<task>: FastAPI reads and documents the body as `schema`; the work is `answer_task`'s."""

    async def endpoint(request: Request, body: Any) -> Response:
        return await answer_task(request, task, body)

    endpoint.__annotations__["body"] = schema
    return endpoint


async def unsupported_task(request: Request) -> None:
    serving(request).service.require(request.scope["path"].rsplit("/", 1)[-1])


def add_task_routes(app: FastAPI, service: ModelService) -> None:
    """One POST route per task of the registry; a task this model cannot serve answers 404 and says why."""
    for spec in registry.TASKS:
        if spec.name in service.unavailable:
            app.add_api_route(f"/{spec.name}", unsupported_task, methods=["POST"], include_in_schema=False)
            continue
        schema = registry.resolve(spec.request_schema)
        app.add_api_route(f"/{spec.name}", task_endpoint(spec.name, schema), methods=["POST"], name=spec.name,
                          response_model=schemas.Results, responses=ERROR_RESPONSES, tags=["tasks"], summary=spec.summary)


# -- health, the page: answered on the event loop, never behind the model ---------------------------------------
async def health() -> dict[str, str]:
    return {"status": "ok"}


async def ready(request: Request) -> Any:
    state = serving(request)
    if state.draining or not state.running:
        return error(503, "not_ready", "the server is starting or shutting down", headers=RETRY)
    if state.in_flight >= state.max_queue:
        return error(503, "overloaded", f"{state.in_flight} inputs are waiting for the model, at the high-water mark "
                                        f"of {state.max_queue} (--max-queue)", headers=RETRY)
    return {"status": "ready", "model": state.service.name, "tasks": state.service.tasks}


async def info(request: Request) -> dict[str, Any]:
    state = serving(request)
    return {**tei.tei_info(state.service, max_queue=state.max_queue, tokenization_workers=state.tokenization_workers),
            **state.service.info(),
            "batching": {"max_batch_size": state.max_batch_size, "max_wait_ms": state.max_wait_ms},
            "queue": {"in_flight": state.in_flight, "max_queue": state.max_queue, "request_timeout": state.request_timeout},
            "forward_calls": {task: b.stats.forward_calls for task, b in state.batchers.items()},
            "queued": {task: b.queued for task, b in state.batchers.items()}}


async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


SERVER_ROUTES = [
    ("/health", health, "liveness: the process answers (never waits for the model)"),
    ("/ready", ready, "readiness: model loaded, batchers running, queue under --max-queue (503 otherwise)"),
    ("/info", info, "the model, the tasks it serves, the limits"),
    ("/", page, None),
]


def add_server_routes(app: FastAPI) -> None:
    for path, endpoint, summary in SERVER_ROUTES:
        documented = summary is not None
        app.add_api_route(path, endpoint, methods=["GET"], tags=["server"], summary=summary, include_in_schema=documented)
        # HEAD answers as GET does, without the body (uvicorn drops it); kept out of the schema
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False, name=f"{endpoint.__name__}_head")


# -- errors: always {"error": {"code", "message"}} -------------------------------------------------------------
def is_json(content_type: str) -> bool:
    """application/json or application/<anything>+json, as FastAPI decides what it parses (not a substring test)."""
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def on_serve_error(request: Request, exc: ServeError) -> JSONResponse:
    return error(exc.status, exc.code, exc.message, exc.headers)


async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = exc.errors()
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and not is_json(content_type):  # FastAPI reads only JSON bodies
        return error(415, "unsupported_media_type",
                     f"the body was sent as {content_type or 'no content type'}; send JSON with the header "
                     "Content-Type: application/json (curl: -H 'Content-Type: application/json')")
    if any(problem.get("type") == "json_invalid" for problem in problems):
        detail = problems[0].get("ctx", {}).get("error", "")
        return error(400, "malformed_json", f"the request body is not valid JSON ({detail}); send a JSON object")
    described: dict[str, list[str]] = {}  # field -> what it should be (a union lists each choice)
    for problem in problems:
        place = ".".join(str(part) for part in problem["loc"][1:2]) or "body"
        described.setdefault(place, [])
        if problem["msg"] not in described[place]:
            described[place].append(problem["msg"])
    summary = "; ".join(f"{place}: {' or '.join(messages)}" for place, messages in described.items())
    return error(422, "invalid_request", f"{summary}. See /docs for the expected body")


def unparsable(cause: BaseException) -> str:
    """Why the JSON parser gave up, in our words (its own text may hold the input)."""
    if isinstance(cause, UnicodeDecodeError):
        return f"it is not UTF-8 (byte 0x{cause.object[cause.start]:02x} at position {cause.start})"
    if isinstance(cause, RecursionError):
        return "it nests arrays or objects too deeply"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "it holds an integer of more than 4300 digits"
    return "it could not be parsed"


async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI's "error parsing the body"
        return error(400, "malformed_json", f"the request body is not valid JSON: {unparsable(exc.__cause__)}; send a JSON object")
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    if exc.status_code == 404:
        message += f". Endpoints: {', '.join('/' + task for task in serving(request).service.tasks)}, /health, /ready, /info, /docs"
    return error(exc.status_code, code, message, getattr(exc, "headers", None))


EXCEPTION_HANDLERS = [(ServeError, on_serve_error), (RequestValidationError, on_invalid), (HTTPException, on_http_error)]
