"""bertkit's BERT against HuggingFace transformers (test-only oracle): real MiniLM weights on real sentences,
every head in both directions (HF saves -> bertkit loads, bertkit saves -> HF loads), the seeds' shapes,
and the unpadded / length-bucketed fast path against the padded reference."""
from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest
import torch
import transformers

import bertkit
from bertkit.model import (
    AutoModel,
    AutoModelForQuestionAnswering,
    BertConfig,
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    encode_batches,
)

ATOL = 1e-5


def close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=0)


# --- real data and the real MiniLM weights ----------------------------------------------------------------
def sst2_sentences(shared_data: Path, n: int) -> list[str]:
    lines = (shared_data / "en-sentiment-sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0].strip() for line in lines[:n]]


def squad_pairs(shared_data: Path, n: int) -> list[tuple[str, str]]:
    """(question, first sentence of its paragraph): real sentence pairs of mixed lengths."""
    with lzma.open(shared_data / "qa-squad-v1.1" / "squad-v1.1-dev-train-split.json.xz", "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    pairs = []
    for article in data:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                pairs.append((qa["question"], paragraph["context"].split(". ")[0] + "."))
                break
            if len(pairs) == n:
                return pairs
    return pairs


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    """bertkit's own tokenizer (its ids equal HF's: tests/test_tokenizer*.py); both models get the same ids."""
    return bertkit.BertTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def minilm_pair(minilm_dir):
    """(HF model, bertkit model) on the same weights; HF in eager attention so it can return attention maps."""
    hf = transformers.BertModel.from_pretrained(minilm_dir, attn_implementation="eager").eval()
    ours = BertModel.from_pretrained(minilm_dir)
    return hf, ours


def assert_same_encoder_outputs(hf_out, our_out) -> None:
    assert close(our_out.last_hidden_state, hf_out.last_hidden_state)
    assert close(our_out.pooler_output, hf_out.pooler_output)
    assert len(our_out.hidden_states) == len(hf_out.hidden_states) == 7
    for ours, theirs in zip(our_out.hidden_states, hf_out.hidden_states):
        assert close(ours, theirs)
    assert len(our_out.attentions) == len(hf_out.attentions) == 6
    for ours, theirs in zip(our_out.attentions, hf_out.attentions):
        assert close(ours, theirs)


def test_minilm_matches_hf_on_padded_real_sentences(minilm_pair, tokenizer, shared_data, minilm_dir):
    hf, ours = minilm_pair
    sentences = sst2_sentences(shared_data, 8)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    assert not bool(batch["attention_mask"].all()), "the batch must contain padding"
    with torch.no_grad():
        expected = hf(**batch, output_hidden_states=True, output_attentions=True)
        got = ours(**batch, output_hidden_states=True, output_attentions=True)
    assert_same_encoder_outputs(expected, got)
    # without attention maps both go through SDPA: same outputs as HF's default (sdpa) model
    with torch.no_grad():
        fast = ours(**batch)
        hf_sdpa = transformers.BertModel.from_pretrained(minilm_dir).eval()(**batch)
    assert close(fast.last_hidden_state, hf_sdpa.last_hidden_state)
    assert close(fast.pooler_output, hf_sdpa.pooler_output)
    assert fast.hidden_states is None and fast.attentions is None


def test_minilm_matches_hf_on_real_sentence_pairs(minilm_pair, tokenizer, shared_data):
    hf, ours = minilm_pair
    questions, contexts = zip(*squad_pairs(shared_data, 4))
    batch = tokenizer(list(questions), list(contexts), padding=True, truncation="only_second", max_length=96,
                         return_tensors="pt")
    assert int(batch["token_type_ids"].max()) == 1 and not bool(batch["attention_mask"].all())
    with torch.no_grad():
        expected = hf(**batch, output_hidden_states=True, output_attentions=True)
        got = ours(**batch, output_hidden_states=True, output_attentions=True)
    assert_same_encoder_outputs(expected, got)


def test_seed_shapes(minilm_dir, tokenizer):
    # seed 000: "I love Paris" padded to 7 -> last_hidden_state [1, 7, hidden]
    model = bertkit.BertModel.from_pretrained(minilm_dir, output_hidden_states=True)
    batch = tokenizer("I love Paris", padding="max_length", max_length=7, return_tensors="pt")
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0, 0]]
    with torch.no_grad():
        out = model(**batch)
    assert out.last_hidden_state.shape == (1, 7, 384)
    assert out.pooler_output.shape == (1, 384)
    assert len(out.hidden_states) == 7 and out.hidden_states[0].shape == (1, 7, 384)
    # 13 hidden states for a 12-layer model (embeddings + one per layer), as for bert-base
    config = BertConfig.from_size("base", hidden_size=64, num_attention_heads=4, intermediate_size=64, vocab_size=100)
    base_shaped = BertModel(config).eval()
    with torch.no_grad():
        out = base_shaped(torch.tensor([[2, 5, 7, 3]]), output_hidden_states=True)
    assert len(out.hidden_states) == 13


