"""Feature extraction on the real all-MiniLM-L6-v2 weights: sentence-transformers and HuggingFace as oracles."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers

from bertkit import pipeline
from bertkit.cli import main as cli_main
from bertkit.pipelines.feature_extraction import FeatureExtractionPipeline, sentence_transformers_settings


@pytest.fixture(scope="module")
def sentences(shared_data) -> list[str]:
    # real sentences of mixed lengths (SST-2 dev), plus one longer than MiniLM's 256-token window
    lines = (shared_data / "en-sentiment-sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    picked = [line.split("\t")[0].strip() for line in lines[:40:4]]
    return picked + [" ".join(lines[i].split("\t")[0] for i in range(60, 75))]


@pytest.fixture(scope="module")
def extractor(minilm_dir) -> FeatureExtractionPipeline:
    return pipeline("feature-extraction", model=minilm_dir, batch_size=4)


@pytest.fixture(scope="module")
def hf_model(minilm_dir):
    return transformers.BertModel.from_pretrained(minilm_dir).eval()


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_dir):
    return transformers.BertTokenizer.from_pretrained(minilm_dir)


def test_mean_pooling_matches_sentence_transformers(minilm_dir, extractor, sentences):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_dir), device="cpu").encode(sentences, batch_size=4)
    settings = sentence_transformers_settings(minilm_dir)
    assert settings == {"pooling": "mean", "normalize": True, "max_length": 256}
    ours = extractor.encode(sentences, batch_size=4, **settings)
    assert ours.shape == reference.shape == (len(sentences), 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    # the cosine similarities people compare with
    np.testing.assert_allclose(ours @ ours.T, reference @ reference.T, atol=1e-5)
    # the pipeline call gives the same vector, one text at a time or in a list
    one = extractor(sentences[0], pooling="mean", normalize=True)
    np.testing.assert_allclose(one, reference[0], atol=1e-5)
    assert np.asarray(extractor(sentences[:2], pooling="mean", normalize=True)).shape == (2, 384)


def test_token_features_match_huggingface_pipeline(minilm_dir, extractor, sentences):
    reference = transformers.pipeline("feature-extraction", model=str(minilm_dir), device="cpu")
    ours = extractor(sentences[:3])  # padded batch, padding stripped per text
    for text, features in zip(sentences[:3], ours):
        expected = np.asarray(reference(text))
        assert np.asarray(features).shape == expected.shape  # [1, tokens, 384]
        np.testing.assert_allclose(np.asarray(features), expected, atol=1e-5)
    tensor = extractor(sentences[0], return_tensors=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == np.asarray(reference(sentences[0])).shape


@pytest.mark.parametrize("layer", [0, 3, -1])
def test_cls_and_mean_from_any_layer(extractor, hf_model, hf_tokenizer, sentences, layer):
    texts = sentences[:4]
    encoded = hf_tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        outputs = hf_model(**encoded, output_hidden_states=True)
    hidden = outputs.hidden_states[layer]
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    expected_mean = (hidden * mask).sum(1) / mask.sum(1)
    np.testing.assert_allclose(extractor.encode(texts, pooling="cls", layer=layer), hidden[:, 0], atol=1e-5)
    np.testing.assert_allclose(extractor.encode(texts, pooling="mean", layer=layer), expected_mean, atol=1e-5)
    if layer == -1:
        np.testing.assert_allclose(extractor.encode(texts, pooling="pooler"), outputs.pooler_output, atol=1e-5)


def test_static_vs_dynamic_embeddings(extractor, hf_tokenizer):
    """Seed 003: the word `python` has one static vector but two different contextual ones."""
    texts = ["He got bit by Python", "Python is my favorite programming language"]
    tokens = [hf_tokenizer.tokenize(text) for text in texts]
    positions = [t.index("python") + 1 for t in tokens]  # +1 for [CLS]
    features = [torch.tensor(extractor(text))[0] for text in texts]
    snake, language = (f[p] for f, p in zip(features, positions))
    # static: both `python`s are the same vocabulary id, so a lookup table gives both the same vector
    ids = [extractor.tokenizer(text)["input_ids"] for text in texts]
    python_id = extractor.tokenizer.convert_tokens_to_ids("python")
    assert ids[0][positions[0]] == ids[1][positions[1]] == python_id
    # dynamic: BERT's contextual vectors of the two `python`s differ
    assert snake.shape == language.shape == (384,)
    assert torch.nn.functional.cosine_similarity(snake, language, dim=0).item() < 0.9


def test_bad_feature_arguments(extractor):
    with pytest.raises(ValueError, match="unknown pooling 'avg'"):
        extractor.encode(["a"], pooling="avg")
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        extractor("a", pooling="cls", layer=9)
    with pytest.raises(ValueError, match="pooler"):
        extractor("a", pooling="pooler", layer=2)
    with pytest.raises(ValueError, match="a text or a list of texts"):
        extractor([1, 2])


def test_embed_command(minilm_dir, extractor, sentences, tmp_path, capsys):
    expected = extractor.encode(sentences[:3], pooling="mean", normalize=True, max_length=256)
    npy = tmp_path / "vectors.npy"
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(sentences[:3]) + "\n\n")
    # defaults come from the folder's sentence-transformers config: mean pooling, normalized
    assert cli_main(["embed", "--model", str(minilm_dir), "--file", str(texts), "-o", str(npy)]) == 0
    np.testing.assert_allclose(np.load(npy), expected, atol=1e-6)

    out = tmp_path / "vectors.json"
    assert cli_main(["embed", "--model", str(minilm_dir), sentences[0], "--pooling", "cls", "--no-normalize", "-o", str(out)]) == 0
    records = json.loads(out.read_text())
    assert records[0]["text"] == sentences[0]
    np.testing.assert_allclose(records[0]["embedding"], extractor.encode(sentences[0], pooling="cls"), atol=1e-6)

    assert cli_main(["embed", "--model", str(minilm_dir), "I love Paris", "--pooling", "none"]) == 0
    tokens = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert tokens[0]["tokens"] == ["[CLS]", "i", "love", "paris", "[SEP]"]
    assert np.asarray(tokens[0]["vectors"]).shape == (5, 384)

    assert cli_main(["embed", "--model", str(minilm_dir), "a cat", "a kitten", "the stock market"]) == 0
    printed = capsys.readouterr().out
    assert "cosine similarity" in printed and "384-dim" in printed

    assert cli_main(["embed", "--model", str(minilm_dir), "a", "-o", str(tmp_path / "v.csv")]) == 2
    assert ".json or .npy" in capsys.readouterr().err
    assert cli_main(["embed", "--model", str(minilm_dir)]) == 2
    assert "no input text" in capsys.readouterr().err
