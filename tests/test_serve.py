"""The server: tasks chosen from the checkpoint's head, answers equal to the pipelines', JSON errors with
the right status codes, bad requests among good concurrent ones, batching that really batches, graceful
shutdown, and the `bertkit serve` / `bertkit attention` commands. Tiny random models on the MiniLM vocabulary.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi) is not installed")

from bertkit.commands import serve as serve_app  # noqa: E402
from bertkit.model import (  # noqa: E402
    BertConfig,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertkit.pipelines import pipeline  # noqa: E402
from bertkit.serve.app import background_server, create_app  # noqa: E402
from bertkit.serve.attention_view import attention_data, attention_html  # noqa: E402
from bertkit.serve.service import Limits, ModelService  # noqa: E402

MAX_LENGTH = 32
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def save_tiny(folder: Path, head: type, vocab_dir: Path, **config_fields) -> Path:
    """A tiny random BERT with `head`, saved in HuggingFace layout with the MiniLM (bert-base-uncased) vocabulary."""
    torch.manual_seed(0)
    vocab_size = len((vocab_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())
    model = head(BertConfig.from_size("tiny", vocab_size=vocab_size, **config_fields))
    if head is BertForTokenClassification:
        with torch.no_grad():  # never predict "O": every token is an entity, so there is always one to show
            model.classifier.bias[0] = -20.0
    model.save_pretrained(folder)
    shutil.copy(vocab_dir / "vocab.txt", folder / "vocab.txt")
    return folder


def real_sentences(shared_data: Path, n: int) -> list[str]:
    lines = (shared_data / "en-sentiment-sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0].strip() for line in lines]
    return [s for s in sentences if 4 <= len(s.split()) <= 20][:n]


def masked(sentence: str) -> str:
    words = sentence.split()
    words[1] = "[MASK]"
    return " ".join(words)


@pytest.fixture(scope="module")
def pretraining_dir(tmp_path_factory, minilm_dir) -> Path:
    return save_tiny(tmp_path_factory.mktemp("pretraining"), BertForPreTraining, minilm_dir)


@pytest.fixture(scope="module")
def service(pretraining_dir) -> ModelService:
    return ModelService(pretraining_dir, Limits(max_texts=8, max_length=MAX_LENGTH))


@pytest.fixture(scope="module")
def client(service):
    from fastapi.testclient import TestClient

    with TestClient(create_app(service, max_wait_ms=2)) as test_client:
        yield test_client


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]


# ---- which tasks a checkpoint serves ----

def test_tasks_follow_the_checkpoint_head(service, minilm_dir, tmp_path):
    assert service.tasks == ["tokenize", "embed", "fill-mask", "next-sentence", "attention"]
    minilm = ModelService(minilm_dir)
    assert minilm.architecture == "BertModel" and minilm.tasks == ["tokenize", "embed", "attention"]
    ner = ModelService(save_tiny(tmp_path / "ner", BertForTokenClassification, minilm_dir, id2label=NER_LABELS))
    assert ner.tasks == ["tokenize", "embed", "ner", "attention"]
    assert ner.info()["labels"] == list(NER_LABELS.values())


def test_a_task_the_model_cannot_serve_is_a_404_that_says_why(client, minilm_dir):
    response = client.post("/ner", json={"inputs": "Elon Musk founded Tesla."})
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "task_not_supported"
    assert "BertForTokenClassification" in error["message"] and "fill-mask" in error["message"]
    # the schema lists only what this model serves
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/fill-mask", "/next-sentence", "/embed", "/tokenize", "/attention"} <= paths
    assert not paths & {"/ner", "/qa", "/classify"}


# ---- answers: the server adds batching, never different results ----

def test_fill_mask_and_next_sentence_equal_the_pipelines(client, service, shared_data):
    texts = [masked(s) for s in real_sentences(shared_data, 4)]
    unmasker = pipeline("fill-mask", model=service.model, tokenizer=service.tokenizer)
    response = client.post("/fill-mask", json={"inputs": texts, "top_k": 3})
    assert response.status_code == 200
    for text, got in zip(texts, response.json()["results"]):
        expected = unmasker(text, top_k=3)
        assert [c["token_str"] for c in got] == [c["token_str"] for c in expected]
        assert [c["score"] for c in got] == pytest.approx([c["score"] for c in expected], rel=1e-4)

    nsp = pipeline("next-sentence-prediction", model=service.model, tokenizer=service.tokenizer)
    pair = {"text": "I am going outside.", "text_pair": "I will be back after 6."}
    got = client.post("/next-sentence", json={"inputs": pair}).json()["results"][0]
    expected = nsp(pair["text"], pair["text_pair"])
    assert got["label"] == expected["label"]
    assert got["probabilities"]["IsNext"] == pytest.approx(expected["probabilities"]["IsNext"], rel=1e-4)


def test_embed_equals_sentence_transformers_recipe_on_minilm(minilm_dir):
    """MiniLM's folder says mean pooling + normalize: the server uses it, so vectors have norm 1 and
    equal the feature-extraction pipeline's."""
    from fastapi.testclient import TestClient

    service = ModelService(minilm_dir, Limits(max_length=64))
    texts = ["He got bit by Python.", "Python is my favorite programming language."]
    with TestClient(create_app(service)) as client:
        vectors = client.post("/embed", json={"inputs": texts}).json()["results"]
    expected = pipeline("feature-extraction", model=service.encoder, tokenizer=service.tokenizer).encode(
        texts, pooling="mean", normalize=True
    )
    assert torch.tensor(vectors) == pytest.approx(torch.tensor(expected), abs=1e-5)
    assert torch.tensor(vectors).norm(dim=1).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)


