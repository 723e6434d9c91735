"""The three task pipelines against HuggingFace on the same small model (MiniLM + a seeded random head,
saved by bertkit and loaded by both): text-classification and token-classification against
transformers.pipeline; question-answering (transformers 5 has no QA pipeline any more) against a
brute-force search over every span of every window, computed with HuggingFace's tokenizer and model."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from bertkit.pipelines import pipeline as bertkit_pipeline


def pipeline(task, model, **kwargs):
    try:
        from bertkit.tokenizer import BertTokenizer
    except ImportError:  # the tokenizer package is still being written: HF's stands in
        from transformers import BertTokenizerFast as BertTokenizer
    return bertkit_pipeline(task, model=model, tokenizer=BertTokenizer.from_pretrained(model), **kwargs)

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
TEXTS = ["Elon Musk founded Tesla in California.", "Hugging Face Inc. is a company based in New York City.",
         "I love Paris"]


def save_with_head(minilm_dir, folder, class_name, seed, scale=1.0, **config):
    import bertkit.model

    torch.manual_seed(seed)
    model = getattr(bertkit.model, class_name).from_pretrained(minilm_dir, **config)
    # keep 2 of MiniLM's 6 layers: the same code paths, a third of the time
    model.bert.encoder.layer = model.bert.encoder.layer[:2]
    model.config.num_hidden_layers = 2
    with torch.no_grad():  # a bolder random head, so that labels vary from token to token
        head = model.classifier if hasattr(model, "classifier") else model.qa_outputs
        head.weight.mul_(scale)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_dir / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def models(minilm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("task_models")
    return {
        "sentiment": save_with_head(minilm_dir, root / "sentiment", "BertForSequenceClassification", 0, 20.0,
                                    id2label={0: "negative", 1: "neutral", 2: "positive"}),
        "ner": save_with_head(minilm_dir, root / "ner", "BertForTokenClassification", 1, 30.0,
                              id2label=dict(enumerate(NER_LABELS))),
        "qa": save_with_head(minilm_dir, root / "qa", "BertForQuestionAnswering", 2, 30.0),
    }


def assert_same_results(ours, theirs):
    assert type(ours) is type(theirs)
    if isinstance(ours, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same_results(a, b)
        return
    assert set(ours) == set(theirs)
    for key in ours:
        if key == "score":
            assert ours[key] == pytest.approx(float(theirs[key]), abs=2e-4)
        else:
            assert ours[key] == theirs[key], key


def test_text_classification_equals_huggingface(models):
    import transformers

    ours = pipeline("text-classification", model=str(models["sentiment"]))
    theirs = transformers.pipeline("text-classification", model=str(models["sentiment"]), device="cpu")
    assert_same_results(ours(TEXTS[0]), theirs(TEXTS[0]))
    assert_same_results(ours(TEXTS), theirs(TEXTS))
    assert_same_results(ours(TEXTS[0], top_k=None), theirs(TEXTS[0], top_k=None))
    assert_same_results(ours(TEXTS, top_k=2), theirs(TEXTS, top_k=2))
    pair = {"text": "A man sleeps.", "text_pair": "Nobody sleeps."}
    assert_same_results(ours(pair), theirs(pair))
    assert len({round(r["score"], 7) for r in ours(TEXTS)}) == len(TEXTS)  # the texts do reach the head
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        ours(TEXTS[0], top_k=0)


def test_token_classification_equals_huggingface_for_every_strategy(models):
    import warnings

    import transformers

    ours = pipeline("token-classification", model=str(models["ner"]))
    theirs = transformers.pipeline("token-classification", model=str(models["ner"]), device="cpu")
    for strategy in ["none", "simple", "first", "average", "max"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = theirs(TEXTS, aggregation_strategy=strategy)
        got = ours(TEXTS, aggregation_strategy=strategy)
        assert_same_results(got, expected)
        assert sum(len(e) for e in got) > 3  # the random head does find "entities" to group
        for text, entities in zip(TEXTS, got):
            for entity in entities:  # offsets point into the original text
                assert 0 <= entity["start"] < entity["end"] <= len(text)
                written = text[entity["start"]:entity["end"]].lower().replace(" ", "")
                assert written == entity["word"].replace(" ", "").replace("##", ""), strategy
    with pytest.raises(ValueError, match="aggregation_strategy must be one of"):
        ours(TEXTS[0], aggregation_strategy="longest")


LONG_CONTEXT = (
    "Frédéric Chopin was a Polish composer and virtuoso pianist of the Romantic period. "
    "He was born in the village of Żelazowa Wola, about 60 km from Warsaw, and moved to the city with his "
    "family when he was seven months old. " * 12
    + "The Palace of Culture and Science, finished in 1955, is the tallest building in Poland."
)


def brute_force_qa(folder, question, text, max_seq_len, stride, max_answer_len):
    """Every window (HF tokenizer), every span of context tokens of at most max_answer_len tokens:
    the one with the largest p(start) * p(end), softmax over the window's context tokens and [CLS]."""
    from transformers import AutoModelForQuestionAnswering, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    encoded = tokenizer(question, text, truncation="only_second", max_length=max_seq_len, stride=stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                    token_type_ids=encoded["token_type_ids"])
    best = None
    for w in range(len(encoded["input_ids"])):
        sequence_ids = encoded.sequence_ids(w)
        allowed = np.array([s == 1 for s in sequence_ids])
        allowed[0] = True
        starts, ends = out.start_logits[w].numpy().astype(np.float64), out.end_logits[w].numpy().astype(np.float64)
        p_start = np.where(allowed, np.exp(starts - starts[allowed].max()), 0)
        p_end = np.where(allowed, np.exp(ends - ends[allowed].max()), 0)
        p_start, p_end = p_start / p_start.sum(), p_end / p_end.sum()
        context = np.array([s == 1 for s in sequence_ids])
        n = len(sequence_ids)
        band = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), k=max_answer_len)
        scores = np.where(band & context[:, None] & context[None, :], np.outer(p_start, p_end), -1.0)
        s, e = np.unravel_index(scores.argmax(), scores.shape)
        if best is None or scores[s, e] > best[0]:
            offsets = encoded["offset_mapping"][w]
            best = (scores[s, e], int(offsets[s][0]), int(offsets[e][1]))
    return {"score": best[0], "start": best[1], "end": best[2], "answer": text[best[1]:best[2]]}


