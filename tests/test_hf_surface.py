"""The HuggingFace names the seeds' training code imports, checked against transformers as the oracle:
schedules, collators (masking rates on real Wikipedia text), utils.logging, AutoConfig, AdamW, bertviz on
bertkit's attentions."""
from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import wiki_lines

import bertkit
from bertkit import (
    AutoConfig,
    AutoModel,
    BertForSequenceClassification,
    BertTokenizer,
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    DataCollatorForWholeWordMask,
    DataCollatorWithPadding,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
    get_scheduler,
    utils,
)

transformers = pytest.importorskip("transformers")

N_LINES = 300


# --- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def texts(shared_data) -> list[str]:
    return wiki_lines(shared_data / "text-en-wikipedia" / "enwiki-wikitasks-text-AA.tar.xz", N_LINES)


@pytest.fixture(scope="module")
def tokenizer(minilm_dir) -> BertTokenizer:
    return BertTokenizer.from_pretrained(minilm_dir)  # bert-base-uncased's vocab


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_dir):
    return transformers.AutoTokenizer.from_pretrained(str(minilm_dir))


@pytest.fixture(scope="module")
def features(tokenizer, texts) -> list[dict]:
    enc = tokenizer(texts, truncation=True, max_length=96)
    return [{k: list(enc[k][i]) for k in ("input_ids", "token_type_ids", "attention_mask")} for i in range(len(texts))]


@pytest.fixture
def restore_verbosity():
    level = logging.getLogger("bertkit").level
    yield
    logging.getLogger("bertkit").setLevel(level)


# --- schedules --------------------------------------------------------------------------------------------
def lrs(scheduler, steps: int = 25) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def sgd() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)


SCHEDULE_CASES = [
    ("linear", lambda m, o: m.get_linear_schedule_with_warmup(o, 3, 20)),
    ("cosine", lambda m, o: m.get_cosine_schedule_with_warmup(o, 3, 20)),
    ("cosine-2-cycles", lambda m, o: m.get_cosine_schedule_with_warmup(o, 3, 20, num_cycles=2.0)),
    ("constant_with_warmup", lambda m, o: m.get_constant_schedule_with_warmup(o, 3)),
    ("get_scheduler-linear", lambda m, o: m.get_scheduler("linear", o, num_warmup_steps=3, num_training_steps=20)),
    ("get_scheduler-cosine", lambda m, o: m.get_scheduler("cosine", o, num_warmup_steps=3, num_training_steps=20)),
    ("get_scheduler-constant", lambda m, o: m.get_scheduler("constant", o)),
    ("get_scheduler-constant_with_warmup", lambda m, o: m.get_scheduler("constant_with_warmup", o, num_warmup_steps=3)),
]


@pytest.mark.parametrize("name,build", SCHEDULE_CASES, ids=[c[0] for c in SCHEDULE_CASES])
def test_schedule_learning_rates_equal_transformers_at_every_step(name, build):
    ours = lrs(build(bertkit, sgd()))
    theirs = lrs(build(transformers, sgd()))
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    assert ours[0] == (0.1 if name == "get_scheduler-constant" else 0.0)


@pytest.mark.parametrize("build", [lambda o, w, t: get_linear_schedule_with_warmup(o, w, t),
                                   lambda o, w, t: get_cosine_schedule_with_warmup(o, w, t),
                                   lambda o, w, t: get_constant_schedule_with_warmup(o, w)],
                         ids=["linear", "cosine", "constant_with_warmup"])