def test_tokenize_and_attention(client, service):
    result = client.post("/tokenize", json={"inputs": "He got bit by Python"}).json()["results"][0]
    assert result["tokens"] == ["[CLS]", "he", "got", "bit", "by", "python", "[SEP]"]
    assert result["offsets"][5] == [14, 20]

    data = client.post("/attention", json={"inputs": "He got bit by Python"}).json()["results"][0]
    assert data["tokens"] == result["tokens"] and data["layers"] == [0, 1]
    maps = torch.tensor(data["attentions"])
    assert maps.shape == (2, 2, 7, 7)  # layers, heads, from, to
    assert maps.sum(-1) == pytest.approx(torch.ones(2, 2, 7), abs=1e-3)  # each row is a distribution
    encoded = service.tokenizer("He got bit by Python", return_tensors="pt")
    with torch.inference_mode():
        reference = torch.stack(service.encoder(**encoded, output_attentions=True).attentions)[:, 0]
    assert maps == pytest.approx(reference, abs=1e-4)
    one_layer = client.post("/attention", json={"inputs": "He got bit", "layer": -1}).json()["results"][0]
    assert one_layer["layers"] == [1] and len(one_layer["attentions"]) == 1


def test_classify_ner_and_qa_on_their_heads(minilm_dir, tmp_path):
    from fastapi.testclient import TestClient

    labels = {0: "negative", 1: "positive"}
    classifier = ModelService(save_tiny(tmp_path / "cls", BertForSequenceClassification, minilm_dir, id2label=labels))
    with TestClient(create_app(classifier)) as client:
        result = client.post("/classify", json={"inputs": "a charming journey"}).json()["results"][0]
    assert sorted(r["label"] for r in result) == ["negative", "positive"]
    assert sum(r["score"] for r in result) == pytest.approx(1.0, abs=1e-5)
    assert result[0]["score"] >= result[1]["score"]

    text = "Elon Musk founded Tesla in California."
    tagger = ModelService(save_tiny(tmp_path / "ner", BertForTokenClassification, minilm_dir, id2label=NER_LABELS))
    with TestClient(create_app(tagger)) as client:
        entities = client.post("/ner", json={"inputs": text}).json()["results"][0]
    assert entities, "the tiny tagger never predicts O, so there must be entities"
    for entity in entities:
        assert entity["entity_group"] in {"PER", "LOC"}
        assert text[entity["start"]:entity["end"]].lower().replace(" ", "") == entity["word"].replace(" ", "").replace("##", "")

    reader = ModelService(save_tiny(tmp_path / "qa", BertForQuestionAnswering, minilm_dir))
    context = "The Eiffel Tower is in Paris. It was built in 1889."
    with TestClient(create_app(reader)) as client:
        answer = client.post("/qa", json={"inputs": {"question": "Where is the tower?", "context": context}}).json()["results"][0]
    assert context[answer["start"]:answer["end"]] == answer["answer"] and 0 <= answer["score"] <= 1


