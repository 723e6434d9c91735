"""The seeds' code, with `from bertkit import ...` instead of `from transformers import ...`.

Each snippet keeps the seed's own lines (bert-base-uncased replaced by the MiniLM folder, which has the
same vocabulary, so the seed's printed token ids are the expected ones); HuggingFace `transformers`
running the same lines is the oracle for every number the seed could not print.
"""
from __future__ import annotations

import pytest
import torch
import transformers
from torch.utils.data import DataLoader, Dataset


@pytest.fixture(scope="module")
def model_name(minilm_dir) -> str:
    return str(minilm_dir)


def test_seed_002_tokenizer(model_name):
    from bertkit import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(model_name)
    reference = transformers.BertTokenizer.from_pretrained(model_name)
    # the seed's printed output
    expected = {
        "Hello, world!": (["hello", ",", "world", "!"], [7592, 1010, 2088, 999], "hello, world!"),
        "unbelievable performance!": (["unbelievable", "performance", "!"], [23653, 2836, 999], "unbelievable performance!"),
        "COVID-19 pandemic": (
            ["co", "##vid", "-", "19", "pan", "##de", "##mic"],
            [2522, 17258, 1011, 2539, 6090, 3207, 7712],
            "covid - 19 pandemic",
        ),
    }
    for sentence, (want_tokens, want_ids, want_decoded) in expected.items():
        tokens = tokenizer.tokenize(sentence)
        ids = tokenizer.convert_tokens_to_ids(tokens)
        decoded_str = tokenizer.decode(ids)
        assert (tokens, ids, decoded_str) == (want_tokens, want_ids, want_decoded)
        assert decoded_str == reference.decode(ids)


def test_seed_002_attention_mask_and_token_type_ids(model_name):
    from bertkit import BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(model_name)
    sentences = ["short sentence", "This is a much longer sentence with more words"]
    encoded = tokenizer(sentences, padding=True, return_tensors="pt")
    assert encoded["input_ids"].tolist() == [
        [101, 2460, 6251, 102, 0, 0, 0, 0, 0, 0, 0],
        [101, 2023, 2003, 1037, 2172, 2936, 6251, 2007, 2062, 2616, 102],
    ]
    assert encoded["attention_mask"].tolist() == [[1] * 4 + [0] * 7, [1] * 11]
    assert encoded["token_type_ids"].tolist() == [[0] * 11, [0] * 11]

    sentence_A = "The weather is nice"
    sentence_B = "Let's fo for a work"
    encoded = tokenizer(sentence_A, sentence_B, padding=True, return_tensors="pt")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0])
    assert tokens == ["[CLS]", "the", "weather", "is", "nice", "[SEP]", "let", "'", "s", "f", "##o", "for", "a", "work", "[SEP]"]
    assert encoded["token_type_ids"].tolist() == [[0] * 6 + [1] * 9]
    segments = []
    for token, token_id, type_id in zip(tokens, encoded["input_ids"][0], encoded["token_type_ids"][0]):
        segment = "A" if type_id == 0 else "B"
        if token == "[SEP]":
            segment = "sep"
        elif token == "[CLS]":
            segment = "start"
        segments.append(f"{token:20s}: {token_id.item():6d}({type_id.item():6d})({segment})")
    assert segments[0].startswith("[CLS]") and "101" in segments[0] and segments[6].endswith("(B)")


def test_seed_002_cls_pooling(model_name):
    from bertkit import BertModel, BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(model_name)
    model = BertModel.from_pretrained(model_name)
    sentence = "BERT is amazing for NLP tasks!"
    inputs = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    last_hidden_state = outputs.last_hidden_state
    assert last_hidden_state.shape == (1, 10, 384)  # the seed's [1, 10, 768] at MiniLM's width
    cls_embedding = last_hidden_state[:, 0, :]
    assert cls_embedding.shape == (1, 384)
    classifier = torch.nn.Linear(384, 2)
    logits = classifier(cls_embedding)
    probs = torch.softmax(logits, dim=-1)
    assert probs.shape == (1, 2) and probs.sum().item() == pytest.approx(1.0)
    assert torch.argmax(probs).item() in (0, 1)

    reference = transformers.BertModel.from_pretrained(model_name).eval()
    with torch.no_grad():
        expected = reference(**transformers.BertTokenizer.from_pretrained(model_name)(sentence, return_tensors="pt"))
    torch.testing.assert_close(cls_embedding, expected.last_hidden_state[:, 0, :], atol=1e-5, rtol=1e-5)


