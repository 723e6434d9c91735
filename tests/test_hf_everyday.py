"""Everyday HuggingFace calls, each run on bertkit and on transformers with the same inputs and compared (issue 20's
proof). The table is the code people type: tokenizer calls, configs, models and heads, collators, schedules,
pipelines and the Trainer's pieces. Other files hold the deeper checks (test_hf_names, test_trainer_parity,
test_pipelines_bulk, test_hub, test_trainer_ddp, test_seed001_tf); this one is the breadth."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import torch
import transformers

import bertkit

TEXTS = ["Hello, world!", "The café's naïve résumé costs $3.50.", "한국어 문장도 토큰화합니다.", "a " * 30,
         "COVID-19 pandemic", "  spaces   everywhere  ", "I love Paris"]
PAIRS = [("Where is Paris?", "Paris is the capital of France."), ("Who?", "Nobody knows, really.")]
TINY = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def tokenizers(minilm_dir):
    return bertkit.BertTokenizer.from_pretrained(minilm_dir), transformers.BertTokenizerFast.from_pretrained(minilm_dir)


def plain(value: Any) -> Any:
    """Results of both libraries as plain python for ==."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):
        return {k: plain(value[k]) for k in value.keys()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


TOKENIZER_CALLS: dict[str, Callable[[Any], Any]] = {
    **{f"call[{i}]": (lambda t, x=x: t(x)) for i, x in enumerate(TEXTS)},
    **{f"tokenize[{i}]": (lambda t, x=x: t.tokenize(x)) for i, x in enumerate(TEXTS)},
    **{f"encode[{i}]": (lambda t, x=x: t.encode(x)) for i, x in enumerate(TEXTS)},
    **{f"offsets[{i}]": (lambda t, x=x: t(x, return_offsets_mapping=True)["offset_mapping"]) for i, x in enumerate(TEXTS)},
    "batch padded pt": lambda t: t(TEXTS, padding=True, return_tensors="pt"),
    "batch padded np": lambda t: t(TEXTS, padding=True, return_tensors="np"),
    "batch truncated 8": lambda t: t(TEXTS, truncation=True, max_length=8),
    "batch max_length padding": lambda t: t(TEXTS[:3], padding="max_length", max_length=24, truncation=True),
    "pad_to_multiple_of 8": lambda t: t(TEXTS[:3], padding=True, pad_to_multiple_of=8),
    "pair": lambda t: t(*PAIRS[0]),
    "pairs as lists": lambda t: t([q for q, _ in PAIRS], [c for _, c in PAIRS], padding=True),
    "pair only_second stride": lambda t: t(PAIRS[0][0], PAIRS[0][1] * 4, truncation="only_second", max_length=20,
                                           stride=4, return_overflowing_tokens=True)["input_ids"],
    "special tokens mask": lambda t: t(TEXTS[0], return_special_tokens_mask=True)["special_tokens_mask"],
    "no special tokens": lambda t: t(TEXTS[0], add_special_tokens=False),
    "split into words": lambda t: t(["Hello", "world", "!"], is_split_into_words=True),
    "word_ids": lambda t: t(TEXTS[1]).word_ids(),
    "sequence_ids": lambda t: t(*PAIRS[0]).sequence_ids(),
    "tokens()": lambda t: t(TEXTS[1]).tokens(),
    "decode": lambda t: t.decode(t(TEXTS[1])["input_ids"]),
    "decode skip special": lambda t: t.decode(t(TEXTS[1])["input_ids"], skip_special_tokens=True),
    "batch_decode": lambda t: t.batch_decode(t(TEXTS[:3])["input_ids"], skip_special_tokens=True),
    "convert_tokens_to_ids": lambda t: t.convert_tokens_to_ids(["[CLS]", "hello", "##ing", "zzzzqqq"]),
    "convert_ids_to_tokens": lambda t: t.convert_ids_to_tokens([101, 7592, 102]),
    "convert_tokens_to_string": lambda t: t.convert_tokens_to_string(["hel", "##lo", "world"]),
    "vocab_size": lambda t: t.vocab_size,
    "len": lambda t: len(t),
    "special ids": lambda t: [t.cls_token_id, t.sep_token_id, t.pad_token_id, t.unk_token_id, t.mask_token_id],
    "all_special_ids": lambda t: sorted(t.all_special_ids),
    "mask_token": lambda t: t.mask_token,
    "num_special_tokens_to_add pair": lambda t: t.num_special_tokens_to_add(pair=True),
    "pad": lambda t: t.pad([{"input_ids": [101, 7592, 102]}, {"input_ids": [101, 102]}], return_tensors="pt"),
    "get_vocab slice": lambda t: sorted(t.get_vocab().items())[:5],
    "model_max_length": lambda t: t.model_max_length,
}


@pytest.mark.parametrize("name", list(TOKENIZER_CALLS))
def test_tokenizer_call(tokenizers, name):
    ours, theirs = tokenizers
    assert plain(TOKENIZER_CALLS[name](ours)) == plain(TOKENIZER_CALLS[name](theirs))


CONFIG_FIELDS = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "hidden_act", "hidden_dropout_prob", "max_position_embeddings", "type_vocab_size", "initializer_range",
                 "layer_norm_eps", "pad_token_id", "num_labels", "id2label", "label2id", "model_type"]


