"""The API edge: what the server does with a request before FastAPI parses it, and after everything else failed.

`RequestEdge` is plain ASGI middleware around the app:
- the body is capped at --max-body-bytes: a Content-Length over the cap, or a body (chunked) that grows over it
  while it is read, gets a JSON 413 `body_too_large`, before parsing. The rest of the body is read and thrown away
  first (up to `DISCARD_BYTES`; at once when the client asked `Expect: 100-continue`): a server that answers and
  closes while the client is still writing resets the connection, and `requests` or `urllib` then see
  `ConnectionResetError`, never the 413 (nginx's lingering close does the same);
- the body must arrive within --body-timeout seconds (a client trickling a byte at a time holds a connection and
  a task for ever otherwise): later, a 408 `body_timeout` and the connection is closed;
- once the server is stopping (SIGTERM), a body still being uploaded is cut with a 503 `not_ready` at once,
  instead of holding the shutdown until --shutdown-timeout and then being cancelled;
- a body that never arrived whole (the client went away) is not handed to the app at all;
- an exception no handler took becomes a 500 `internal_error` that never shows the exception's text: the
  traceback goes to the log once, under an error id that the message gives.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, Awaitable, Callable

from bertkit.serve.schemas import replace_surrogates
from bertkit.serve.service import ServeError, flag

log = logging.getLogger("bertkit.serve")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# How much of an oversized body is read and thrown away before the 413, so that the client, done writing, reads
# it: a bound, because reading costs the server bandwidth (a larger body is answered and its connection closed).
DISCARD_BYTES = 32 << 20
STOP_POLL_SECONDS = 0.2  # how soon an upload in progress notices that the server is stopping


class BodyCut(Exception):
    """The body will not be read to its end: the answer to send instead (with `Connection: close`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def render_json(content: Any, max_bytes: int | None = None) -> bytes:
    """JSON bytes as Starlette's JSONResponse writes them; over `max_bytes`: a 413 `response_too_large`."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate that got past the edge: never a 500 for it
        body = replace_surrogates(text).encode("utf-8")
    if max_bytes is not None and len(body) > max_bytes:
        raise ServeError(
            413, "response_too_large",
            f"the answer is {len(body) / 1e6:.1f} MB of JSON; the limit is {max_bytes / 1e6:.1f} MB "
            f"(ask for less, or start the server with a larger {flag('max_response_bytes')})",
        )
    return body


async def send_json(send: Send, status: int, content: Any, headers: dict[str, str] | None = None) -> None:
    body = render_json(content)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestEdge:
    def __init__(self, app: Callable, max_body_bytes: int, body_timeout: float = 30.0,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.app, self.max_body_bytes, self.body_timeout, self.stopping = app, max_body_bytes, body_timeout, stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            body = await self.read_body(scope, receive, tracked_send)
            if body is None:  # refused (413) or the client went away
                return
            await self.app(scope, replay(body, receive), tracked_send)
        except Exception:  # noqa: BLE001 - the last resort: log it, answer a plain 500
            error_id = uuid.uuid4().hex[:12]
            log.exception("request %s %s failed (error id %s)", scope.get("method"), scope.get("path"), error_id)
            if not started:
                await send_json(send, 500, error_body(
                    "internal_error",
                    f"the server failed on this request (error id {error_id}; the details are in the server's log)"))

    async def read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, at most --max-body-bytes of it; None once an error was sent or the client left."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        oversized = declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        size = f"{int(declared)} bytes" if oversized else f"over {self.max_body_bytes} bytes"
        if oversized and headers.get(b"expect", b"").lower() == b"100-continue":
            await self.too_large(send, size)  # the client waits for "100 Continue" to send: it will send nothing
            return None
        deadline = time.monotonic() + self.body_timeout
        chunks, read = [], 0
        try:
            while True:
                message = await self.next_message(receive, deadline)
                if message["type"] == "http.disconnect":
                    return None
                chunk = message.get("body", b"")
                read += len(chunk)
                oversized = oversized or read > self.max_body_bytes
                if not oversized:
                    chunks.append(chunk)
                if not message.get("more_body", False) or read > self.max_body_bytes + DISCARD_BYTES:
                    break
        except BodyCut as cut:
            if not oversized:
                await send_json(send, cut.status, error_body(cut.code, cut.message),
                                headers={"Connection": "close", **({"Retry-After": "1"} if cut.status == 503 else {})})
                return None
        if oversized:
            await self.too_large(send, size)
            return None
        return b"".join(chunks)

    async def next_message(self, receive: Receive, deadline: float) -> Message:
        """The next message of the request, raising `BodyCut` when --body-timeout passes or the server stops first."""
        message = asyncio.ensure_future(receive())
        while True:
            left = deadline - time.monotonic()
            done, _ = await asyncio.wait({message}, timeout=max(0.0, min(STOP_POLL_SECONDS, left)))
            if done:
                return message.result()
            if self.stopping():
                message.cancel()
                raise BodyCut(503, "not_ready", "the server is shutting down and the request body was still arriving; "
                                                "retry on another instance")
            if time.monotonic() >= deadline:
                message.cancel()
                raise BodyCut(408, "body_timeout",
                              f"the request body did not arrive within {self.body_timeout:g} s (--body-timeout); "
                              "send it at once, or start the server with a larger --body-timeout")

    async def too_large(self, send: Send, size: str) -> None:
        await send_json(send, 413, error_body(
            "body_too_large",
            f"the request body is {size}; the limit is {self.max_body_bytes} bytes "
            f"(split the request, or start the server with a larger {flag('max_body_bytes')})",
        ), headers={"Connection": "close"})


def replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, once; after it the real `receive` (which reports a disconnect)."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again