def run_seed_002_fine_tuning(library, model_name: str, classifier_state: dict, epochs: int):
    """The seed's loop, line for line, with `library` as the import source (dropout off so runs compare)."""
    BertTokenizer, BertForSequenceClassification = library.BertTokenizer, library.BertForSequenceClassification
    texts = ["This movie is fantastic!", "Terrible film, waste of time.", "Amazing plot and great acting.", "Boring and predictable."]
    labels = [1, 0, 1, 0]
    tokenizer = BertTokenizer.from_pretrained(model_name)
    model = BertForSequenceClassification.from_pretrained(
        model_name, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    model.classifier.load_state_dict(classifier_state)

    class SimpleDataset(Dataset):
        def __init__(self, texts, labels):
            self.encodings = tokenizer(texts, truncation=True, padding=True, return_tensors="pt")
            self.labels = labels

        def __getitem__(self, idx):
            item = {key: val[idx] for key, val in self.encodings.items()}
            item["labels"] = torch.tensor(self.labels[idx])
            return item

        def __len__(self):
            return len(self.labels)

    dataset = SimpleDataset(texts, labels)
    loader = DataLoader(dataset, batch_size=2)
    device = "cpu"
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)  # the seed's 1e-5, raised: 2 epochs, not 20
    model.train()
    losses = []
    for epoch in range(epochs):
        total_loss = 0
        for batch in loader:
            optimizer.zero_grad()
            inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
            labels_ = batch["labels"].to(device)
            outputs = model(**inputs, labels=labels_)
            loss = outputs.loss
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        losses.append(total_loss / len(loader))

    # inference, as the seed does it
    model.eval()
    sample_sentences = [
        "I am really disappointed with the result.",
        "The service was terrible and not worth the money.",
        "I don't like this product at all.",
    ]
    inputs = tokenizer(sample_sentences, truncation=True, padding=True, return_tensors="pt")
    inputs = {k: v.to(device) for k, v in inputs.items()}
    with torch.no_grad():
        outputs = model(**inputs)
        probs = torch.softmax(outputs.logits, dim=-1)
        pred = torch.argmax(probs, dim=-1).detach().numpy()
    return model, losses, probs, pred


def test_seed_002_fine_tuning_loop_matches_huggingface(model_name):
    import bertkit

    torch.manual_seed(0)  # the new classification head is random: start both libraries from the same one
    head = {"weight": torch.randn(2, 384) * 0.02, "bias": torch.zeros(2)}
    _, our_losses, our_probs, our_pred = run_seed_002_fine_tuning(bertkit, model_name, head, epochs=2)
    _, hf_losses, hf_probs, hf_pred = run_seed_002_fine_tuning(transformers, model_name, head, epochs=2)

    assert our_losses == pytest.approx(hf_losses, abs=2e-4)
    assert our_losses[-1] < our_losses[0]  # it learns
    torch.testing.assert_close(our_probs, hf_probs, atol=2e-4, rtol=1e-3)
    assert our_pred.tolist() == hf_pred.tolist()


