"""Pipelines fed in bulk, as HF code feeds them: generators, `datasets.Dataset` and `KeyDataset` streamed in
`batch_size` chunks, the tokenizer keywords (truncation, padding, max_length, tokenize_kwargs), transformers 4's
`return_all_scores`, `pipe.task`, and over-long texts said once. Each is compared with transformers' own pipeline
on the same checkpoint."""
from __future__ import annotations

import logging

import pytest
import torch
import transformers

from bertkit import pipeline

TEXTS = ["a charming and often affecting journey", "dull and lifeless", "it is what it is",
         "the best film of the year, by far", "nothing happens for two long hours", "fine"]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, minilm_dir) -> str:
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, num_labels=3,
                                     id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    folder = tmp_path_factory.mktemp("cls")
    transformers.BertForSequenceClassification(config).eval().save_pretrained(folder)
    transformers.BertTokenizer.from_pretrained(minilm_dir).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def ours(classifier_dir):
    return pipeline("text-classification", model=classifier_dir)


@pytest.fixture(scope="module")
def theirs(classifier_dir):
    return transformers.pipeline("text-classification", model=classifier_dir, device="cpu")


def same(a, b):
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    else:
        assert a["label"] == b["label"] and a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_a_generator_is_streamed_in_chunks_in_order(ours, theirs):
    pulled = []

    def texts():
        for text in TEXTS:
            pulled.append(text)
            yield text

    results = ours(texts(), batch_size=2)
    assert not pulled  # nothing read before the first result is asked for
    first = next(results)
    assert len(pulled) == 2  # one chunk of batch_size
    rest = list(results)
    same([first, *rest], list(theirs((text for text in TEXTS), batch_size=2)))
    same([first, *rest], ours(TEXTS))


def test_datasets_and_key_dataset(ours, theirs):
    datasets = pytest.importorskip("datasets")
    from transformers.pipelines.pt_utils import KeyDataset

    dataset = datasets.Dataset.from_dict({"text": TEXTS, "label": list(range(len(TEXTS)))})
    expected = ours(TEXTS)
    streamed = ours(KeyDataset(dataset, "text"), batch_size=4)
    assert not isinstance(streamed, list)
    same(list(streamed), expected)
    same(list(streamed := ours(KeyDataset(dataset, "text"))), list(theirs(KeyDataset(dataset, "text"))))
    same(ours(dataset["text"]), expected)  # a column (a list, or datasets 4's Column) is a batch


def test_tokenizer_keywords_match_transformers(ours, theirs):
    long_text = " ".join(TEXTS * 4)
    for kwargs in ({"truncation": True, "max_length": 8}, {"tokenize_kwargs": {"max_length": 6, "truncation": True}},
                   {"padding": "max_length", "max_length": 16, "truncation": True}):
        hf_kwargs = kwargs.get("tokenize_kwargs", kwargs)
        same(ours([long_text, "fine"], **kwargs), theirs([long_text, "fine"], **hf_kwargs))


def test_return_all_scores_is_top_k_none_and_task(ours, theirs, classifier_dir):
    assert ours("fine", return_all_scores=True) == ours("fine", top_k=None)
    assert [r["label"] for r in ours("fine", top_k=None)] == [r["label"] for r in theirs("fine", top_k=None)]
    everything = pipeline("sentiment-analysis", model=classifier_dir, return_all_scores=True)
    assert len(everything("fine")) == 3
    assert ours.task == theirs.task == "text-classification"
    assert pipeline("fill-mask", model=classifier_dir).task == "fill-mask"


def test_over_long_texts_are_cut_and_said_once(ours, caplog):
    long_text = "word " * 200  # far over the checkpoint's 64 positions
    with caplog.at_level(logging.WARNING, logger="bertkit"):
        ours._warned_truncation = False
        ours([long_text, "fine"])
        ours(long_text)
    said = [r.getMessage() for r in caplog.records if "was cut to" in r.getMessage()]
    assert len(said) == 1 and "202 tokens" in said[0] and "64" in said[0], said
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bertkit"):
        fresh = pipeline("text-classification", model=ours.model, tokenizer=ours.tokenizer)
        fresh(["fine", "dull"])  # nothing cut, nothing said
    assert not [r for r in caplog.records if "was cut to" in r.getMessage()]
    with pytest.raises(ValueError, match="longer than max_position_embeddings"):
        ours(long_text, truncation=False)
