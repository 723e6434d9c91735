"""Issue 23 (server parts): what the server does with slow and greedy clients, on raw sockets against a real
`bertkit serve` process on 127.0.0.1: header and body deadlines (408, connection closed), the cap on open
connections (503), a 413 that a plain `urllib` client reads, SIGTERM with an upload still open (503 at once,
exit 0 within 10 s, no traceback), and a port in use said before the model loads.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi) is not installed")

from test_serve import save_tiny  # noqa: E402

from bertkit.errors import UserError  # noqa: E402
from bertkit.model import BertModel  # noqa: E402
from bertkit.serve.connections import check_port_free  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEADER_TIMEOUT, BODY_TIMEOUT, MAX_BODY, MAX_CONNECTIONS = 1.0, 1.5, 4096, 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(folder: Path, port: int, *flags: str) -> subprocess.Popen:
    """`bertkit serve` on 127.0.0.1:port, returned once /ready answers (at most 90 s)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bertkit", "serve", "--model", str(folder), "--port", str(port), "--no-access-log",
         *flags], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as ready:
                if ready.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError(f"the server did not start: {server.communicate()[0].decode()[-2000:]}")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.kill()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, minilm_dir) -> Path:
    return save_tiny(tmp_path_factory.mktemp("encoder"), BertModel, minilm_dir)


@pytest.fixture(scope="module")
def port(model_folder):
    """One server with short deadlines, a small body cap and a small connection cap."""
    port = free_port()
    server = start_server(model_folder, port, "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
                          "--max-body-bytes", str(MAX_BODY), "--max-connections", str(MAX_CONNECTIONS))
    yield port
    stop(server)


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection (at most `seconds`), and when it closed."""
    sock.settimeout(seconds)
    began, received = time.monotonic(), b""
    while time.monotonic() - began < seconds:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            return received, time.monotonic() - began
        received += chunk
    raise AssertionError(f"the connection was still open after {seconds} s; received {received[:200]!r}")


def error_code(answer: bytes) -> str:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"]


def post_head(path: str, length: int, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


def test_a_body_sent_a_byte_at_a_time_gets_408_and_the_connection_is_closed(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(post_head("/embed", 100))
        began = time.monotonic()
        for _ in range(40):  # a byte every 0.1 s: never a pause long enough for a per-read timeout
            try:
                sock.sendall(b" ")
            except OSError:  # closed by the server
                break
            if time.monotonic() - began > BODY_TIMEOUT + 1:
                break
            time.sleep(0.1)
        answer, _ = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert error_code(answer) == "body_timeout" and b"--body-timeout" in answer


def test_headers_sent_slowly_and_a_silent_connection_get_408_and_are_closed(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow, \
            socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
        slow.sendall(b"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        began = time.monotonic()
        for index in range(40):
            try:
                slow.sendall(b"X-Slow-%d: 1\r\n" % index)
            except OSError:
                break
            if time.monotonic() - began > HEADER_TIMEOUT + 1:
                break
            time.sleep(0.1)
        answer, _ = read_until_closed(slow, 10)
        assert answer.startswith(b"HTTP/1.1 408") and error_code(answer) == "header_timeout", answer[:200]
        quiet, _ = read_until_closed(silent, 10)
        assert quiet.startswith(b"HTTP/1.1 408")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as health:  # the server is fine
        assert health.status == 200


def test_requests_over_max_connections_get_503(port):
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(MAX_CONNECTIONS)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer, _ = read_until_closed(extra, 10)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    finally:
        for sock in held:
            sock.close()
    for _ in range(50):  # the server notices the closed connections at once; bounded all the same
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as health:
                assert health.status == 200
                return
        except urllib.error.HTTPError as refused:
            assert refused.code == 503
            time.sleep(0.1)
    raise AssertionError("requests were still refused after the held connections closed")


@pytest.mark.parametrize("size", [MAX_BODY + 1, 16 << 20])
def test_a_plain_urllib_client_reads_the_413(port, size):
    """The server reads the rest of an oversized body before it answers, so a client that writes the whole body
    before reading gets the 413 and its message, not ConnectionResetError (the issue: 48 of 48 times)."""
    body = b'{"inputs": "' + b"x" * size + b'"}'
    for _ in range(5):  # before the fix: a reset most times, not every time
        request = urllib.request.Request(f"http://127.0.0.1:{port}/embed", data=body,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413
        error = json.loads(refused.value.read())["error"]
        assert error["code"] == "body_too_large" and "--max-body-bytes" in error["message"]


def test_expect_100_continue_gets_the_413_before_sending_the_body(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(post_head("/embed", 10 << 20, "Expect: 100-continue\r\n"))
        answer, _ = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 413") and error_code(answer) == "body_too_large"


def test_sigterm_with_an_upload_open_answers_503_at_once_and_exits_0(model_folder):
    port = free_port()
    server = start_server(model_folder, port, "--shutdown-timeout", "30", "--drain-seconds", "1")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as upload:
            upload.sendall(post_head("/embed", 1000) + b'{"inputs": "a')
            time.sleep(0.3)
            began = time.monotonic()
            server.send_signal(signal.SIGTERM)
            answer, took = read_until_closed(upload, 10)
        assert answer.startswith(b"HTTP/1.1 503") and error_code(answer) == "not_ready", answer[:300]
        assert took < 2, f"the upload was answered {took:.1f} s after SIGTERM"
        assert server.wait(timeout=10) == 0
        assert time.monotonic() - began < 10
        output = server.stdout.read().decode()
        assert "Traceback" not in output and "CancelledError" not in output, output[-2000:]
    finally:
        stop(server)


def test_a_port_in_use_is_said_before_the_model_loads(model_folder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} .* in use.*--port"):
            check_port_free("127.0.0.1", port)
        began = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "bertkit", "serve", "--model", str(model_folder), "--port", str(port)],
                                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                                timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "--port" in output and "in use" in output, output[-2000:]
    assert "page http" not in output and "Traceback" not in output and time.monotonic() - began < 60
    check_port_free("127.0.0.1", port)  # free again once closed
