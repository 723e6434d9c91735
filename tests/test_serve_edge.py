"""Issue 14 (server parts): bad input at the API edge, as a table of input -> expected status, code and words of
the message; the one rule for unpaired surrogates (replaced by U+FFFD); no exception text in a 500; HEAD; and
SIGTERM with kept-alive connections (answered 503, exit status 0).
"""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi) is not installed")

from test_serve import error_of, save_tiny  # noqa: E402

from bertkit.model import BertForPreTraining, BertForQuestionAnswering  # noqa: E402
from bertkit.serve.app import create_app  # noqa: E402
from bertkit.serve.service import Limits, ModelService  # noqa: E402

JSON = {"content-type": "application/json"}
LIMITS = Limits(max_texts=8, max_length=32, max_total_tokens=64, max_masks=3, max_top_k=10, max_body_bytes=8192,
                max_response_bytes=3000)


@pytest.fixture(scope="module")
def client(tmp_path_factory, minilm_dir):
    from fastapi.testclient import TestClient

    folder = save_tiny(tmp_path_factory.mktemp("lm"), BertForPreTraining, minilm_dir)
    with TestClient(create_app(ModelService(folder, LIMITS))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def qa_client(tmp_path_factory, minilm_dir):
    from fastapi.testclient import TestClient

    folder = save_tiny(tmp_path_factory.mktemp("qa"), BertForQuestionAnswering, minilm_dir)
    with TestClient(create_app(ModelService(folder)), raise_server_exceptions=False) as test_client:
        yield test_client


# (what, method, path, body: bytes sent as is / dict as JSON, headers, status, code, words in the message)
BAD_INPUTS = [
    ("invalid UTF-8", "POST", "/embed", b'{"inputs": "caf\xe9 \xff"}', JSON, 400, "malformed_json", "UTF-8"),
    ("1,000-deep nesting", "POST", "/embed", b'{"inputs": ' + b"[" * 1000 + b"]" * 1000 + b"}", JSON,
     400, "malformed_json", "deeply"),
    ("5,000-digit integer", "POST", "/fill-mask", b'{"inputs": "a [MASK]", "top_k": ' + b"7" * 5000 + b"}", JSON,
     400, "malformed_json", "digits"),
    ("truncated JSON", "POST", "/embed", b'{"inputs": "a"', JSON, 400, "malformed_json", "not valid JSON"),
    ("application/jsonx", "POST", "/embed", b'{"inputs": "a"}', {"content-type": "application/jsonx"},
     415, "unsupported_media_type", "Content-Type: application/json"),
    ("text/plain", "POST", "/embed", b'{"inputs": "a"}', {"content-type": "text/plain"}, 415, "unsupported_media_type", "JSON"),
    ("control characters only", "POST", "/embed", {"inputs": "\x00\x01\x02\x7f"}, None, 422, "empty_input", "no tokens"),
    ("escaped lone surrogates only", "POST", "/embed", b'{"inputs": "\\udfff\\ud800"}', JSON, 422, "empty_input", "surrogates"),
    ("raw CESU-8 surrogate only", "POST", "/embed", b'{"inputs": "\xed\xa0\x80"}', JSON, 422, "empty_input", "no tokens"),
    ("zero-width only", "POST", "/tokenize", {"inputs": "\u200b\u200d"}, None, 422, "empty_input", "no tokens"),
    ("empty text_pair", "POST", "/next-sentence", {"inputs": {"text": "a b", "text_pair": "\x03"}}, None,
     422, "empty_input", "text_pair 0"),
    ("whitespace", "POST", "/embed", {"inputs": ["ok", " \n\t"]}, None, 422, "empty_input", "text 1"),
    ("body over --max-body-bytes", "POST", "/embed", {"inputs": "x" * 9000}, None, 413, "body_too_large", "--max-body-bytes"),
    ("tokens over --max-total-tokens", "POST", "/embed", {"inputs": ["one two three four five six seven eight nine ten "
                                                                     "eleven twelve"] * 5}, None,
     413, "too_many_tokens", "--max-total-tokens"),
    ("masks over --max-masks", "POST", "/fill-mask", {"inputs": "[MASK] [MASK] [MASK] [MASK]"}, None,
     422, "too_many_masks", "--max-masks"),
    ("top_k over --max-top-k", "POST", "/fill-mask", {"inputs": "a [MASK]", "top_k": 11}, None, 422, "top_k_too_large", "--max-top-k"),
    ("top_k below 1", "POST", "/fill-mask", {"inputs": "a [MASK]", "top_k": 0}, None, 422, "invalid_request", "top_k"),
    ("answer over --max-response-bytes", "POST", "/attention", {"inputs": "word " * 20}, None,
     413, "response_too_large", "--max-response-bytes"),
    ("too many texts", "POST", "/embed", {"inputs": ["a"] * 9}, None, 413, "too_many_texts", "--max-texts"),
    ("text over --max-length", "POST", "/embed", {"inputs": "word " * 40}, None, 413, "text_too_long", "truncate"),
    ("unknown field", "POST", "/embed", {"input": "a"}, None, 422, "invalid_request", "inputs"),
    ("GET on a task", "GET", "/embed", None, None, 405, "method_not_allowed", "GET /embed"),
    ("no such endpoint", "POST", "/nope", {"inputs": "a"}, None, 404, "not_found", "/embed"),
    ("task without its head", "POST", "/qa", {"inputs": {"question": "q", "context": "c"}}, None,
     404, "task_not_supported", "BertForQuestionAnswering"),
]


@pytest.mark.parametrize("what, method, path, body, headers, status, code, words", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_gets_its_status_code_and_message(client, what, method, path, body, headers, status, code, words):
    if isinstance(body, bytes):
        response = client.request(method, path, content=body, headers=headers)
    else:
        response = client.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code and words in error["message"], error
    assert client.get("/health").status_code == 200


def test_lone_surrogates_become_replacement_characters_everywhere(client, qa_client):
    """The issue's 500: the answer was sliced from a context holding \\ud800 and could not be written as JSON."""
    body = b'{"inputs": {"question": "Which city?", "context": "' + b'Paris\\ud800London\\ud800Rome\\ud800Berlin ' * 10 + b'"}}'
    response = qa_client.post("/qa", content=body, headers=JSON)
    assert response.status_code == 200, response.text
    answer = response.json()["results"][0]
    context = ("Paris\ufffdLondon\ufffdRome\ufffdBerlin " * 10)
    assert context[answer["start"]:answer["end"]] == answer["answer"]  # offsets count as the client does
    raw = qa_client.post("/qa", content=body.replace(b"\\ud800", b"\xed\xa0\x80"), headers=JSON)
    assert raw.status_code == 200 and raw.json() == response.json()
    # a pair split in two escapes is one character again; a lone one is U+FFFD
    tokens = client.post("/tokenize", content=b'{"inputs": "a\\ud800b \\ud83d\\ude00 c"}', headers=JSON).json()["results"][0]
    # "a\ufffdb" is one word (BERT drops U+FFFD), the emoji one [UNK] of one character, "c" still at index 6
    assert tokens["tokens"][1:4] == ["ab", "[UNK]", "c"] and tokens["offsets"][1:4] == [[0, 3], [4, 5], [6, 7]]
    masked = client.post("/fill-mask", content=b'{"inputs": "Paris [MASK\\ud800 is [MASK] ."}', headers=JSON)
    assert masked.status_code == 200


def test_a_500_never_shows_the_exception_text(qa_client, monkeypatch, caplog):
    service = qa_client.app.state.service

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail /home/model/weights")

    monkeypatch.setattr(service, "tokenize", broken)
    response = qa_client.post("/tokenize", json={"inputs": "hello"})
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error" and "secret" not in error["message"] and "RuntimeError" not in error["message"]
    assert "error id" in error["message"]
    error_id = error["message"].split("error id ")[1].split(";")[0]
    assert any(error_id in record.getMessage() for record in caplog.records)  # the log has it, under that id


def test_head_answers_like_get_without_a_body(client):
    for path in ("/", "/health", "/ready", "/info"):
        response = client.head(path)
        assert response.status_code == 200 and response.content == b""
        assert response.headers["content-type"] == client.get(path).headers["content-type"]
    assert client.head("/embed").status_code == 405


def test_sigterm_answers_kept_alive_connections_503_and_exits_0(tmp_path, minilm_dir):
    """After SIGTERM, a request on a kept-alive connection gets 503 not_ready with Connection: close (not a
    reset), new connections too, for --drain-seconds; then the server stops gracefully with exit status 0."""
    import http.client
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    folder = save_tiny(tmp_path / "lm", BertForPreTraining, minilm_dir)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    repo = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "bertkit", "serve", "--model", str(folder), "--port", str(port), "--drain-seconds", "2",
         "--no-access-log"],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            try:
                kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                kept.request("GET", "/ready")
                ready = kept.getresponse()
                ready.read()
                if ready.status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        body = json.dumps({"inputs": "a [MASK] ."})
        kept.request("POST", "/fill-mask", body=body, headers=JSON)
        first = kept.getresponse()
        assert first.status == 200 and first.read()
        server.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        kept.request("POST", "/fill-mask", body=body, headers=JSON)  # the same, kept-alive connection
        late = kept.getresponse()
        payload = json.loads(late.read())
        assert late.status == 503 and payload["error"]["code"] == "not_ready"
        assert late.getheader("connection") == "close" and late.getheader("retry-after") == "1"
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