def test_seed_003_static_vs_dynamic_python(model_name):
    """Two `python`s: one vocabulary id (a static table gives one vector), two different BERT vectors."""
    from bertkit import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(model_name)
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    vectors, ids = [], []
    for input_text in ["He got bit by Python", "Python is my favorite programming language"]:
        inputs = tokenizer(input_text, return_tensors="pt")
        tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
        position = tokens.index("python")
        with torch.no_grad():
            vectors.append(model(**inputs).last_hidden_state[0, position])
        ids.append(inputs["input_ids"][0, position].item())
    assert ids[0] == ids[1] == tokenizer.convert_tokens_to_ids("python")
    assert torch.nn.functional.cosine_similarity(vectors[0], vectors[1], dim=0).item() < 0.9

    reference = transformers.AutoModel.from_pretrained(model_name).eval()
    with torch.no_grad():
        expected = reference(**transformers.AutoTokenizer.from_pretrained(model_name)("He got bit by Python", return_tensors="pt"))
    torch.testing.assert_close(vectors[0], expected.last_hidden_state[0, 5], atol=1e-5, rtol=1e-5)


def test_seed_003_attention_snippet(model_name):
    from bertkit import AutoModel, AutoTokenizer

    input_text = "He got bit by Python"
    model = AutoModel.from_pretrained(model_name, output_attentions=True)
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    inputs = tokenizer.encode(input_text, return_tensors="pt")
    outputs = model(inputs)
    attention = outputs[-1]
    tokens = tokenizer.convert_ids_to_tokens(inputs[0])
    assert tokens == ["[CLS]", "he", "got", "bit", "by", "python", "[SEP]"]
    assert len(attention) == 6 and attention[0].shape == (1, 12, 7, 7)

    reference = transformers.AutoModel.from_pretrained(model_name, output_attentions=True).eval()
    expected = reference(torch.tensor([transformers.AutoTokenizer.from_pretrained(model_name).encode(input_text)]))[-1]
    for ours, theirs in zip(attention, expected):
        torch.testing.assert_close(ours.detach(), theirs.detach(), atol=1e-5, rtol=1e-5)


def test_seed_003_next_sentence_snippet(model_name, tmp_path):
    # a small random pretraining checkpoint with the seed's vocabulary (MiniLM has no trained NSP head)
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    transformers.BertForPreTraining(config).save_pretrained(tmp_path)
    transformers.BertTokenizer.from_pretrained(model_name).save_pretrained(tmp_path)

    from bertkit import BertForPreTraining, BertTokenizer

    tokenizer = BertTokenizer.from_pretrained(str(tmp_path))
    model = BertForPreTraining.from_pretrained(str(tmp_path))
    text = ("After Abraham Lincoln won the November 1860 presidential [MASK] on an "
            "anti-slavery platform, an initial seven slave states declared their "
            "secession from the country to form the Confederacy.")
    text2 = ("War broke out in April 1861 when secessionist forces [MASK] Fort "
             "Sumter in South Carolina, just over a month after Lincoln's "
             "inauguration.")
    inputs = tokenizer(text, text2, return_tensors="pt")
    # the seed's printed input_ids and segment ids
    assert inputs["input_ids"][0].tolist() == [
        101, 2044, 8181, 5367, 2180, 1996, 2281, 7313, 4883, 103, 2006, 2019, 3424, 1011, 8864, 4132, 1010, 2019,
        3988, 2698, 6658, 2163, 4161, 2037, 22965, 2013, 1996, 2406, 2000, 2433, 1996, 18179, 1012, 102, 2162,
        3631, 2041, 1999, 2258, 6863, 2043, 22965, 2923, 2749, 103, 3481, 7680, 3334, 1999, 2148, 3792, 1010,
        2074, 2058, 1037, 3204, 2044, 5367, 1005, 1055, 17331, 1012, 102,
    ]
    assert inputs["token_type_ids"][0].tolist() == [0] * 34 + [1] * 29
    model.eval()
    outputs = model(**inputs)
    assert list(outputs.keys()) == ["prediction_logits", "seq_relationship_logits"]
    reference = transformers.BertForPreTraining.from_pretrained(str(tmp_path)).eval()
    expected = reference(**transformers.BertTokenizer.from_pretrained(str(tmp_path))(text, text2, return_tensors="pt"))
    torch.testing.assert_close(outputs.seq_relationship_logits, expected.seq_relationship_logits, atol=1e-5, rtol=1e-5)
    assert torch.argmax(outputs.seq_relationship_logits).item() == torch.argmax(expected.seq_relationship_logits).item()