def test_named_sizes_match_the_paper():
    expected = {"tiny": (2, 128, 2), "mini": (4, 256, 4), "small": (4, 512, 8), "medium": (8, 512, 8),
                "base": (12, 768, 12), "large": (24, 1024, 16)}
    for name, (layers, hidden, heads) in expected.items():
        config = BertConfig.from_size(name)
        assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (layers, hidden, heads)
        assert config.intermediate_size == 4 * hidden
    # bert-base's parameter count (110M with the pooler), the number users know
    assert abs(BertModel(BertConfig.from_size("base")).num_parameters() - 109_482_240) == 0
    with pytest.raises(ValueError, match="unknown size"):
        BertConfig.from_size("huge")
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        BertConfig(hidden_size=100, num_attention_heads=3)


# --- every head: HF -> bertkit and bertkit -> HF ----------------------------------------------------------
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu")
BATCH, SEQ, CHOICES = 3, 10, 4


def tiny_inputs(multiple_choice: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    shape = (BATCH, CHOICES, SEQ) if multiple_choice else (BATCH, SEQ)
    input_ids = torch.randint(1, TINY["vocab_size"], shape, generator=g)
    attention_mask = torch.ones(shape, dtype=torch.long)
    attention_mask[1, ..., -3:] = 0  # padded rows of different lengths
    attention_mask[2, ..., -5:] = 0
    token_type_ids = torch.zeros(shape, dtype=torch.long)
    token_type_ids[..., SEQ // 2:] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def labels_for(name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if name in ("BertForMaskedLM",):
        labels = torch.randint(0, TINY["vocab_size"], (BATCH, SEQ), generator=g)
        labels[:, ::2] = -100
        return {"labels": labels}
    if name == "BertForPreTraining":
        labels = torch.randint(0, TINY["vocab_size"], (BATCH, SEQ), generator=g)
        labels[:, 1::2] = -100
        return {"labels": labels, "next_sentence_label": torch.tensor([0, 1, 1])}
    if name == "BertForNextSentencePrediction":
        return {"labels": torch.tensor([1, 0, 1])}
    if name == "BertForSequenceClassification":
        return {"labels": torch.tensor([2, 0, 1])}
    if name == "BertForTokenClassification":
        labels = torch.randint(0, 3, (BATCH, SEQ), generator=g)
        labels[:, 0] = -100
        return {"labels": labels}
    if name == "BertForQuestionAnswering":  # one start beyond the sequence: clamped and ignored, as in HF
        return {"start_positions": torch.tensor([1, 4, 50]), "end_positions": torch.tensor([3, 6, 7])}
    if name == "BertForMultipleChoice":
        return {"labels": torch.tensor([3, 0, 1])}
    raise KeyError(name)


HEADS = {
    "BertModel": BertModel,
    "BertForMaskedLM": BertForMaskedLM,
    "BertForNextSentencePrediction": BertForNextSentencePrediction,
    "BertForPreTraining": BertForPreTraining,
    "BertForSequenceClassification": BertForSequenceClassification,
    "BertForTokenClassification": BertForTokenClassification,
    "BertForQuestionAnswering": BertForQuestionAnswering,
    "BertForMultipleChoice": BertForMultipleChoice,
}
def num_labels(name: str) -> int:
    return 2 if name == "BertForQuestionAnswering" else 3  # QA: start and end


OUTPUT_FIELDS = ("last_hidden_state", "pooler_output", "logits", "prediction_logits", "seq_relationship_logits",
                 "start_logits", "end_logits", "loss")


def assert_same_outputs(ours, theirs) -> None:
    compared = 0
    for field in OUTPUT_FIELDS:
        theirs_value = getattr(theirs, field, None)
        if theirs_value is None:
            continue
        assert close(getattr(ours, field), theirs_value), field
        compared += 1
    assert compared >= 1
    assert len(ours.hidden_states) == len(theirs.hidden_states)
    for a, b in zip(ours.hidden_states, theirs.hidden_states):
        assert close(a, b)


def run_both(name: str, ours, theirs, extra: dict | None = None):
    inputs = tiny_inputs(multiple_choice=name == "BertForMultipleChoice")
    kwargs = {} if name == "BertModel" else labels_for(name)
    kwargs.update(extra or {})
    with torch.no_grad():
        return (ours(**inputs, **kwargs, output_hidden_states=True),
                theirs(**inputs, **kwargs, output_hidden_states=True))


@pytest.mark.parametrize("name", list(HEADS))
def test_head_loads_hf_checkpoint_with_same_logits_and_loss(name, tmp_path):
    torch.manual_seed(0)
    theirs = getattr(transformers, name)(transformers.BertConfig(**TINY, num_labels=num_labels(name))).eval()
    theirs.save_pretrained(tmp_path)
    ours = HEADS[name].from_pretrained(tmp_path)
    assert not ours.training
    our_out, their_out = run_both(name, ours, theirs)
    assert_same_outputs(our_out, their_out)
    if name != "BertModel":
        assert our_out.loss is not None and torch.isfinite(our_out.loss)


@pytest.mark.parametrize("name", list(HEADS))
def test_hf_loads_bertkit_checkpoint_with_same_logits_and_loss(name, tmp_path):
    torch.manual_seed(0)
    ours = HEADS[name](BertConfig(**TINY, num_labels=num_labels(name))).eval()
    ours.save_pretrained(tmp_path)
    theirs, info = getattr(transformers, name).from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    our_out, their_out = run_both(name, ours, theirs.eval())
    assert_same_outputs(our_out, their_out)


@pytest.mark.parametrize(
    "num_labels, labels, problem",
    [
        (1, torch.tensor([0.5, -1.0, 2.0]), "regression"),
        (3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]), "multi_label_classification"),
        (3, torch.tensor([2, 1, 0]), "single_label_classification"),
    ],
)
def test_sequence_classification_losses_follow_hf_problem_type(num_labels, labels, problem, tmp_path):
    torch.manual_seed(0)
    theirs = transformers.BertForSequenceClassification(transformers.BertConfig(**TINY, num_labels=num_labels)).eval()
    theirs.save_pretrained(tmp_path)
    ours = BertForSequenceClassification.from_pretrained(tmp_path)
    inputs = tiny_inputs()
    with torch.no_grad():
        our_out = ours(**inputs, labels=labels)
        their_out = theirs(**inputs, labels=labels)
    assert ours.problem_type(labels) == theirs.config.problem_type == problem
    assert close(our_out.loss, their_out.loss) and close(our_out.logits, their_out.logits)