# ---- errors: JSON, clear, the right status ----

LONG = "word " * 40 + "[MASK]"
ERRORS = [
    ("/fill-mask", b'{"inputs": "a [MASK]"', 400, "malformed_json"),
    ("/fill-mask", b"not json at all", 400, "malformed_json"),
    ("/fill-mask", '{"inputs": "a [MASK]"}', 415, "unsupported_media_type"),
    ("/fill-mask", {"inputs": 42}, 422, "invalid_request"),
    ("/fill-mask", {"inputs": ["ok [MASK]", 7]}, 422, "invalid_request"),
    ("/fill-mask", {"inputs": "a [MASK]", "top_k": "three"}, 422, "invalid_request"),
    ("/fill-mask", {"input": "a [MASK]"}, 422, "invalid_request"),  # a typo of inputs
    ("/fill-mask", {"inputs": []}, 422, "empty_input"),
    ("/fill-mask", {"inputs": "   "}, 422, "empty_input"),
    ("/fill-mask", {"inputs": "no mask here"}, 422, "no_mask"),
    ("/fill-mask", {"inputs": ["a [MASK]"] * 9}, 413, "too_many_texts"),
    ("/fill-mask", {"inputs": LONG}, 413, "text_too_long"),
    ("/fill-mask", {"inputs": "x" * 10_000 + " [MASK]"}, 413, "text_too_long"),
    ("/next-sentence", {"inputs": {"text": "only one"}}, 422, "invalid_request"),
    ("/attention", {"inputs": "hello", "layer": 5}, 422, "invalid_request"),
    ("/attention", {"inputs": "hello " * 40}, 413, "text_too_long"),
    ("/qa", {"inputs": {"question": "q", "context": "c"}}, 404, "task_not_supported"),
    ("/no-such-thing", {"inputs": "x"}, 404, "not_found"),
]