@pytest.mark.parametrize("field", CONFIG_FIELDS)
def test_config_field(minilm_dir, field):
    ours = bertkit.AutoConfig.from_pretrained(minilm_dir, num_labels=3)
    theirs = transformers.AutoConfig.from_pretrained(minilm_dir, num_labels=3)
    assert plain(getattr(ours, field)) == plain(getattr(theirs, field))


HEADS = ["BertModel", "BertForMaskedLM", "BertForNextSentencePrediction", "BertForPreTraining",
         "BertForSequenceClassification", "BertForTokenClassification", "BertForQuestionAnswering",
         "BertForMultipleChoice"]
LABELS = {"BertForMaskedLM": {"labels": torch.tensor([[-100, 2003, -100, -100, -100, -100]])},
          "BertForNextSentencePrediction": {"labels": torch.tensor([1])},
          "BertForPreTraining": {"labels": torch.tensor([[-100, 2003, -100, -100, -100, -100]]),
                                 "next_sentence_label": torch.tensor([0])},
          "BertForSequenceClassification": {"labels": torch.tensor([1])},
          "BertForTokenClassification": {"labels": torch.tensor([[-100, 1, 0, 1, 0, -100]])},
          "BertForQuestionAnswering": {"start_positions": torch.tensor([1]), "end_positions": torch.tensor([3])},
          "BertForMultipleChoice": {"labels": torch.tensor([1])}}


@pytest.fixture(scope="module")
def saved_heads(tmp_path_factory):
    folders = {}
    for head in HEADS:
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(head)
        getattr(transformers, head)(transformers.BertConfig(**TINY)).save_pretrained(folder)
        folders[head] = folder
    return folders


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("how", ["plain", "with labels", "hidden states and attentions", "return_dict=False"])
def test_head_forward(saved_heads, head, how):
    ours = getattr(bertkit, head).from_pretrained(saved_heads[head]).eval()
    theirs = getattr(transformers, head).from_pretrained(saved_heads[head], attn_implementation="eager").eval()
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    if head == "BertForMultipleChoice":
        inputs = {k: torch.stack([v, v.flip(-1)], dim=1) for k, v in inputs.items()}
    extra = {"plain": {}, "with labels": LABELS.get(head, {}),
             "hidden states and attentions": {"output_hidden_states": True, "output_attentions": True},
             "return_dict=False": {"return_dict": False}}[how]
    with torch.no_grad():
        got, expected = ours(**inputs, **extra), theirs(**inputs, **extra)
    if how == "return_dict=False":
        assert isinstance(got, tuple)
        got, expected = got[0], expected[0]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        return
    for key in expected.keys():
        value = expected[key]
        if value is None or (isinstance(value, tuple) and not value):
            continue
        mine = got[key]
        if isinstance(value, tuple):
            for a, b in zip(mine, value):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        else:
            torch.testing.assert_close(mine, value, atol=1e-5, rtol=1e-4)


COLLATOR_CASES = {
    "DataCollatorWithPadding": lambda lib, tok: lib.DataCollatorWithPadding(tok),
    "DataCollatorWithPadding multiple of 8": lambda lib, tok: lib.DataCollatorWithPadding(tok, pad_to_multiple_of=8),
    "DataCollatorForTokenClassification": lambda lib, tok: lib.DataCollatorForTokenClassification(tok),
    "default_data_collator": lambda lib, tok: lib.default_data_collator,
}


