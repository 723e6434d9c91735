"""Seed 001's TensorFlow cells as written: `TFBertForMaskedLM` + `FillMaskPipeline(model=..., tokenizer=...)`, and
`TFBertForNextSentencePrediction` with `return_tensors='tf'`, `tf.keras.layers.Softmax()` and `tf.math.argmax`.
They run bertkit's PyTorch model with TensorFlow tensors in and out, so their numbers are the PyTorch model's.
(No checkpoint with trained MLM/NSP heads ships offline, so the heads here are small random ones.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

tf = pytest.importorskip("tensorflow", reason="the [tf] extra (tensorflow-cpu) is not installed")


@pytest.fixture(scope="module")
def pretraining_folder(tmp_path_factory, minilm_dir):
    import shutil

    from bertkit import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("pretraining")
    BertForPreTraining(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                  initializer_range=0.4)).save_pretrained(folder)
    shutil.copy(minilm_dir / "vocab.txt", folder / "vocab.txt")
    return folder


def test_seed_001_fill_mask_cell(pretraining_folder):
    from bertkit import AutoTokenizer, FillMaskPipeline, TFBertForMaskedLM, pipeline

    model = TFBertForMaskedLM.from_pretrained(pretraining_folder)
    tokenizer = AutoTokenizer.from_pretrained(pretraining_folder)
    pip = FillMaskPipeline(model=model, tokenizer=tokenizer)
    got = pip("Love is like the [MASK]. You can't see it but you can feel it")
    expected = pipeline("fill-mask", model=pretraining_folder)("Love is like the [MASK]. You can't see it but you can "
                                                             "feel it")
    assert [r["token_str"] for r in got] == [r["token_str"] for r in expected] and len(got) == 5
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in expected], abs=1e-6)


def test_seed_001_next_sentence_cell(pretraining_folder):
    from bertkit import AutoTokenizer, BertForNextSentencePrediction, TFBertForNextSentencePrediction

    model = TFBertForNextSentencePrediction.from_pretrained(pretraining_folder)
    tokenizer = AutoTokenizer.from_pretrained(pretraining_folder)
    reference = BertForNextSentencePrediction.from_pretrained(pretraining_folder).eval()
    prompt = "I am going outside"
    for next_sentence in ("I will be back after 6", "The sky is blue due to the shorter wavelength of blue light."):
        encoding = tokenizer(prompt, next_sentence, return_tensors="tf")
        assert isinstance(encoding["input_ids"], tf.Tensor)
        logits = model(encoding["input_ids"], token_type_ids=encoding["token_type_ids"])[0]
        softmax = tf.keras.layers.Softmax()
        probs = softmax(logits)
        label = tf.math.argmax(probs, axis=-1).numpy()
        with torch.no_grad():
            torch_logits = reference(**tokenizer(prompt, next_sentence, return_tensors="pt")).logits
        np.testing.assert_allclose(logits.numpy(), torch_logits.numpy(), atol=1e-5)
        assert label.tolist() == torch_logits.argmax(-1).tolist() and probs.shape == (1, 2)
