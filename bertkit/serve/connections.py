"""The server's connections, below the requests: the port checked before the model loads, a deadline for each
request head, and a cap on open connections (uvicorn's `limit_concurrency`).

uvicorn bounds the idle time between requests on a kept-alive connection (`timeout_keep_alive`) but nothing
else: a client that connects and sends nothing, or sends its headers a byte at a time, holds its connection (and
a file descriptor) for ever. `HeadDeadline` closes such a connection with a 408 after `--header-timeout` seconds,
as nginx's `client_header_timeout` does; the body's deadline is `bertkit.serve.edge`'s (`--body-timeout`).
"""
from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

from bertkit.errors import UserError
from bertkit.serve.edge import error_body, render_json


def check_port_free(host: str, port: int) -> None:
    """Raise UserError when `host:port` cannot be listened on (taken, or not this machine's address).

    The serve command calls it before loading the model, which takes seconds: a taken port should be said at once,
    and not after the page address was printed as if the server were up.
    """
    if port == 0:  # the system picks a free one
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UserError(f"cannot listen on --host {host}: {error.strerror}; give an address of this machine "
                        "(127.0.0.1 for this machine only, 0.0.0.0 for every interface)") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a port in TIME_WAIT is free
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is already in use by another program; choose a free one "
                                f"with --port (e.g. --port {port + 1 if port < 65535 else 8000}), or stop that "
                                "program") from None
            raise UserError(f"cannot listen on {host}:{port}: {error.strerror}; check --host and --port") from None


def head_deadline_protocol(base: type, seconds: float) -> type:
    """uvicorn's HTTP protocol class `base` (h11 or httptools) with a deadline for each request head: from the
    connection's start, or from the first byte of the next request on a kept-alive connection, the headers must be
    complete within `seconds`; otherwise the client gets a 408 and the connection is closed."""

    class HeadDeadline(base):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._head_timer: asyncio.TimerHandle | None = None
            self._head_cycle = self.cycle
            self._arm_head_timer()

        def data_received(self, data: bytes) -> None:
            between_requests = self.cycle is None or self.cycle.response_complete
            if between_requests and self._head_timer is None:
                self._arm_head_timer()
            super().data_received(data)
            if self.cycle is not self._head_cycle:  # a new request's headers are in: the body has its own deadline
                self._head_cycle = self.cycle
                self._cancel_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _arm_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(seconds, self._head_too_slow)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self.cycle is not self._head_cycle or self.transport.is_closing():
                return
            body = render_json(error_body(
                "header_timeout", f"the request headers did not arrive within {seconds:g} s (--header-timeout)"))
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            self.transport.close()

    HeadDeadline.__name__ = HeadDeadline.__qualname__ = f"HeadDeadline{base.__name__}"
    return HeadDeadline


def server_config(app: Any, host: str, port: int, *, header_timeout: float = 10.0, max_connections: int | None = 512,
                  shutdown_timeout: float = 30.0, **uvicorn_options: Any) -> Any:
    """uvicorn's Config for `app` with the connection limits: the head deadline and at most `max_connections`
    open connections (uvicorn answers requests over it 503)."""
    # uvicorn refuses a request once the open connections, its own included, reach limit_concurrency
    limit = None if max_connections is None else max_connections + 1
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return uvicorn.Config(app, host=host, port=port, http=head_deadline_protocol(AutoHTTPProtocol, header_timeout),
                          limit_concurrency=limit, timeout_graceful_shutdown=shutdown_timeout,
                          **uvicorn_options)