def test_schedule_state_dict_round_trips_through_pickle(build):
    optimizer = sgd()
    scheduler = build(optimizer, 3, 20)
    lrs(scheduler, 7)
    buffer = io.BytesIO()
    torch.save({"scheduler": scheduler.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=False)
    # a resumed run builds the scheduler from scratch (even with other numbers): the state restores the schedule
    optimizer2 = sgd()
    resumed = build(optimizer2, 1, 50)
    optimizer2.load_state_dict(state["optimizer"])
    resumed.load_state_dict(state["scheduler"])
    assert lrs(resumed, 15) == lrs(scheduler, 15)


def test_get_scheduler_rejects_unknown_names_and_missing_steps():
    with pytest.raises(ValueError, match="choose one of linear, cosine, constant, constant_with_warmup"):
        get_scheduler("polynomial-ish", sgd(), 1, 10)
    with pytest.raises(ValueError, match="num_training_steps"):
        get_scheduler("linear", sgd(), num_warmup_steps=1)
    with pytest.raises(ValueError, match="num_warmup_steps"):
        get_scheduler("cosine", sgd(), num_training_steps=10)


def test_adamw_is_torchs():
    assert bertkit.AdamW is torch.optim.AdamW
    optimizer = bertkit.AdamW(torch.nn.Linear(2, 2).parameters(), lr=1e-5)  # the seeds' call
    assert optimizer.defaults["lr"] == 1e-5


# --- masking collators on real text ------------------------------------------------------------------------
def maskable(batch_ids: torch.Tensor, attention: torch.Tensor, tokenizer) -> torch.Tensor:
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    return (attention == 1) & ~torch.isin(batch_ids, special)


def check_mlm_batch(original: torch.Tensor, batch: dict, tokenizer) -> torch.Tensor:
    """Checks that hold for every MLM batch; returns the chosen positions."""
    chosen = batch["labels"] != -100
    can = maskable(original, batch["attention_mask"], tokenizer)
    assert not (chosen & ~can).any(), "a special token or padding was chosen"
    assert torch.equal(batch["labels"][chosen], original[chosen])
    assert torch.equal(batch["input_ids"][~chosen], original[~chosen]), "an unchosen token changed"
    random = chosen & (batch["input_ids"] != tokenizer.mask_token_id) & (batch["input_ids"] != original)
    assert not torch.isin(batch["input_ids"][random], torch.tensor(tokenizer.all_special_ids)).any()
    return chosen


def test_mlm_collator_rates_on_wikipedia(tokenizer, features):
    collate = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0)
    padded = DataCollatorWithPadding(tokenizer)(features)
    chosen_all, kinds = [], {"mask": 0, "random": 0, "same": 0}
    for start in range(0, len(features), 32):
        batch = collate(features[start:start + 32])
        original = padded["input_ids"][start:start + 32, :batch["input_ids"].shape[1]]
        assert torch.equal(batch["attention_mask"], padded["attention_mask"][start:start + 32])
        chosen = check_mlm_batch(original, batch, tokenizer)
        n = maskable(original, batch["attention_mask"], tokenizer).sum(1)
        # Google's rule: exactly max(1, round(0.15 n)) per row (HF would draw a Bernoulli per token)
        assert chosen.sum(1).tolist() == [max(1, int(round(0.15 * k))) for k in n.tolist()]
        assert not batch["labels"][batch["attention_mask"] == 0].ne(-100).any()
        got = batch["input_ids"][chosen]
        kinds["mask"] += int((got == tokenizer.mask_token_id).sum())
        kinds["same"] += int((got == original[chosen]).sum())
        kinds["random"] += int(((got != tokenizer.mask_token_id) & (got != original[chosen])).sum())
        chosen_all.append((int(chosen.sum()), int(n.sum())))
    total_chosen = sum(c for c, _ in chosen_all)
    assert total_chosen / sum(n for _, n in chosen_all) == pytest.approx(0.15, abs=0.005)
    assert total_chosen > 2000  # enough for the 80/10/10 split to be tight (binomial sd < 0.01)
    assert kinds["mask"] / total_chosen == pytest.approx(0.8, abs=0.03)
    assert kinds["random"] / total_chosen == pytest.approx(0.1, abs=0.02)
    assert kinds["same"] / total_chosen == pytest.approx(0.1, abs=0.02)


def test_whole_word_mask_chooses_every_piece_of_a_word(tokenizer, features):
    collate = DataCollatorForWholeWordMask(tokenizer, mlm_probability=0.15, seed=1)
    batch = collate(features)
    original = DataCollatorWithPadding(tokenizer)(features)["input_ids"]
    chosen = check_mlm_batch(original, batch, tokenizer)
    words_with_pieces = 0
    for row in range(len(features)):
        tokens = tokenizer.convert_ids_to_tokens(original[row].tolist())
        marks = chosen[row].tolist()
        i = 0
        while i < len(tokens):  # a word: a first piece and the "##" pieces after it
            j = i + 1
            while j < len(tokens) and tokens[j].startswith("##"):
                j += 1
            assert len(set(marks[i:j])) == 1, f"word {tokens[i:j]} partly chosen: {marks[i:j]}"
            words_with_pieces += j - i > 1 and marks[i]
            i = j
    assert words_with_pieces > 20  # multi-piece words were actually chosen, whole
    rate = chosen.sum() / maskable(original, batch["attention_mask"], tokenizer).sum()
    assert 0.14 <= float(rate) <= 0.15 + 1e-9  # a word that would overshoot the target is skipped