@pytest.mark.parametrize("name", list(COLLATOR_CASES))
def test_collator(tokenizers, name):
    ours_tok, their_tok = tokenizers
    rows = [{"input_ids": [101, 7592, 2088, 102], "attention_mask": [1, 1, 1, 1], "label": 1},
            {"input_ids": [101, 7592, 102], "attention_mask": [1, 1, 1], "label": 0}]
    if "Token" in name:
        rows = [{**r, "labels": [-100] + [1] * (len(r["input_ids"]) - 2) + [-100]} for r in rows]
        rows = [{k: v for k, v in r.items() if k != "label"} for r in rows]
    if name == "default_data_collator":
        rows = [{**r, "input_ids": r["input_ids"][:3], "attention_mask": r["attention_mask"][:3]} for r in rows]
    got = COLLATOR_CASES[name](bertkit, ours_tok)([dict(r) for r in rows])
    expected = COLLATOR_CASES[name](transformers, their_tok)([dict(r) for r in rows])
    assert plain(got) == plain({k: v for k, v in expected.items() if k in got})


SCHEDULES = ["linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt",
             "cosine_with_restarts"]


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("warmup", [0, 3])
def test_schedule(name, warmup):
    rates = []
    for lib in (bertkit, transformers):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        schedule = lib.get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=12)
        rates.append([schedule.get_last_lr()[0] for _ in range(14) if not (optimizer.step(), schedule.step())[0]])
    assert rates[0] == pytest.approx(rates[1], abs=1e-12)


PIPELINE_CASES = {
    "fill-mask": ("BertForMaskedLM", "Paris is the [MASK] of France.", {"top_k": 3}),
    "fill-mask targets": ("BertForMaskedLM", "Paris is the [MASK] of France.", {"targets": ["capital", "city"]}),
    "text-classification": ("BertForSequenceClassification", "a charming journey", {}),
    "text-classification top_k": ("BertForSequenceClassification", ["a charming journey", "dull"], {"top_k": None}),
    "token-classification": ("BertForTokenClassification", "Marie Curie moved to Paris", {}),
    "feature-extraction": ("BertModel", "I love Paris", {}),
}


@pytest.mark.parametrize("case", list(PIPELINE_CASES))
def test_pipeline(saved_heads, tokenizers, minilm_dir, case, tmp_path):
    import shutil

    head, inputs, kwargs = PIPELINE_CASES[case]
    task = case.split(" ")[0]
    folder = tmp_path / "m"
    shutil.copytree(saved_heads[head], folder)
    shutil.copy(minilm_dir / "vocab.txt", folder / "vocab.txt")
    got = bertkit.pipeline(task, model=str(folder))(inputs, **kwargs)
    expected = transformers.pipeline(task, model=str(folder), device="cpu")(inputs, **kwargs)
    if task == "feature-extraction":
        np.testing.assert_allclose(np.array(got), np.array(expected), atol=1e-5)
        return
    assert_same_results(got, expected)


def assert_same_results(got: Any, expected: Any) -> None:
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for a, b in zip(got, expected):
            assert_same_results(a, b)
        return
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=1e-5), key
        elif key not in ("word",):  # HF's token-classification rebuilds the word from tokens; ours from the text
            assert plain(got[key]) == plain(value), key


def test_calls_transformers_5_dropped_keep_their_documented_results(tokenizers, saved_heads, minilm_dir, tmp_path):
    """BertTokenizerFast in transformers 5 lost the sequence helpers and its question-answering pipeline is gone:
    bertkit keeps transformers 4's behaviour (the values its slow tokenizer gave)."""
    import shutil

    ours, _ = tokenizers
    assert ours.build_inputs_with_special_tokens([7592], [2088]) == [101, 7592, 102, 2088, 102]
    assert ours.create_token_type_ids_from_sequences([7592], [2088, 999]) == [0, 0, 0, 1, 1, 1]
    assert ours.get_special_tokens_mask([7592], [2088]) == [1, 0, 1, 0, 1]
    folder = tmp_path / "qa"
    shutil.copytree(saved_heads["BertForQuestionAnswering"], folder)
    shutil.copy(minilm_dir / "vocab.txt", folder / "vocab.txt")
    context = "Paris is in France, a country in Europe."
    answer = bertkit.pipeline("question-answering", model=str(folder))(question="Where is Paris?", context=context)
    assert set(answer) == {"score", "start", "end", "answer"} and answer["answer"] == context[answer["start"]:answer["end"]]
    assert 0 < answer["score"] <= 1


def test_the_table_is_broad():
    calls = (len(TOKENIZER_CALLS) + len(CONFIG_FIELDS) + 4 * len(HEADS) + len(COLLATOR_CASES) + 2 * len(SCHEDULES)
             + len(PIPELINE_CASES) + 4)
    assert calls >= 120, calls
