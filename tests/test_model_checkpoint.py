"""Checkpoint edge cases: every weights layout HF uses, legacy names, prefix handling, the unused / newly
initialised report, config overrides and dtypes, and the clear errors for folders that do not fit."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from bertkit.model import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)
IDS = torch.tensor([[2, 15, 27, 33, 3, 0], [2, 40, 3, 0, 0, 0]])
MASK = (IDS != 0).long()


def hf_pretraining_folder(folder: Path) -> transformers.BertForPreTraining:
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(transformers.BertConfig(**TINY)).eval()
    model.save_pretrained(folder)
    return model


def encode(model, ids=IDS, mask=MASK) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


def hf_encode(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS, attention_mask=MASK, output_hidden_states=True).hidden_states[-1]


def close(a, b) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=1e-5, rtol=0)


def test_pytorch_model_bin_with_legacy_gamma_beta_names(tmp_path):
    reference = hf_pretraining_folder(tmp_path / "hf")
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in reference.state_dict().items()}
    state["bert.embeddings.position_ids"] = torch.arange(64)[None]  # old HF saved this buffer
    assert any(k.endswith("gamma") for k in state)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    torch.save(state, legacy / "pytorch_model.bin")
    (legacy / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    model, info = BertForPreTraining.from_pretrained(legacy, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": []}
    assert close(encode(model.bert), hf_encode(reference))


def test_sharded_checkpoints_both_ways(tmp_path):
    reference = hf_pretraining_folder(tmp_path / "unused")
    reference.save_pretrained(tmp_path / "hf_sharded", max_shard_size="20KB")
    assert (tmp_path / "hf_sharded" / "model.safetensors.index.json").is_file()
    ours = BertForPreTraining.from_pretrained(tmp_path / "hf_sharded")
    assert close(encode(ours.bert), hf_encode(reference))

    ours.save_pretrained(tmp_path / "ours_sharded", max_shard_size="20KB")
    index = json.loads((tmp_path / "ours_sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert not (tmp_path / "ours_sharded" / "model.safetensors").exists()
    theirs = transformers.BertForPreTraining.from_pretrained(tmp_path / "ours_sharded").eval()
    assert close(hf_encode(theirs), hf_encode(reference))


def test_base_checkpoint_into_head_reports_new_weights_and_head_into_base_reports_unused(tmp_path, caplog):
    hf_pretraining_folder(tmp_path / "pt")
    # head checkpoint (bert. prefix + cls.*) into the bare encoder: cls.* unused, as in the seeds
    with caplog.at_level(logging.WARNING, logger="bertkit"):
        base = BertModel.from_pretrained(tmp_path / "pt")
    assert "were not used when initializing BertModel" in caplog.text
    assert "'cls.predictions.transform.dense.weight'" in caplog.text and "cls.seq_relationship.weight" in caplog.text
    base.save_pretrained(tmp_path / "base")
    assert not any(k.startswith("bert.") for k in load_file(tmp_path / "base" / "model.safetensors"))

    # bare-encoder checkpoint (no prefix) into a classifier: the classifier is newly initialised
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bertkit"):
        classifier, info = BertForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=5,
                                                                        output_loading_info=True)
    assert info["missing_keys"] == ["classifier.bias", "classifier.weight"] and info["unexpected_keys"] == []
    assert "Some weights of BertForSequenceClassification were not initialized" in caplog.text
    assert "newly initialized: ['classifier.bias', 'classifier.weight']" in caplog.text
    assert classifier.classifier.out_features == 5 and classifier.config.num_labels == 5
    assert close(encode(classifier.bert), encode(base))

    # and HF agrees with our reading of the prefix-less folder
    theirs = transformers.BertModel.from_pretrained(tmp_path / "base").eval()
    assert close(hf_encode(theirs), encode(base))


def test_config_overrides_labels_and_unknown_keys(tmp_path):
    hf_pretraining_folder(tmp_path / "pt")
    labels = ["O", "B-PER", "I-PER"]
    model = BertForTokenClassification.from_pretrained(
        tmp_path / "pt", id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)})
    assert model.config.num_labels == 3 and model.config.id2label[1] == "B-PER" and model.config.label2id["I-PER"] == 2
    model.save_pretrained(tmp_path / "ner")
    theirs = transformers.BertForTokenClassification.from_pretrained(tmp_path / "ner")
    assert theirs.config.id2label == {0: "O", 1: "B-PER", 2: "I-PER"}
    assert BertForTokenClassification.from_pretrained(tmp_path / "ner").config.id2label == model.config.id2label
    hidden = BertModel.from_pretrained(tmp_path / "pt", output_hidden_states=True)
    assert len(hidden(IDS).hidden_states) == 3
    with pytest.raises(ValueError, match="unknown config field 'num_label'"):
        BertModel.from_pretrained(tmp_path / "pt", num_label=3)


def test_config_json_round_trip_keeps_unknown_keys_and_hf_reads_it(tmp_path):
    config = BertConfig.from_size("tiny", vocab_size=500, my_custom_key={"a": 1}, num_labels=4)
    config.save_pretrained(tmp_path)
    again = BertConfig.from_pretrained(tmp_path)
    assert again == config and again.my_custom_key == {"a": 1} and again.num_labels == 4
    theirs = transformers.BertConfig.from_pretrained(tmp_path)
    assert (theirs.hidden_size, theirs.num_hidden_layers, theirs.num_attention_heads, theirs.vocab_size) == (128, 2, 2, 500)
    assert theirs.num_labels == 4


def test_minilm_config_reads_with_extra_keys(minilm_dir, tmp_path):
    config = BertConfig.from_pretrained(minilm_dir)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 6, 12)
    assert config.gradient_checkpointing is False and config.transformers_version == "4.8.2"
    config.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    original = json.loads((minilm_dir / "config.json").read_text())
    assert all(written[k] == v for k, v in original.items())


def test_torch_dtype_and_device(tmp_path):
    hf_pretraining_folder(tmp_path / "pt")
    model = BertModel.from_pretrained(tmp_path / "pt", torch_dtype=torch.bfloat16, device="cpu")
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    assert encode(model).dtype == torch.bfloat16
    assert BertModel.from_pretrained(tmp_path / "pt", torch_dtype="auto").dtype == torch.float32
    assert BertModel.from_pretrained(tmp_path / "pt", dtype="float16").dtype == torch.float16
    model.save_pretrained(tmp_path / "bf16")
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    assert BertModel.from_pretrained(tmp_path / "bf16", torch_dtype="auto").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="torch_dtype"):
        BertModel.from_pretrained(tmp_path / "pt", torch_dtype="int8")


def test_hub_name_without_network_says_how_to_use_a_local_folder(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="local folder") as err:
        BertModel.from_pretrained("bert-base-uncased-not-cached-here")
    assert "huggingface-cli download" in str(err.value)


def test_missing_and_corrupt_files_get_clear_errors(tmp_path):
    hf_pretraining_folder(tmp_path / "pt")
    with pytest.raises(FileNotFoundError, match="config.json"):
        (tmp_path / "empty").mkdir()
        BertModel.from_pretrained(tmp_path / "empty")
    with pytest.raises(ValueError, match="is a file"):
        BertModel.from_pretrained(tmp_path / "pt" / "config.json")

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((tmp_path / "pt" / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no weights"):
        BertModel.from_pretrained(no_weights)

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_text((tmp_path / "pt" / "config.json").read_text())
    data = (tmp_path / "pt" / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        BertModel.from_pretrained(truncated)

    (truncated / "model.safetensors").unlink()
    (truncated / "pytorch_model.bin").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        BertModel.from_pretrained(truncated)

    bad_json = tmp_path / "bad_json"
    bad_json.mkdir()
    (bad_json / "config.json").write_text('{"hidden_size": 32,')
    with pytest.raises(ValueError, match="not valid JSON"):
        BertModel.from_pretrained(bad_json)


def test_missing_shard_is_named(tmp_path):
    reference = hf_pretraining_folder(tmp_path / "pt")
    reference.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shards = sorted((tmp_path / "sharded").glob("model-*.safetensors"))
    shards[-1].unlink()
    with pytest.raises(FileNotFoundError, match=shards[-1].name):
        BertModel.from_pretrained(tmp_path / "sharded")


def write_variant(src: Path, dst: Path, **config_changes) -> Path:
    dst.mkdir()
    config = json.loads((src / "config.json").read_text())
    config.update(config_changes)
    (dst / "config.json").write_text(json.dumps(config))
    (dst / "model.safetensors").write_bytes((src / "model.safetensors").read_bytes())
    return dst


def test_config_that_does_not_fit_the_weights(tmp_path):
    hf_pretraining_folder(tmp_path / "pt")
    with pytest.raises(ValueError, match="has 99 rows .* vocab_size=120"):
        BertModel.from_pretrained(write_variant(tmp_path / "pt", tmp_path / "vocab", vocab_size=120))
    with pytest.raises(ValueError, match="vocab_size=50"):
        BertModel.from_pretrained(tmp_path / "pt", vocab_size=50)
    with pytest.raises(ValueError, match=r"intermediate\.dense\.\w+ has shape \[37.*expects \[64"):
        BertModel.from_pretrained(write_variant(tmp_path / "pt", tmp_path / "ffn", intermediate_size=64))
    with pytest.raises(ValueError, match="2 encoder layers but the config says num_hidden_layers=4"):
        BertModel.from_pretrained(write_variant(tmp_path / "pt", tmp_path / "layers", num_hidden_layers=4))
    with pytest.raises(ValueError, match="'roberta' config .* BERT"):
        BertModel.from_pretrained(write_variant(tmp_path / "pt", tmp_path / "roberta", model_type="roberta"))


def test_ignore_mismatched_sizes_reinitialises_a_classifier(tmp_path):
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(**TINY, num_labels=2)).save_pretrained(tmp_path / "two")
    with pytest.raises(ValueError, match=r"classifier\.\w+ has shape \[2"):
        BertForSequenceClassification.from_pretrained(tmp_path / "two", num_labels=5)
    model, info = BertForSequenceClassification.from_pretrained(tmp_path / "two", num_labels=5,
                                                               ignore_mismatched_sizes=True, output_loading_info=True)
    assert model.classifier.out_features == 5 and len(info["mismatched_keys"]) == 2


def test_saved_folder_has_no_duplicate_tied_tensors_and_reloads_tied(tmp_path):
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(**TINY)).eval()
    model.save_pretrained(tmp_path)
    keys = set(load_file(tmp_path / "model.safetensors"))
    assert "cls.predictions.decoder.weight" not in keys and "cls.predictions.bias" in keys
    again = BertForMaskedLM.from_pretrained(tmp_path)
    assert again.cls.predictions.decoder.weight is again.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        assert close(again(IDS, MASK).logits, model(IDS, MASK).logits)


def test_untied_checkpoint_keeps_its_own_decoder(tmp_path):
    torch.manual_seed(0)
    theirs = transformers.BertForMaskedLM(transformers.BertConfig(**TINY, tie_word_embeddings=False)).eval()
    theirs.save_pretrained(tmp_path)
    assert "cls.predictions.decoder.weight" in load_file(tmp_path / "model.safetensors")
    ours = BertForMaskedLM.from_pretrained(tmp_path)
    assert ours.cls.predictions.decoder.weight is not ours.bert.embeddings.word_embeddings.weight
    with torch.no_grad():
        assert close(ours(IDS, MASK).logits, theirs(input_ids=IDS, attention_mask=MASK).logits)


def test_safetensors_without_prefix_written_by_hand(tmp_path):
    """A bare-encoder state dict saved by any tool (no `bert.` prefix, no metadata) loads into a head."""
    torch.manual_seed(0)
    base = BertModel(BertConfig(**TINY)).eval()
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(tmp_path / "model.safetensors"))
    base.config.save_pretrained(tmp_path)
    mlm = BertForMaskedLM.from_pretrained(tmp_path)
    assert close(encode(mlm.bert), encode(base))


CROSS_LOADS = ["BertModel", "BertForMaskedLM", "BertForNextSentencePrediction", "BertForPreTraining",
               "BertForSequenceClassification", "BertForTokenClassification", "BertForQuestionAnswering"]


@pytest.mark.parametrize("source", ["BertForPreTraining", "BertModel"])
@pytest.mark.parametrize("target", CROSS_LOADS)
def test_loading_report_matches_hf(source, target, tmp_path):
    """Unused and newly-initialised weights, as HF reports them, when a checkpoint loads into another head."""
    import bertkit.model

    torch.manual_seed(0)
    getattr(transformers, source)(transformers.BertConfig(**TINY)).save_pretrained(tmp_path)
    _, theirs = getattr(transformers, target).from_pretrained(tmp_path, output_loading_info=True)
    _, ours = getattr(bertkit.model, target).from_pretrained(tmp_path, output_loading_info=True)
    # HF also lists the tied alias cls.predictions.decoder.bias (it is cls.predictions.bias, listed already)
    assert ours["missing_keys"] == sorted(set(theirs["missing_keys"]) - {"cls.predictions.decoder.bias"})
    assert ours["unexpected_keys"] == sorted(theirs["unexpected_keys"])


@pytest.mark.parametrize("tied", [True, False])
def test_resize_token_embeddings_keeps_rows_and_round_trips_through_hf(tied, tmp_path):
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(**TINY, tie_word_embeddings=tied)).eval()
    old_rows = model.bert.embeddings.word_embeddings.weight.clone()
    old_decoder = model.cls.predictions.decoder.weight.clone()
    model.resize_token_embeddings(104)
    assert model.config.vocab_size == 104 and model.cls.predictions.bias.shape == (104,)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight[:99], old_rows)
    assert torch.equal(model.cls.predictions.decoder.weight[:99], old_decoder)
    assert (model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight) == tied
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    ids = torch.tensor([[2, 101, 103, 3]])  # the new ids work
    model.save_pretrained(tmp_path)
    theirs = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert close(model(ids).logits, theirs(input_ids=ids).logits)
    model.resize_token_embeddings(90)
    assert model(torch.tensor([[2, 5, 3]])).logits.shape == (1, 3, 90)


def test_loaded_weights_are_the_models_own(tmp_path):
    """Loading hands the file's tensors to the model without copying: updating them (training) must not touch
    the file or another model loaded from it."""
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(**TINY)).save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()
    first = BertForMaskedLM.from_pretrained(tmp_path)
    second = BertForMaskedLM.from_pretrained(tmp_path)
    with torch.no_grad():
        for param in first.parameters():
            param.add_(1.0)
    assert first.cls.predictions.decoder.weight is first.bert.embeddings.word_embeddings.weight
    assert all(p.requires_grad for p in first.parameters())
    assert (tmp_path / "model.safetensors").read_bytes() == before
    third = BertForMaskedLM.from_pretrained(tmp_path)
    for a, b in zip(second.state_dict().values(), third.state_dict().values()):
        assert torch.equal(a, b)