def test_mlm_collator_inputs_lists_tensors_arrays_and_bare_ids(tokenizer, features):
    rows = features[:8]
    as_lists = DataCollatorForLanguageModeling(tokenizer, seed=3)(rows)
    as_tensors = DataCollatorForLanguageModeling(tokenizer, seed=3)([{k: torch.tensor(v) for k, v in f.items()} for f in rows])
    as_arrays = DataCollatorForLanguageModeling(tokenizer, seed=3)([{k: np.array(v) for k, v in f.items()} for f in rows])
    bare = DataCollatorForLanguageModeling(tokenizer, seed=3)([torch.tensor(f["input_ids"]) for f in rows])
    for other in (as_tensors, as_arrays):
        assert other.keys() == as_lists.keys()
        for key in as_lists:
            assert torch.equal(other[key], as_lists[key]), key
    assert torch.equal(bare["input_ids"], as_lists["input_ids"]) and torch.equal(bare["labels"], as_lists["labels"])
    assert torch.equal(bare["attention_mask"], as_lists["attention_mask"])
    # no seed: masks follow torch's global RNG, so torch.manual_seed (set_seed) reproduces them
    torch.manual_seed(0)
    first = DataCollatorForLanguageModeling(tokenizer)(rows)
    torch.manual_seed(0)
    assert torch.equal(DataCollatorForLanguageModeling(tokenizer)(rows)["labels"], first["labels"])


def test_mlm_collator_never_chooses_existing_padding(tokenizer, features):
    enc = tokenizer([f"row {i}: " + "words " * (i + 1) for i in range(6)], padding="max_length", max_length=24)
    rows = [{k: enc[k][i] for k in ("input_ids", "attention_mask")} for i in range(6)]
    batch = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.5, seed=0, pad_to_multiple_of=32)(rows)
    assert batch["input_ids"].shape == (6, 32)
    original = torch.tensor([r["input_ids"] + [tokenizer.pad_token_id] * 8 for r in rows])
    check_mlm_batch(original, batch, tokenizer)
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()


def test_causal_labels_with_mlm_false(tokenizer, features):
    batch = DataCollatorForLanguageModeling(tokenizer, mlm=False)(features[:5])
    padded = DataCollatorWithPadding(tokenizer)(features[:5])
    assert torch.equal(batch["input_ids"], padded["input_ids"])
    expected = padded["input_ids"].masked_fill(padded["attention_mask"] == 0, -100)
    assert torch.equal(batch["labels"], expected) and (batch["labels"] == -100).any()


def test_mlm_collator_rejects_bad_rates(tokenizer):
    with pytest.raises(ValueError, match="mlm_probability"):
        DataCollatorForLanguageModeling(tokenizer, mlm_probability=1.5)
    with pytest.raises(ValueError, match="sum to at most 1"):
        DataCollatorForLanguageModeling(tokenizer, mask_replace_prob=0.9, random_replace_prob=0.2)


# --- padding collators == transformers' -------------------------------------------------------------------
def assert_same_batch(ours: dict, theirs) -> None:
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype, key
        assert torch.equal(ours[key], theirs[key]), key


@pytest.mark.parametrize("kwargs", [{}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 128}],
                         ids=["longest", "multiple-of-8", "max_length"])
@pytest.mark.parametrize("label_key", ["label", "labels", "label_ids"])
def test_data_collator_with_padding_equals_transformers(tokenizer, hf_tokenizer, features, kwargs, label_key):
    rows = [{**f, label_key: i % 3} for i, f in enumerate(features[:16])]
    ours = DataCollatorWithPadding(tokenizer, **kwargs)(rows)
    theirs = transformers.DataCollatorWithPadding(hf_tokenizer, **kwargs)([dict(r) for r in rows])
    assert_same_batch(ours, theirs)
    # datasets' set_format("torch") rows give the same batch
    as_tensors = DataCollatorWithPadding(tokenizer, **kwargs)([{k: torch.tensor(v) for k, v in r.items()} for r in rows])
    assert_same_batch(as_tensors, theirs)


def test_data_collator_with_padding_float_labels_equal_transformers(tokenizer, hf_tokenizer, features):
    rows = [{**f, "labels": i / 7} for i, f in enumerate(features[:6])]
    assert_same_batch(DataCollatorWithPadding(tokenizer)(rows), transformers.DataCollatorWithPadding(hf_tokenizer)(rows))


@pytest.mark.parametrize("kwargs", [{}, {"pad_to_multiple_of": 8}, {"label_pad_token_id": -1}])
def test_token_classification_collator_equals_transformers(tokenizer, hf_tokenizer, features, kwargs):
    rng = np.random.default_rng(0)
    rows = []
    for f in features[:16]:
        labels = rng.integers(0, 9, len(f["input_ids"])).tolist()
        labels[0] = labels[-1] = -100
        rows.append({**f, "labels": labels})
    ours = DataCollatorForTokenClassification(tokenizer, **kwargs)(rows)
    theirs = transformers.DataCollatorForTokenClassification(hf_tokenizer, **kwargs)([dict(r) for r in rows])
    assert_same_batch(ours, theirs)
    pad = kwargs.get("label_pad_token_id", -100)
    assert (ours["labels"][ours["attention_mask"] == 0] == pad).all()