@pytest.mark.parametrize("path, body, status, code", ERRORS, ids=[f"{e[3]}-{i}" for i, e in enumerate(ERRORS)])
def test_bad_requests_get_clear_json_errors(client, path, body, status, code):
    if isinstance(body, str):  # form-encoded, as curl -d sends without -H
        response = client.post(path, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    elif isinstance(body, bytes):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    assert len(error["message"]) > 20  # says what was wrong and what to do


def test_truncate_per_request_and_per_server(client, pretraining_dir):
    from fastapi.testclient import TestClient

    long_text = "[MASK] " + "word " * 60
    assert client.post("/fill-mask", json={"inputs": long_text}).status_code == 413
    assert client.post("/fill-mask", json={"inputs": long_text, "truncate": True}).status_code == 200
    # the cut keeps the first max_length - 2 word pieces
    full = client.post("/tokenize", json={"inputs": "word " * 60}).json()["results"][0]["tokens"]
    assert full == ["[CLS]"] + ["word"] * (MAX_LENGTH - 2) + ["[SEP]"]
    with TestClient(create_app(ModelService(pretraining_dir, Limits(max_length=MAX_LENGTH, truncate=True)))) as cut:
        assert cut.post("/embed", json={"inputs": "word " * 60}).status_code == 200
        # a mask past the limit is cut off, and the error says so
        error = error_of(cut.post("/fill-mask", json={"inputs": "word " * 60 + "[MASK]"}))
        assert error["code"] == "no_mask" and "cut" in error["message"]
        # a pair is cut longest first, and both halves stay
        pair = {"text": "short one", "text_pair": "word " * 60}
        assert cut.post("/next-sentence", json={"inputs": pair}).status_code == 200


def test_attention_has_its_own_smaller_limit(pretraining_dir):
    from fastapi.testclient import TestClient

    text = "word " * 200  # 202 tokens: fine to embed, too long to draw
    with TestClient(create_app(ModelService(pretraining_dir, Limits(max_length=512)))) as client:
        assert client.post("/embed", json={"inputs": text}).status_code == 200
        error = error_of(client.post("/attention", json={"inputs": text}))
        assert error["code"] == "text_too_long" and "limit is 128" in error["message"]
        cut = client.post("/attention", json={"inputs": text, "truncate": True}).json()["results"][0]
        assert len(cut["tokens"]) == 128


def test_health_ready_info_and_the_page(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    info = client.get("/info").json()
    assert info["num_layers"] == 2 and info["limits"]["max_length"] == MAX_LENGTH
    page = client.get("/")
    assert page.status_code == 200 and "attention.js" in page.text
    assert client.get("/static/attention.js").status_code == 200


def test_ready_is_503_before_the_app_starts(service):
    from fastapi.testclient import TestClient

    app = create_app(service)
    client = TestClient(app)  # without `with`: the lifespan (batchers) has not run
    response = client.get("/ready")
    assert response.status_code == 503 and error_of(response)["code"] == "not_ready"
    assert error_of(client.post("/embed", json={"inputs": "hi"}))["code"] == "not_ready"


# ---- concurrency: batching, isolation ----

async def fire(app, requests: list[tuple[str, object]]) -> list[httpx.Response]:
    """All requests at once, in one event loop with the app (its lifespan running)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as http:
            async def send(path, body):
                if isinstance(body, bytes):
                    return await http.post(path, content=body, headers={"content-type": "application/json"})
                return await http.post(path, json=body)

            return await asyncio.gather(*(send(path, body) for path, body in requests))


def test_bad_requests_in_the_middle_of_good_ones_disturb_nothing(service, shared_data):
    texts = [masked(s) for s in real_sentences(shared_data, 24)]
    unmasker = pipeline("fill-mask", model=service.model, tokenizer=service.tokenizer)
    expected = [unmasker(text, top_k=2) for text in texts]  # each one alone
    bad = [
        ({"inputs": "no mask"}, 422), ({"inputs": LONG}, 413), (b"{oops", 400), ({"inputs": 3}, 422),
        ({"inputs": ["a [MASK]"] * 9}, 413), ({"inputs": ""}, 422), ({"inputs": "a [MASK]", "top_k": 0}, 422),
    ]
    requests, kinds = [], []
    for index, text in enumerate(texts):
        requests.append(("/fill-mask", {"inputs": text, "top_k": 2}))
        kinds.append(("good", index))
        if index % 3 == 1:
            body, status = bad[(index // 3) % len(bad)]
            requests.append(("/fill-mask", body))
            kinds.append(("bad", status))
    app = create_app(service, max_batch_size=8, max_wait_ms=50)
    responses = asyncio.run(fire(app, requests))
    for (kind, value), response in zip(kinds, responses):
        if kind == "bad":
            assert response.status_code == value, response.text
            continue
        assert response.status_code == 200, response.text
        got = response.json()["results"][0]
        assert [c["token"] for c in got] == [c["token"] for c in expected[value]]
        assert [c["score"] for c in got] == pytest.approx([c["score"] for c in expected[value]], rel=1e-4)
    assert max(app.state.batchers["fill-mask"].stats.batch_sizes) > 1  # they really shared passes


def test_an_input_that_fails_inside_a_batch_fails_alone(pretraining_dir, monkeypatch):
    """Past validation, a pipeline may still refuse an input mid-batch: only that request gets the error."""
    service = ModelService(pretraining_dir, Limits(max_length=64))
    real_batch_function = service.batch_function

    def poisoned(task):
        run = real_batch_function(task)

        def run_batch(items):
            if any("poison" in item.payload for item in items):
                raise ValueError("this input poisons the pipeline")
            return run(items)

        return run_batch

    monkeypatch.setattr(service, "batch_function", poisoned)
    texts = [f"request number {i} asks what the [MASK] is ." for i in range(8)]  # one length: one batch
    texts.insert(4, "request number poison asks what the [MASK] is .")
    app = create_app(service, max_batch_size=16, max_wait_ms=500)
    responses = asyncio.run(fire(app, [("/fill-mask", {"inputs": t, "top_k": 1}) for t in texts]))
    unmasker = pipeline("fill-mask", model=service.model, tokenizer=service.tokenizer)
    for text, response in zip(texts, responses):
        if "poison" in text:
            assert response.status_code == 422 and error_of(response)["code"] == "invalid_input"
            assert "poisons" in error_of(response)["message"]
        else:
            assert response.status_code == 200
            assert response.json()["results"][0][0]["token"] == unmasker(text, top_k=1)[0]["token"]
    stats = app.state.batchers["fill-mask"].stats
    assert stats.batch_sizes[0] == len(texts) and stats.retried_alone == len(texts)


def count_forward_passes(model: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, kwargs_or_output: calls.append(1))
    return calls


def test_batching_groups_concurrent_requests_into_few_forward_passes(pretraining_dir):
    # lengths within a few tokens of each other, so length grouping keeps them in full batches
    texts = [f"request number {i} asks what the [MASK] is ." for i in range(24)]
    service = ModelService(pretraining_dir, Limits(max_length=64))
    calls = count_forward_passes(service.model)

    batched = create_app(service, max_batch_size=8, max_wait_ms=1000)
    responses = asyncio.run(fire(batched, [("/fill-mask", {"inputs": t}) for t in texts]))
    assert all(r.status_code == 200 for r in responses)
    assert len(calls) == 3  # 24 requests, 8 per pass
    assert batched.state.batchers["fill-mask"].stats.batch_sizes == [8, 8, 8]
    batched_answers = [r.json()["results"][0][0]["token"] for r in responses]

    calls.clear()
    one_by_one = create_app(service, max_batch_size=1, max_wait_ms=0)
    responses = asyncio.run(fire(one_by_one, [("/fill-mask", {"inputs": t}) for t in texts]))
    assert len(calls) == 24
    assert [r.json()["results"][0][0]["token"] for r in responses] == batched_answers


def test_requests_with_different_parameters_in_one_batch_each_get_theirs(pretraining_dir):
    texts = [f"sentence number {i} is about the weather ." for i in range(6)]  # one length: one batch
    service = ModelService(pretraining_dir, Limits(max_length=64))
    calls = count_forward_passes(service.encoder)
    requests = [("/embed", {"inputs": t, "pooling": pooling}) for t in texts for pooling in ("cls", "mean")]
    app = create_app(service, max_batch_size=32, max_wait_ms=1000)
    responses = asyncio.run(fire(app, requests))
    assert app.state.batchers["embed"].stats.batch_sizes == [12]  # one gathered batch ...
    assert len(calls) == 2  # ... run as one forward pass per parameter set
    extractor = pipeline("feature-extraction", model=service.encoder, tokenizer=service.tokenizer)
    for (_, body), response in zip(requests, responses):
        expected = extractor(body["inputs"], pooling=body["pooling"])
        assert response.json()["results"][0] == pytest.approx(expected, abs=1e-5)


# ---- a real server: graceful shutdown ----

def test_graceful_shutdown_lets_requests_in_flight_finish(service):
    app = create_app(service, max_batch_size=32, max_wait_ms=1500)  # requests sit in the batcher a while
    texts = [f"request {i} is a [MASK] ." for i in range(6)]
    results: dict[int, httpx.Response] = {}
    with background_server(app) as url:
        def post(i: int) -> None:
            results[i] = httpx.post(f"{url}/fill-mask", json={"inputs": texts[i]}, timeout=30)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(len(texts))]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while app.state.batchers["fill-mask"].queued < len(texts) and time.monotonic() < deadline:
            time.sleep(0.005)  # wait until all are in flight (queued in the batcher)
        assert app.state.batchers["fill-mask"].queued == len(texts)
        app.state.server.should_exit = True  # what SIGTERM / Ctrl-C does
        for thread in threads:
            thread.join(timeout=30)
        time.sleep(0.3)
        with pytest.raises(httpx.HTTPError):  # the server is gone now
            httpx.get(f"{url}/health", timeout=2)
    assert sorted(results) == list(range(len(texts)))
    assert all(r.status_code == 200 and r.json()["results"][0] for r in results.values())


def test_sigterm_to_bertkit_serve_lets_requests_in_flight_finish(pretraining_dir):
    """The real command in its own process: SIGTERM (what Ctrl-C, docker stop, systemd send) is graceful."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    repo = Path(__file__).resolve().parents[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "bertkit", "serve", "--model", str(pretraining_dir), "--port", str(port),
         "--max-wait-ms", "1500", "--no-access-log"],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        results: dict[int, httpx.Response] = {}

        def post(i: int) -> None:
            results[i] = httpx.post(f"{url}/fill-mask", json={"inputs": f"request {i} is a [MASK] ."}, timeout=30)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        while httpx.get(f"{url}/info", timeout=5).json()["queued"]["fill-mask"] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        # uvicorn finishes, then re-raises the signal to itself so the parent sees how it ended
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
    assert sorted(results) == [0, 1, 2, 3]
    assert all(r.status_code == 200 and r.json()["results"][0] for r in results.values())
    log = server.stdout.read().decode()
    assert "Waiting for application shutdown" in log or "Shutting down" in log


# ---- the commands ----

def serve_args(**overrides) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_app.add_arguments(parser)
    args = parser.parse_args(["--model", "m"])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


@pytest.mark.parametrize("field, value, message", [
    ("max_batch_size", 0, "--max-batch-size"), ("max_texts", 0, "--max-texts"),
    ("max_wait_ms", -1, "--max-wait-ms"), ("max_length", 2, "--max-length"),
])
def test_serve_refuses_bad_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        serve_app.run(serve_args(**{field: value}))


def test_serve_needs_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        serve_app.run(serve_args(model=str(tmp_path)))


def test_max_length_over_the_model_positions_is_refused(pretraining_dir):
    with pytest.raises(ValueError, match="--max-length"):
        ModelService(pretraining_dir, Limits(max_length=10_000))


def test_attention_command_writes_a_self_contained_page(pretraining_dir, tmp_path, service):
    from bertkit.cli import main

    out = tmp_path / "view.html"
    assert main(["attention", "He got bit by Python", "--model", str(pretraining_dir), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "AttentionView.render" in page and '"python"' in page
    for fetches in ("src=", "href=", "fetch(", "@import", "url("):  # nothing is loaded from anywhere
        assert fetches not in page
    # the embedded data is the model's attention
    payload = page[page.rindex("AttentionView.render(") :].split(", ", 1)[1].rsplit(");", 1)[0]
    data = json.loads(payload)
    assert data == attention_data(service.model, service.tokenizer, "He got bit by Python")
    assert main(["attention", "  ", "--model", str(pretraining_dir), "--out", str(out)]) == 2


def test_attention_fragments_can_share_a_page(service, tmp_path):
    """The demo's report puts views inside its own page: two fragments on one page both render."""
    from bertkit.serve.attention_view import view_fragment

    first = view_fragment(attention_data(service.model, service.tokenizer, "He got bit by Python"), "one")
    second = view_fragment(attention_data(service.model, service.tokenizer, "Python is my language"), "two")
    assert first == attention_html(service.model, service.tokenizer, "He got bit by Python", fragment=True).replace(
        "bertkit-attention", "one")
    assert '<div id="one"></div>' in first and "<html" not in first
    page = tmp_path / "report.html"
    page.write_text(f"<!doctype html><html><body><h1>report</h1>{first}<p>between</p>{second}</body></html>")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        return  # the markup checks above still ran; the browser check needs chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--headless", "--no-sandbox", "--disable-gpu"])
        view = browser.new_page()
        errors: list[str] = []
        view.on("pageerror", lambda error: errors.append(str(error)))
        view.goto(page.as_uri())
        tokens = view.eval_on_selector_all("#two text.attn-left", "ts => ts.map(t => t.textContent)")
        assert view.locator("#one .attn-svg").count() == 1 and view.locator("#two .attn-svg").count() == 1
        browser.close()
    assert errors == []
    assert tokens == ["[CLS]", "python", "is", "my", "language", "[SEP]"]


def test_attention_html_escapes_what_the_text_holds(service):
    page = attention_html(service.model, service.tokenizer, "a </script><b>bold</b>")
    assert page.count("</script>") == 2  # only our two script blocks end; the text cannot close them
    assert "<b>bold</b>" not in page
