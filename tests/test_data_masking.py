"""Dynamic MLM masking on real Wikipedia text: 15% chosen, 80/10/10, never specials/padding, whole words."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_data_corpus import make_wiki_corpus

from bertkit.data.corpus import TokenShards
from bertkit.data.masking import Masker, PretrainingCollator
from bertkit.data.pretraining import PretrainingDataset
from bertkit.tokenizer import BertTokenizer


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return BertTokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def examples(tmp_path_factory, shared_data, minilm_dir):
    folder = make_wiki_corpus(shared_data, minilm_dir, tmp_path_factory.mktemp("wiki"), documents=300, valid_fraction=0.0)
    dataset = PretrainingDataset(TokenShards(folder), max_seq_length=128, seed=0)
    return [dataset[i] for i in range(min(len(dataset), 1200))]


def batch_of(collate, examples, size=64):
    return [collate(examples[i:i + size]) for i in range(0, len(examples), size)]


def test_rates_80_10_10_on_real_text(tokenizer, examples):
    masker = Masker.from_tokenizer(tokenizer)
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    chosen = candidates = as_mask = as_random = unchanged = 0
    for example in examples:
        ids = np.asarray(example["input_ids"])
        masked, labels = masker.mask(ids, np.random.default_rng(example["mask_seed"]))
        is_chosen = labels != -100
        n_cand = int((~np.isin(ids, special.numpy())).sum())
        assert is_chosen.sum() == max(1, round(0.15 * n_cand))  # exactly 15% of the maskable tokens per sequence
        chosen += int(is_chosen.sum())
        candidates += n_cand
        assert np.array_equal(labels[is_chosen], ids[is_chosen])
        as_mask += int((masked[is_chosen] == tokenizer.mask_token_id).sum())
        same = masked[is_chosen] == ids[is_chosen]
        unchanged += int(same.sum())
        as_random += int(((masked[is_chosen] != tokenizer.mask_token_id) & ~same).sum())
        assert np.array_equal(masked[~is_chosen], ids[~is_chosen])  # nothing else touched
    assert chosen > 15_000
    assert abs(chosen / candidates - 0.15) < 0.003
    # binomial sd of these shares at n > 15k is < 0.0033; the tolerances are ~5 sd
    assert abs(as_mask / chosen - 0.8) < 0.015
    assert abs(as_random / chosen - 0.1) < 0.012
    assert abs(unchanged / chosen - 0.1) < 0.012


def test_never_specials_or_padding(tokenizer, examples):
    masker = Masker.from_tokenizer(tokenizer, mlm_probability=0.5)  # a high rate makes a slip likely to show
    collate = PretrainingCollator(masker, pad_token_id=tokenizer.pad_token_id)
    special = torch.tensor(sorted(tokenizer.all_special_ids))
    vocab = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
    for batch in batch_of(collate, examples[:512]):
        originals = batch["labels"].clone()
        chosen = batch["labels"] != -100
        assert not chosen[batch["attention_mask"] == 0].any()  # padding never chosen
        assert torch.all(batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id)
        assert not torch.isin(originals[chosen], special).any()  # a chosen token is never [CLS]/[SEP]/...
        # specials stay in place, and no random replacement is a special or [unusedN] token
        kept_special = torch.isin(batch["input_ids"], special) & (batch["attention_mask"] == 1)
        assert not (kept_special & chosen & (batch["input_ids"] != tokenizer.mask_token_id)).any()
        replaced = chosen & (batch["input_ids"] != tokenizer.mask_token_id)
        assert not any(vocab[i].startswith("[") for i in batch["input_ids"][replaced].tolist())
    assert batch["next_sentence_label"].dtype == torch.long and batch["labels"].shape == batch["input_ids"].shape


def test_whole_word_masking_keeps_words_together(tokenizer, examples):
    masker = Masker.from_tokenizer(tokenizer, whole_word=True)
    vocab = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
    chosen_total = candidates = split_words = 0
    for example in examples[:600]:
        ids = np.asarray(example["input_ids"])
        _, labels = masker.mask(ids, np.random.default_rng(example["mask_seed"]))
        chosen = labels != -100
        tokens = [vocab[i] for i in ids]
        # words: a piece and the "##" pieces after it (a segment cut mid-word starts with a lone "##" run)
        word, words = [], []
        for pos, tok in enumerate(tokens):
            if tok.startswith("##") and word and tokens[word[-1]] not in ("[CLS]", "[SEP]"):
                word.append(pos)
            else:
                if word:
                    words.append(word)
                word = [pos]
        words.append(word)
        for w in words:
            flags = chosen[w]
            assert flags.all() or not flags.any(), [tokens[p] for p in w]  # all pieces or none
            split_words += len(w) > 1 and flags.all()
        chosen_total += int(chosen.sum())
        candidates += int((~np.isin(ids, tokenizer.all_special_ids)).sum())
    assert split_words > 100  # multi-piece words were masked whole
    assert abs(chosen_total / candidates - 0.15) < 0.01  # the rate holds (words that overshoot are skipped)


def test_masks_are_dynamic_and_reproducible(tokenizer, examples):
    masker = Masker.from_tokenizer(tokenizer)
    ids = np.asarray(examples[0]["input_ids"])
    a = masker.mask(ids, np.random.default_rng((0, 0, 0)))[1]
    b = masker.mask(ids, np.random.default_rng((0, 0, 0)))[1]
    c = masker.mask(ids, np.random.default_rng((0, 1, 0)))[1]  # the same example in the next epoch
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # the collator masks an example the same wherever it sits in a batch (what DDP and resume rely on)
    collate = PretrainingCollator(masker, pad_token_id=0)
    alone = collate([examples[3]])
    together = collate([examples[5], examples[3]])
    n = len(examples[3]["input_ids"])
    assert torch.equal(alone["labels"][0, :n], together["labels"][1, :n])


def test_toy_vocabulary_and_errors():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "sat"]
    masker = Masker.from_vocab(vocab, whole_word=True, mlm_probability=0.5)
    assert masker.mask_token_id == 4 and set(masker.random_ids.tolist()) == {5, 6, 7, 8}
    ids = np.array([2, 5, 6, 7, 8, 3, 0, 0])
    for seed in range(20):
        _, labels = masker.mask(ids, np.random.default_rng(seed))
        assert (labels[2] == -100) == (labels[3] == -100)  # "cat ##s" together
        assert np.all(labels[[0, 5, 6, 7]] == -100)
    with pytest.raises(ValueError, match="mlm_probability"):
        Masker.from_vocab(vocab, mlm_probability=1.5)
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        Masker.from_vocab(["[PAD]", "a"])
    with pytest.raises(ValueError, match="empty"):
        PretrainingCollator(masker)([])