def test_mlm_decoder_is_tied_and_callable_on_masked_positions_only():
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(**TINY)).eval()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    inputs = tiny_inputs()
    labels = labels_for("BertForMaskedLM")["labels"]
    with torch.no_grad():
        full = model(**inputs, labels=labels)
        hidden = model.bert(**inputs).last_hidden_state
        masked_logits = model.cls.predictions(hidden[labels != -100])  # [n_masked, vocab]
    assert masked_logits.shape == (int((labels != -100).sum()), TINY["vocab_size"])
    assert close(masked_logits, full.logits[labels != -100])
    loss = torch.nn.functional.cross_entropy(masked_logits, labels[labels != -100])
    assert close(loss, full.loss)


def test_outputs_read_by_attribute_index_key_and_tuple(minilm_pair, tokenizer):
    hf, ours = minilm_pair
    batch = tokenizer(["I love Paris", "the weather is lovely today"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = ours(**batch, output_attentions=False)
        as_tuple = ours(**batch, return_dict=False, output_attentions=True)
        theirs_tuple = hf(**batch, return_dict=False, output_attentions=True)  # eager attention: exact oracle
    assert out[0] is out.last_hidden_state and out["pooler_output"] is out.pooler_output
    assert list(out.keys()) == ["last_hidden_state", "pooler_output"] and len(out) == 2
    sequence_output, pooled = out[:2]
    assert sequence_output is out.last_hidden_state and pooled is out.pooler_output
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 3  # hidden, pooled, attentions (HF adds an empty
    assert theirs_tuple[3] == ()  # cross_attentions tuple, which BERT-as-encoder never fills)
    assert close(as_tuple[0], theirs_tuple[0]) and close(as_tuple[1], theirs_tuple[1])
    assert all(close(a, b) for a, b in zip(as_tuple[2], theirs_tuple[2]))


def test_auto_models_build_the_matching_bert_class(minilm_dir):
    assert type(AutoModel.from_pretrained(minilm_dir)) is BertModel
    qa = AutoModelForQuestionAnswering.from_pretrained(minilm_dir)
    assert type(qa) is BertForQuestionAnswering and qa.qa_outputs.out_features == 2
    assert type(AutoModel.from_config(BertConfig(**TINY))) is BertModel


def test_train_mode_uses_dropout_and_gradients_flow():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY, num_labels=2))
    model.train()
    inputs = tiny_inputs()
    out1 = model(**inputs, labels=torch.tensor([0, 1, 1]))
    out2 = model(**inputs, labels=torch.tensor([0, 1, 1]))
    assert not torch.equal(out1.logits, out2.logits)  # dropout active
    out1.loss.backward()
    assert model.bert.embeddings.word_embeddings.weight.grad is not None
    model.gradient_checkpointing_enable()
    model.zero_grad()
    torch.manual_seed(3)
    loss_ckpt = model(**inputs, labels=torch.tensor([0, 1, 1])).loss
    loss_ckpt.backward()
    assert torch.isfinite(model.classifier.weight.grad).all()


