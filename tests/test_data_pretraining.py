"""Pretraining examples on real Wikipedia text: NSP 50/50, segment boundaries, truncation, full sentences, sharding."""
from __future__ import annotations

import numpy as np
import pytest
from test_data_corpus import make_wiki_corpus

from bertkit.data.corpus import TokenShards
from bertkit.data.pretraining import (
    IS_NEXT,
    NOT_NEXT,
    PretrainingDataset,
    PretrainingSampler,
    build_full_sentence_index,
    build_pair_index,
)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, shared_data, minilm_dir) -> TokenShards:
    folder = make_wiki_corpus(shared_data, minilm_dir, tmp_path_factory.mktemp("wiki"), documents=600, valid_fraction=0.0)
    return TokenShards(folder, "train")


def locate(shards: TokenShards, shard: int, token: int) -> tuple[int, int]:
    """(document, sentence) holding a token position."""
    s = shards.shards[shard]
    sentence = int(np.searchsorted(s.sentence_offsets, token, side="right")) - 1
    document = int(np.searchsorted(s.document_offsets, sentence, side="right")) - 1
    return document, sentence


def test_nsp_labels_are_half_and_half(shards):
    fractions = [float(np.mean(build_pair_index(shards, 128, seed=seed)[:, 6] == NOT_NEXT)) for seed in range(3)]
    n = len(build_pair_index(shards, 128, seed=0))
    assert n > 2000
    for f in fractions:  # binomial sd ~ 0.01 at this n
        assert abs(f - 0.5) < 0.035, fractions


def test_segment_boundaries(shards):
    index = build_pair_index(shards, 128, short_seq_prob=0.1, seed=1)
    sentence_starts = {(i, int(x)) for i, s in enumerate(shards.shards) for x in s.sentence_offsets}
    untruncated_next = 0
    for a_shard, a0, a1, b_shard, b0, b1, label in index:
        assert (a1 - a0) + (b1 - b0) <= 125 and a1 > a0 and b1 > b0
        a_doc, _ = locate(shards, a_shard, a0)
        assert locate(shards, a_shard, a1 - 1)[0] == a_doc  # A lies in one document
        b_doc, _ = locate(shards, b_shard, b0)
        assert locate(shards, b_shard, b1 - 1)[0] == b_doc  # so does B
        if label == IS_NEXT:
            assert b_shard == a_shard and b_doc == a_doc and b0 >= a1  # B follows A in the same document
            if (a1 - a0) + (b1 - b0) < 125:  # never trimmed: A and B are whole sentences, B right after A
                assert {(a_shard, a0), (a_shard, a1), (a_shard, b1)} <= sentence_starts and b0 == a1
                untruncated_next += 1
        else:
            assert (b_shard, b_doc) != (a_shard, a_doc)  # a different document
    assert untruncated_next > 100


def test_pairs_fill_the_length_and_truncate_from_both_ends(shards):
    long = build_pair_index(shards, 64, short_seq_prob=0.0, seed=2)
    lengths = (long[:, 2] - long[:, 1]) + (long[:, 5] - long[:, 4])
    assert lengths.max() == 61 and np.mean(lengths == 61) > 0.5  # most pairs fill max_seq_length - 3
    short = build_pair_index(shards, 64, short_seq_prob=1.0, seed=2)
    short_lengths = (short[:, 2] - short[:, 1]) + (short[:, 5] - short[:, 4])
    # short_seq_prob draws a shorter target length per document: fewer pairs reach the maximum
    assert short_lengths.mean() < 0.9 * lengths.mean() and np.mean(short_lengths == 61) < 0.6 * np.mean(lengths == 61)
    # trimmed at the front (A does not start on a sentence boundary) and at the back both happen
    starts = {(i, int(x)) for i, s in enumerate(shards.shards) for x in s.sentence_offsets}
    ends = starts
    front = sum((int(r[0]), int(r[1])) not in starts for r in long)
    back = sum((int(r[0]), int(r[2])) not in ends for r in long)
    assert front > 20 and back > 20 and abs(front - back) < 0.5 * (front + back)


def test_dataset_items_and_epochs(shards):
    dataset = PretrainingDataset(shards, max_seq_length=128, seed=3)
    cls, sep = shards.special_ids["cls"], shards.special_ids["sep"]
    for i in range(0, len(dataset), 97):
        item = dataset[i]
        ids, types = item["input_ids"], item["token_type_ids"]
        assert len(ids) <= 128 and ids[0] == cls and ids[-1] == sep
        seps = np.flatnonzero(ids == sep)
        assert len(seps) == 2  # [CLS] A [SEP] B [SEP]
        assert np.all(types[: seps[0] + 1] == 0) and np.all(types[seps[0] + 1:] == 1)
        assert item["next_sentence_label"] in (IS_NEXT, NOT_NEXT)
        assert item["mask_seed"] == (3, 0, i)
    first = dataset.index.copy()
    dataset.set_epoch(1)
    assert not np.array_equal(first[: len(dataset.index)], dataset.index[: len(first)])  # fresh pairs each epoch
    dataset.set_epoch(0)
    assert np.array_equal(first, dataset.index)  # deterministic from (seed, epoch)


def test_full_sentences_pack_across_documents(shards):
    index = build_full_sentence_index(shards, 128)
    dataset = PretrainingDataset(shards, max_seq_length=128, mode="full")
    sep = shards.special_ids["sep"]
    # every token of the corpus is used once, in order
    covered = sum(int(r[2] - r[1]) for r in index)
    assert covered == shards.num_tokens
    crossings = 0
    for i, (shard, start, end) in enumerate(index):
        item = dataset[i]
        assert "next_sentence_label" not in item and len(item["input_ids"]) <= 128
        doc_starts = shards.shards[shard].sentence_offsets[shards.shards[shard].document_offsets[:-1]]
        inside = int(np.sum((doc_starts > start) & (doc_starts < end)))
        assert int(np.sum(item["input_ids"] == sep)) == 1 + inside  # a [SEP] between documents
        crossings += inside
    assert crossings > 50
    assert np.mean([len(dataset[i]["input_ids"]) for i in range(len(dataset))]) > 110  # packed full


def test_sampler_shards_ranks_like_one_big_batch(shards):
    dataset = PretrainingDataset(shards, max_seq_length=128, seed=0)
    one = PretrainingSampler(dataset, 0, 1, seed=5)
    ranks = [PretrainingSampler(dataset, r, 2, seed=5) for r in range(2)]
    order = list(one)
    parts = [list(s) for s in ranks]
    assert len(parts[0]) == len(parts[1]) == len(dataset) // 2
    assert not set(parts[0]) & set(parts[1])
    for k in range(0, 200, 8):  # global batch of 16 = 8 per rank
        assert set(parts[0][k:k + 8]) | set(parts[1][k:k + 8]) == set(order[2 * k:2 * k + 16])
    ranks[0].set_epoch(0, start=10)
    assert list(ranks[0]) == parts[0][10:]  # resume mid-epoch
    ranks[0].set_epoch(1)
    assert list(ranks[0]) != parts[0]
    with pytest.raises(ValueError, match="rank"):
        PretrainingSampler(dataset, 2, 2)


def test_errors(shards, tmp_path):
    with pytest.raises(ValueError, match="mode"):
        PretrainingDataset(shards, mode="nsp-only")
    with pytest.raises(ValueError, match="max_seq_length"):
        build_pair_index(shards, 4)