@pytest.mark.parametrize("context", [TEXTS[1], LONG_CONTEXT], ids=["one-window", "many-windows"])
def test_question_answering_equals_brute_force_search(models, context):
    qa = pipeline("question-answering", model=str(models["qa"]))
    question = "Where was Chopin born?"
    got = qa(question=question, context=context, max_seq_len=128, doc_stride=32)
    expected = brute_force_qa(models["qa"], question, context, 128, 32, 15)
    assert_same_results(got, expected)
    assert got["answer"] == context[got["start"]:got["end"]]
    top = qa({"question": question, "context": context}, top_k=3, max_seq_len=128, doc_stride=32)
    assert len(top) == 3 and top[0] == got and top[0]["score"] >= top[1]["score"] >= top[2]["score"]
    batch = qa(question=[question, "What is tallest?"], context=[context, context], max_seq_len=128, doc_stride=32)
    assert batch[0] == got and len(batch) == 2


def test_question_answering_rejects_bad_inputs(models):
    qa = pipeline("question-answering", model=str(models["qa"]))
    with pytest.raises(ValueError, match="context is empty"):
        qa(question="Who?", context="   ")
    with pytest.raises(ValueError, match="question=... and context="):
        qa(question="Who?")


def test_qa_answers_never_carry_a_lone_surrogate(models):
    # issue 14: the answer was sliced from the raw context, surrogate included, and no UTF-8 output could hold it
    qa = pipeline("question-answering", model=str(models["qa"]))
    context = "Paris\ud800London\ud800Rome\ud800Berlin " * 10
    answers = qa(question="Which city?", context=context, top_k=3)
    for answer in answers:
        assert "\ud800" not in answer["answer"]
        json.dumps(answer, ensure_ascii=False).encode("utf-8")  # would raise UnicodeEncodeError on a surrogate
        assert context.replace("\ud800", "\ufffd")[answer["start"]:answer["end"]] == answer["answer"]
