"""One resolver for models, tokenizers and pipelines: a local folder, then the Hugging Face cache as
`huggingface_hub` lays it out, then (only with huggingface_hub, the network and HF_HUB_OFFLINE unset) a download."""
from __future__ import annotations

import shutil

import pytest
import torch

from bertkit import AutoTokenizer, BertModel, BertTokenizer, pipeline
from bertkit.hub import cached_snapshot, resolve_folder


@pytest.fixture
def fake_cache(tmp_path, minilm_dir, monkeypatch):
    """A cache holding "org/tiny" at commit abc123 (refs/main -> snapshots/abc123), as huggingface_hub writes it."""
    from transformers import BertConfig, BertForMaskedLM

    repository = tmp_path / "hub" / "models--org--tiny"
    snapshot = repository / "snapshots" / "abc123"
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=64)).save_pretrained(snapshot)
    shutil.copy(minilm_dir / "vocab.txt", snapshot / "vocab.txt")
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return snapshot


def test_models_tokenizers_and_pipelines_find_a_cached_name(fake_cache):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    assert cached_snapshot("org/tiny") == fake_cache == resolve_folder("org/tiny")
    # the oracle: huggingface_hub itself finds the same file in that cache
    found = huggingface_hub.try_to_load_from_cache("org/tiny", "config.json", cache_dir=fake_cache.parents[2])
    assert found == str(fake_cache / "config.json")
    assert BertModel.from_pretrained("org/tiny").config.hidden_size == 16
    assert BertTokenizer.from_pretrained("org/tiny")("hello")["input_ids"] == [101, 7592, 102]
    assert AutoTokenizer.from_pretrained("org/tiny").vocab_size == 30522
    assert len(pipeline("fill-mask", model="org/tiny")("Paris is the [MASK] of France.", top_k=2)) == 2
    assert cached_snapshot("org/tiny", revision="abc123") == fake_cache


def test_a_missing_name_says_how_to_get_it_for_models_and_tokenizers(fake_cache):
    for load in (BertModel.from_pretrained, BertTokenizer.from_pretrained, lambda n: pipeline("fill-mask", model=n)):
        with pytest.raises(FileNotFoundError, match="not a local folder nor in the Hugging Face cache.*HF_HUB_OFFLINE.*"
                                                    "huggingface-cli download org/other"):
            load("org/other")
    with pytest.raises(FileNotFoundError, match="model folder .* does not exist"):
        BertModel.from_pretrained("./no/such/folder")