# --- utils.logging ------------------------------------------------------------------------------------------
def test_set_verbosity_error_silences_the_weights_report(minilm_dir, caplog, restore_verbosity):
    assert utils.logging.get_verbosity() == logging.WARNING  # the default
    utils.logging.set_verbosity_error()
    assert utils.logging.get_verbosity() == logging.ERROR
    BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
    assert "Some weights" not in caplog.text
    utils.logging.set_verbosity_warning()
    BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
    assert "Some weights of BertForSequenceClassification were not initialized" in caplog.text
    assert utils.logging.get_logger() is logging.getLogger("bertkit")


def test_weights_report_reaches_stderr_by_default_and_set_verbosity_error_hides_it(minilm_dir):
    # a fresh process with no logging configured, as a script or notebook starts
    code = (
        "import sys\n"
        "from bertkit import BertForSequenceClassification, utils\n"
        f"BertForSequenceClassification.from_pretrained({str(minilm_dir)!r}, num_labels=2)\n"
        "print('--- now silenced', file=sys.stderr, flush=True)\n"
        "utils.logging.set_verbosity_error()\n"
        f"BertForSequenceClassification.from_pretrained({str(minilm_dir)!r}, num_labels=2)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    before, after = result.stderr.split("--- now silenced")
    assert before.count("Some weights of BertForSequenceClassification were not initialized") == 1
    assert "Some weights" not in after


# --- AutoConfig, BatchEncoding, bertviz ------------------------------------------------------------------
def test_auto_config_reads_bert_and_refuses_other_architectures(minilm_dir, tmp_path):
    config = AutoConfig.from_pretrained(minilm_dir, output_attentions=True)
    assert type(config).__name__ == "BertConfig" and config.num_hidden_layers == 6 and config.output_attentions
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "vocab_size": 50265}))
    with pytest.raises(ValueError, match="'roberta' config"):
        AutoConfig.from_pretrained(tmp_path)


def test_batch_encoding_attribute_access_and_to(tokenizer):
    enc = tokenizer(["He got bit by Python", "hi"], padding=True, return_tensors="pt")
    assert enc.input_ids is enc["input_ids"] and enc.attention_mask.shape == enc.input_ids.shape
    moved = enc.to("cpu")
    assert moved is enc and moved["input_ids"].device.type == "cpu"
    assert enc.to(torch.device("cpu")).input_ids.dtype == torch.long


def test_bertviz_on_bertkit_attentions_seed_003(minilm_dir, tokenizer):
    bertviz = pytest.importorskip("bertviz")
    model = AutoModel.from_pretrained(minilm_dir, output_attentions=True)
    inputs = tokenizer.encode("He got bit by Python", return_tensors="pt")
    outputs = model(inputs)
    attention = outputs[-1]  # HF semantics: the last element of the tuple view is the attentions
    assert attention is outputs.attentions and len(attention) == 6
    assert attention[0].shape == (1, 12, 7, 7)
    tokens = tokenizer.convert_ids_to_tokens(inputs[0])
    assert tokens == ["[CLS]", "he", "got", "bit", "by", "python", "[SEP]"]
    # the attentions are HF's (eager attention returns them)
    hf_model = transformers.AutoModel.from_pretrained(str(minilm_dir), attn_implementation="eager")
    hf_attention = hf_model(inputs, output_attentions=True).attentions
    for ours, theirs in zip(attention, hf_attention):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    stacked = json.dumps(torch.stack([a.squeeze(0) for a in attention]).tolist())
    for view in (bertviz.model_view, bertviz.head_view):
        html = view(attention, tokens, html_action="return").data
        assert stacked in html  # the page draws exactly bertkit's attention weights
        assert '"python"' in html


def test_arguments_hf_takes_but_bertkit_ignores_are_said_once(minilm_dir, tmp_path, caplog):
    from bertkit import BertModel, BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(minilm_dir)
    with caplog.at_level(logging.WARNING, logger="bertkit"):
        assert tokenizer.decode([101, 1045, 102], spaces_between_special_tokens=False) == "[CLS] i [SEP]"
        tokenizer.decode([101, 102], spaces_between_special_tokens=False)  # the second time says nothing
        tokenizer.save_pretrained(tmp_path / "tok", legacy_format=False)
        model = BertModel.from_pretrained(minilm_dir, trust_remote_code=True, use_safetensors=True)
        model.save_pretrained(tmp_path / "model", safe_serialization=True)
    said = [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]
    assert sum("'spaces_between_special_tokens'" in m for m in said) == 1
    assert any("save_pretrained" in m and "'legacy_format'" in m for m in said)
    assert any("from_pretrained" in m and "'trust_remote_code'" in m for m in said)
    assert any("BertModel.save_pretrained" in m and "'safe_serialization'" in m for m in said)
    assert (tmp_path / "model" / "model.safetensors").is_file()
