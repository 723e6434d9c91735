"""The API edge: what the server does with a request before FastAPI parses it, and after everything else failed.

`RequestEdge` is plain ASGI middleware around the app:
- the body is capped at --max-body-bytes: a Content-Length over the cap is refused at once, and a body sent
  without one (chunked) is counted while it is read; either way a JSON 413 `body_too_large`, before parsing;
- a body that never arrived whole (the client went away) is not handed to the app at all;
- an exception no handler took becomes a 500 `internal_error` that never shows the exception's text: the
  traceback goes to the log once, under an error id that the message gives.
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Awaitable, Callable

from bertkit.serve.schemas import replace_surrogates
from bertkit.serve.service import ServeError, flag

log = logging.getLogger("bertkit.serve")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


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
    def __init__(self, app: Callable, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

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
        """The whole body, at most --max-body-bytes of it; None once a 413 is sent or the client left."""
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self.too_large(send, f"{int(declared)} bytes")
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self.too_large(send, f"over {self.max_body_bytes} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def too_large(self, send: Send, size: str) -> None:
        await send_json(send, 413, error_body(
            "body_too_large",
            f"the request body is {size}; the limit is {self.max_body_bytes} bytes "
            f"(split the request, or start the server with a larger {flag('max_body_bytes')})",
        ), headers={"Connection": "close"})  # the rest of the body is not read: this connection is done


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