def test_bad_inputs_get_clear_errors():
    model = BertModel(BertConfig(**TINY)).eval()
    with pytest.raises(ValueError, match="outside the model's 99 embedding rows"):
        model(torch.tensor([[1, 2, 150]]))
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        model(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="token_type_ids contains 2"):
        model(torch.tensor([[1, 2]]), token_type_ids=torch.tensor([[0, 2]]))


# --- the fast path: unpadded encoder and length-bucketed batches -------------------------------------------
def test_unpadded_encoder_equals_padded_reference(minilm_pair, tokenizer, shared_data):
    _, ours = minilm_pair
    batch = tokenizer(sst2_sentences(shared_data, 10), padding=True, return_tensors="pt")
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        padded = ours(**batch, output_hidden_states=True, output_attentions=True)
        unpadded = ours(**batch, output_hidden_states=True, output_attentions=True, unpad=True)
    assert close(unpadded.pooler_output, padded.pooler_output)
    for a, b in zip(unpadded.hidden_states, padded.hidden_states):
        assert close(a[real], b[real])
        assert not a[~real].any()  # padding positions are zeros in the unpadded path
    for a, b in zip(unpadded.attentions, padded.attentions):  # rows of real query tokens: [tokens, heads, seq]
        assert close(a.transpose(1, 2)[real], b.transpose(1, 2)[real])


