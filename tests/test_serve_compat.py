"""Clients of other servers talk to bertkit's: the `openai` client's embeddings.create against the running server (float
and base64 equal bertkit's /embed), text-embeddings-inference's routes and shapes (/embed's two bodies, /tokenize,
/decode, /embed_all, /predict, /rerank, /info) under bertkit's limits, Prometheus' /metrics, and an exported ONNX
folder that transformers (and optimum, when installed) load."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("prometheus_client", reason="the [serve] extra (prometheus-client) is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from bertkit.model import BertConfig, BertForSequenceClassification, BertModel  # noqa: E402
from bertkit.serve.app import background_server, create_app  # noqa: E402
from bertkit.serve.service import Limits, ModelService  # noqa: E402

TEXTS = ["He got bit by Python.", "Python is my favorite programming language.", "Paris is lovely in spring."]


def tiny_folder(folder, vocab_dir, head=BertModel, **config_fields):
    torch.manual_seed(0)
    vocab_size = len((vocab_dir / "vocab.txt").read_text(encoding="utf-8").splitlines())
    head(BertConfig.from_size("tiny", vocab_size=vocab_size, **config_fields)).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(vocab_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return ModelService(minilm_dir, Limits(max_length=64, max_texts=8))


@pytest.fixture(scope="module")
def client(minilm):
    with TestClient(create_app(minilm)) as client:
        yield client


def test_openai_client_against_the_running_server(minilm):
    openai = pytest.importorskip("openai")
    with background_server(create_app(minilm)) as url:
        api = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        own = np.array(__import__("httpx").post(url + "/embed", json={"inputs": TEXTS}).json()["results"])
        default = api.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)  # the client asks for base64
        floats = api.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, encoding_format="float")
        single = api.embeddings.create(model="m", input=TEXTS[0])
        with pytest.raises(openai.APIStatusError) as refused:
            api.embeddings.create(model="m", input=["a"] * 9)
    for answer in (default, floats):
        assert [d.index for d in answer.data] == [0, 1, 2] and answer.model == "all-MiniLM-L6-v2"
        assert np.abs(np.array([d.embedding for d in answer.data]) - own).max() < 1e-6
    tokens = sum(len(ids) for ids in minilm.tokenizer(TEXTS)["input_ids"])
    assert default.usage.prompt_tokens == default.usage.total_tokens == tokens
    assert np.abs(np.array(single.data[0].embedding) - own[0]).max() < 1e-6
    assert refused.value.status_code == 413 and "--max-texts" in refused.value.response.json()["error"]["message"]


def test_openai_base64_is_little_endian_float32(client):
    body = {"input": TEXTS[:2], "model": "m"}
    floats = client.post("/v1/embeddings", json={**body, "encoding_format": "float"}).json()
    packed = client.post("/v1/embeddings", json={**body, "encoding_format": "base64", "user": "u"}).json()
    import base64

    for f, b in zip(floats["data"], packed["data"]):
        assert np.frombuffer(base64.b64decode(b["embedding"]), dtype="<f4").tolist() == pytest.approx(f["embedding"], abs=1e-7)
    assert client.post("/v1/embeddings", json={**body, "dimensions": 12}).status_code == 422


def test_embed_answers_each_api_in_its_shape(client, minilm):
    own = client.post("/embed", json={"inputs": TEXTS}).json()["results"]  # bertkit's body, unchanged
    tei = client.post("/embed", json={"inputs": TEXTS, "truncate": False, "truncation_direction": "Right"})
    assert tei.status_code == 200 and np.abs(np.array(tei.json()) - np.array(own)).max() < 1e-6
    mixed = client.post("/embed", json={"inputs": "a", "pooling": "cls", "truncation_direction": "Right"})
    assert mixed.status_code == 422 and "one API" in mixed.json()["error"]["message"]
    assert client.post("/embed", json={"inputs": "a", "truncation_direction": "Left"}).status_code == 422
    assert "prompt" in client.post("/embed", json={"inputs": "a", "prompt_name": "query"}).json()["error"]["message"]
    with TestClient(create_app(minilm, tei=True)) as tei_first:  # `bertkit serve --tei`: TEI's clients post {"inputs"}
        assert np.abs(np.array(tei_first.post("/embed", json={"inputs": TEXTS}).json()) - np.array(own)).max() < 1e-6
        assert "results" in tei_first.post("/embed", json={"inputs": TEXTS, "pooling": "mean"}).json()
        assert isinstance(tei_first.post("/tokenize", json={"inputs": "hi"}).json(), list)


def test_tei_tokenize_decode_and_embed_all(client):
    tokens = client.post("/tokenize", json={"inputs": ["Hello worldly", "a"], "add_special_tokens": True}).json()
    assert tokens[0] == [
        {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None},
        {"id": 7592, "text": "Hello", "special": False, "start": 0, "stop": 5},
        {"id": 2088, "text": "world", "special": False, "start": 6, "stop": 11},
        {"id": 2135, "text": "ly", "special": False, "start": 11, "stop": 13},
        {"id": 102, "text": "[SEP]", "special": True, "start": None, "stop": None},
    ]
    bare = client.post("/tokenize", json={"inputs": "Hello", "add_special_tokens": False}).json()
    assert [t["id"] for t in bare[0]] == [7592]
    assert "results" in client.post("/tokenize", json={"inputs": "Hello", "text_pair": "x"}).json()

    assert client.post("/decode", json={"ids": [101, 7592, 2088, 102]}).json() == ["hello world"]
    assert client.post("/decode", json={"ids": [[101, 7592, 102]], "skip_special_tokens": False}).json() == ["[CLS] hello [SEP]"]
    assert client.post("/decode", json={"ids": [10**6]}).json()["error"]["code"] == "invalid_input"

    per_token = client.post("/embed_all", json={"inputs": TEXTS[:2]}).json()
    tokenized = client.post("/tokenize", json={"inputs": TEXTS[:2]}).json()["results"]
    assert [len(t) for t in per_token] == [len(r["input_ids"]) for r in tokenized]
    assert all(len(vector) == 384 for vector in per_token[0])
    mean = np.array(per_token[0]).mean(0)  # MiniLM's sentence vector: the tokens' mean, normalized
    sentence = client.post("/embed", json={"inputs": TEXTS[0]}).json()["results"][0]
    assert np.abs(mean / np.linalg.norm(mean) - np.array(sentence)).max() < 1e-5


def test_limits_and_missing_heads_hold_on_the_new_routes(client):
    cases = [("/embed_all", {"inputs": "word " * 80}, 413, "text_too_long"),
             ("/v1/embeddings", {"input": ["a"] * 9, "model": "m"}, 413, "too_many_texts"),
             ("/v1/embeddings", {"input": " ", "model": "m"}, 422, "empty_input"),
             ("/predict", {"inputs": "a"}, 404, "task_not_supported"),
             ("/rerank", {"query": "a", "texts": ["b"]}, 404, "task_not_supported"),
             ("/decode", {"ids": [[1]] * 9}, 413, "too_many_texts")]
    for path, body, status, code in cases:
        response = client.post(path, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), path
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/embed_all", "/decode", "/v1/embeddings"} <= paths and not paths & {"/predict", "/rerank"}


def test_info_carries_tei_keys_beside_bertkits(client, minilm_dir):
    info = client.get("/info").json()
    assert info["model_type"] == {"embedding": {"pooling": "mean"}} and info["model_dtype"] == "float32"
    assert (info["max_input_length"], info["max_client_batch_size"], info["max_batch_tokens"]) == (64, 8, 16384)
    assert info["model_id"] == str(minilm_dir) and isinstance(info["version"], str)
    assert info["tasks"] and info["limits"]["max_texts"] == 8 and "queue" in info  # bertkit's own, unchanged


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory, minilm_dir):
    root = tmp_path_factory.mktemp("heads")
    labels = {0: "neg", 1: "neu", 2: "pos"}
    three = tiny_folder(root / "three", minilm_dir, BertForSequenceClassification, num_labels=3, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    one = tiny_folder(root / "one", minilm_dir, BertForSequenceClassification, num_labels=1)
    return ModelService(three, Limits(max_length=64)), ModelService(one, Limits(max_length=64))


def same(labels: list[dict], expected: list[dict]) -> bool:
    """The same labels in the same order, scores equal up to the padding of another batch."""
    return [r["label"] for r in labels] == [r["label"] for r in expected] and all(
        r["score"] == pytest.approx(e["score"], rel=1e-5) for r, e in zip(labels, expected))


def test_predict_and_rerank_equal_classify(classifiers):
    three, one = classifiers
    with TestClient(create_app(three)) as client:
        classify = client.post("/classify", json={"inputs": TEXTS}).json()["results"]
        assert same(client.post("/predict", json={"inputs": TEXTS[0]}).json(), classify[0])
        assert all(map(same, client.post("/predict", json={"inputs": TEXTS}).json(), classify))
        pair = client.post("/predict", json={"inputs": TEXTS[:2]}).json()  # two texts are one pair, as in TEI
        assert [r["label"] for r in pair] and isinstance(pair[0], dict) and pair != classify[0]
        assert all(map(same, client.post("/predict", json={"inputs": [[TEXTS[0]], [TEXTS[1]]]}).json(), classify[:2]))
        raw = client.post("/predict", json={"inputs": TEXTS[0], "raw_scores": True}).json()
        soft = {r["label"]: r["score"] for r in classify[0]}
        total = sum(math.exp(r["score"]) for r in raw)
        assert all(math.exp(r["score"]) / total == pytest.approx(soft[r["label"]], rel=1e-4) for r in raw)
        info = client.get("/info").json()["model_type"]["classifier"]
        assert info["id2label"] == {"0": "neg", "1": "neu", "2": "pos"} and info["label2id"]["pos"] == 2
        assert client.post("/rerank", json={"query": "a", "texts": ["b"]}).json()["error"]["code"] == "task_not_supported"
    with TestClient(create_app(one)) as client:
        ranked = client.post("/rerank", json={"query": "Where is Paris?", "texts": TEXTS, "return_text": True}).json()
        scores = [r[0]["score"] for r in client.post("/predict", json={"inputs": [["Where is Paris?", t] for t in TEXTS]}).json()]
        assert sorted(r["index"] for r in ranked) == [0, 1, 2]
        assert [r["score"] for r in ranked] == sorted(scores, reverse=True)
        assert all(r["text"] == TEXTS[r["index"]] and r["score"] == pytest.approx(scores[r["index"]]) for r in ranked)
        raw = client.post("/rerank", json={"query": "Where is Paris?", "texts": TEXTS, "raw_scores": True}).json()
        assert all(1 / (1 + math.exp(-r["score"])) == pytest.approx(scores[r["index"]], rel=1e-4) for r in raw)


def test_metrics_count_requests_batches_and_tokens(client):
    from prometheus_client.parser import text_string_to_metric_families

    def samples() -> dict:
        text = client.get("/metrics").text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    before = samples()
    client.post("/embed", json={"inputs": TEXTS})
    client.post("/v1/embeddings", json={"input": "hi", "model": "m"})
    client.post("/embed", json={"inputs": []})
    after = samples()

    def moved(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert moved("bertkit_requests_total", route="/embed", method="POST", status="200") == 1
    assert moved("bertkit_requests_total", route="/embed", method="POST", status="422") == 1
    assert moved("bertkit_requests_total", route="/v1/embeddings", method="POST", status="200") == 1
    assert moved("bertkit_request_duration_seconds_count", route="/embed") == 2
    assert moved("bertkit_batch_size_sum", task="embed") == 4  # 3 texts + 1, whatever the batches were
    tokens = sum(len(ids) for ids in client.app.state.service.tokenizer(TEXTS + ["hi"])["input_ids"])
    assert moved("bertkit_tokens_total", task="embed") == tokens
    assert ("bertkit_queue_depth", ()) in after
    client.get("/no/such/path")
    assert samples()[("bertkit_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))] >= 1


@pytest.fixture(scope="module")
def exported(tmp_path_factory, minilm_dir):
    """`bertkit export onnx` of a tiny BertModel: (source folder, output folder)."""
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("export")
    source, out = tiny_folder(root / "tiny", minilm_dir), root / "onnx"
    run = subprocess.run([sys.executable, "-m", "bertkit.cli", "export", "onnx", "--model", str(source),
                          "--output", str(out / "model.onnx")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return source, out


def test_export_onnx_writes_config_and_tokenizer_beside_the_graph(exported):
    _, out = exported
    assert {"model.onnx", "config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"] and config["hidden_size"] == 128
    transformers = pytest.importorskip("transformers")
    assert transformers.AutoConfig.from_pretrained(out).hidden_size == 128
    assert transformers.AutoTokenizer.from_pretrained(out)("Hello world")["input_ids"] == [101, 7592, 2088, 102]


def test_export_onnx_folder_loads_in_optimum(exported):
    optimum = pytest.importorskip("optimum.onnxruntime", reason="optimum is not installed (it pins transformers 4)")
    from transformers import AutoTokenizer

    source, out = exported
    encoded = AutoTokenizer.from_pretrained(out)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = BertModel.from_pretrained(source)(**encoded).last_hidden_state
    got = optimum.ORTModelForFeatureExtraction.from_pretrained(out)(**encoded).last_hidden_state
    mask = encoded["attention_mask"].bool()
    assert float((torch.as_tensor(got)[mask] - expected[mask]).abs().max()) < 1e-4