def test_encode_batches_equals_one_padded_batch(minilm_pair, tokenizer, shared_data):
    hf, ours = minilm_pair
    sentences = sst2_sentences(shared_data, 9)
    pairs = squad_pairs(shared_data, 3)
    encoded = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = hf(**encoded, output_hidden_states=True)
    outputs = encode_batches(ours, encoded, batch_size=4, output_hidden_states=True)
    assert len(outputs) == len(sentences)
    for i, out in enumerate(outputs):
        n = int(encoded["attention_mask"][i].sum())
        assert out.last_hidden_state.shape == (n, 384)
        assert close(out.last_hidden_state, reference.last_hidden_state[i, :n])
        assert close(out.pooler_output, reference.pooler_output[i])
        assert close(out.hidden_states[3], reference.hidden_states[3][i, :n])
    # pairs given as unpadded id lists with their segment ids
    pair_batch = tokenizer([q for q, _ in pairs], [c for _, c in pairs], truncation="only_second", max_length=48)
    pair_outputs = encode_batches(ours, pair_batch["input_ids"], pair_batch["token_type_ids"], batch_size=2)
    padded = tokenizer([q for q, _ in pairs], [c for _, c in pairs], truncation="only_second", max_length=48,
                          padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = hf(**padded)
    for i, out in enumerate(pair_outputs):
        n = len(pair_batch["input_ids"][i])
        assert close(out.last_hidden_state, reference.last_hidden_state[i, :n])
    with pytest.raises(ValueError, match="list of token-id lists"):
        encode_batches(ours, [1, 2, 3])


def test_unpadded_training_gives_the_padded_gradients():
    """The pretraining recipe trains with model.bert(..., unpad=True): same loss and gradients as padded."""
    torch.manual_seed(0)
    # no dropout, so runs in train mode (where gradient checkpointing acts) are deterministic too
    model = BertForMaskedLM(BertConfig(**TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    inputs = tiny_inputs()
    labels = labels_for("BertForMaskedLM")["labels"].masked_fill(inputs["attention_mask"] == 0, -100)

    def loss_and_grads(unpad: bool, checkpointing: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        model.bert.encoder.gradient_checkpointing = checkpointing
        model.train(checkpointing)  # checkpointing acts in train mode only
        hidden = model.bert(**inputs, unpad=unpad).last_hidden_state
        logits = model.cls.predictions(hidden[labels != -100])
        loss = torch.nn.functional.cross_entropy(logits, labels[labels != -100])
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    padded_loss, padded_grads = loss_and_grads(unpad=False)
    for unpad, checkpointing in ((True, False), (True, True)):
        loss, grads = loss_and_grads(unpad, checkpointing)
        assert close(loss, padded_loss)
        assert len(grads) == len(padded_grads)
        assert all(close(a, b) for a, b in zip(grads, padded_grads))


def test_encode_batches_through_a_head_model_and_plain_id_lists():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY)).eval()
    rows = [[2, 5, 9, 3], [2, 7, 3], [2, 11, 12, 13, 14, 3], [2, 3]]
    outputs = encode_batches(model, rows, batch_size=3, progress=True)
    for row, out in zip(rows, outputs):
        with torch.no_grad():
            alone = model.bert(torch.tensor([row]))
        assert close(out.last_hidden_state, alone.last_hidden_state[0])
        assert close(out.pooler_output, alone.pooler_output[0])
    with pytest.raises(ValueError, match="empty sequence"):
        encode_batches(model, [[2, 3], []])
    with pytest.raises(ValueError, match="right padding"):
        encode_batches(model, {"input_ids": [[0, 2, 3]], "attention_mask": [[0, 1, 1]]})



@pytest.mark.parametrize("head", ["BertModel", "BertForSequenceClassification", "BertForTokenClassification",
                                  "BertForQuestionAnswering", "BertForMaskedLM"])
def test_torch_compile_sees_one_graph(head):
    """The input checks keep their messages in eager mode but split no compiled graph (torch._dynamo.explain)."""
    import torch._dynamo

    import bertkit.model

    torch._dynamo.reset()
    model = getattr(bertkit.model, head)(BertConfig(**TINY)).eval()
    ids = torch.tensor([[2, 5, 9, 3], [2, 7, 3, 0]])
    explained = torch._dynamo.explain(model)(input_ids=ids, attention_mask=(ids != 0).long())
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    with pytest.raises(ValueError, match="outside the model's"):  # eager: the clear error is still there
        model(input_ids=torch.tensor([[2, 10_000]]))
