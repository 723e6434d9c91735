"""Pretraining examples from token shards: BERT's sentence pairs (MLM + NSP) or RoBERTa's full sentences.

    shards = TokenShards("data/shards", "train")
    dataset = PretrainingDataset(shards, max_seq_length=128, mode="pairs", seed=0)
    sampler = PretrainingSampler(dataset, rank=0, world_size=1, seed=0)
    dataset.set_epoch(epoch); sampler.set_epoch(epoch)     # fresh pairs, order and masks each epoch

Sentence pairs follow Google's create_pretraining_data.py (`create_instances_from_document`): sentences of a
document are gathered until they fill a target length (max_seq_length - 3, or with probability
`short_seq_prob` a random shorter one), split at a random sentence boundary into A and B; B is kept (the
true continuation, NSP label 0 = IsNext, HuggingFace's convention) or, half of the time, replaced by a run
of sentences from a random other document (label 1 = NotNext), the unused sentences being put back. The
pair is then trimmed one token at a time from a random end of the longer segment.

One deliberate difference: Google's script makes every single-sentence chunk a random-next pair, which
skews NSP towards NotNext (56% on Wikipedia); here a one-sentence chunk that is to be IsNext takes the
document's next sentence as B, and a lone last sentence of a document is not used as A (it still serves
as a random B), so every label is a fair coin: 50/50.

Full sentences (RoBERTa's FULL-SENTENCES, no NSP): consecutive sentences are packed up to
max_seq_length - 2, crossing document boundaries with an extra [SEP] between documents.

Every example is described by token ranges into the memory-mapped shards (a small int64 table built per
epoch from (seed, epoch)), so nothing is materialised until a batch asks for it.
"""
from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
import torch

from bertkit.data.corpus import TokenShards
from bertkit.errors import UserError

MODES = ("pairs", "full")
IS_NEXT, NOT_NEXT = 0, 1  # HuggingFace's next_sentence_label convention


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: random.Random) -> tuple[list[int], list[int]]:
    """Trim [a_start, a_end) and [b_start, b_end) ranges (as 2-lists) until they fit; from a random end of the longer."""
    while (a[1] - a[0]) + (b[1] - b[0]) > max_tokens:
        longer = a if (a[1] - a[0]) > (b[1] - b[0]) else b
        if rng.random() < 0.5:
            longer[0] += 1  # drop from the front
        else:
            longer[1] -= 1  # drop from the back
    return a, b


def _random_b(shards: TokenShards, docs: list[tuple[int, int]], doc_index: int, target_b: int,
              rng: random.Random) -> tuple[int, list[int]]:
    """A NotNext segment B: (shard, [start, end)) of consecutive sentences from a random other document,
    from a random sentence on until `target_b` tokens (or the document's end)."""
    for _ in range(10):
        other = rng.randint(0, len(docs) - 1)
        if other != doc_index:
            break
    if other == doc_index:
        other = (doc_index + 1) % len(docs)
    shard_index, doc = docs[other]
    shard = shards.shards[shard_index]
    first, last = int(shard.document_offsets[doc]), int(shard.document_offsets[doc + 1])
    start = rng.randint(first, last - 1)
    b = [int(shard.sentence_offsets[start]), int(shard.sentence_offsets[start])]
    for j in range(start, last):
        b[1] = int(shard.sentence_offsets[j + 1])
        if b[1] - b[0] >= target_b:
            break
    return shard_index, b


def build_pair_index(
    shards: TokenShards, max_seq_length: int, short_seq_prob: float = 0.1, nsp_probability: float = 0.5, seed: int = 0
) -> np.ndarray:
    """The sentence-pair examples of one epoch: int64 rows (a_shard, a_start, a_end, b_shard, b_start, b_end, label)."""
    if max_seq_length < 8:
        raise UserError(f"max_seq_length must be at least 8 to hold a sentence pair, got {max_seq_length}")
    rng = random.Random(seed)
    max_tokens = max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    docs = [(s, d) for s, shard in enumerate(shards.shards) for d in range(shard.num_documents)]
    if len(docs) < 2:
        raise UserError("sentence pairs with NSP need at least 2 documents in the corpus; use mode='full' or add text")
    rows: list[tuple[int, ...]] = []
    for doc_index, (s, d) in enumerate(docs):
        shard = shards.shards[s]
        first, last = int(shard.document_offsets[d]), int(shard.document_offsets[d + 1])
        offs = shard.sentence_offsets  # sentence i of the doc: tokens[offs[first+i]:offs[first+i+1]]
        n_sent = last - first
        target = max_tokens
        if rng.random() < short_seq_prob:
            target = rng.randint(2, max_tokens)
        chunk: list[int] = []  # sentence indices (absolute) in the current chunk
        length = 0
        i = 0
        while i < n_sent:
            sent = first + i
            chunk.append(sent)
            length += int(offs[sent + 1] - offs[sent])
            if i == n_sent - 1 or length >= target:
                if len(chunk) == 1 and i == n_sent - 1:
                    # a lone last sentence could only be NotNext: leave it out as A (it still serves as a
                    # random B) so that every label below is an unconstrained coin flip
                    break
                random_next = rng.random() >= nsp_probability
                if len(chunk) == 1 and not random_next:  # pull the next sentence in to have a true B
                    i += 1
                    chunk.append(first + i)
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                a = [int(offs[chunk[0]]), int(offs[chunk[a_end - 1] + 1])]
                if random_next:
                    b_shard, b = _random_b(shards, docs, doc_index, max(1, target - (a[1] - a[0])), rng)
                    i -= len(chunk) - a_end  # the unused sentences go back for the next chunk
                    label = NOT_NEXT
                else:
                    b_shard = s
                    b = [int(offs[chunk[a_end]]), int(offs[chunk[-1] + 1])]
                    label = IS_NEXT
                a, b = _truncate_pair(a, b, max_tokens, rng)
                if a[1] > a[0] and b[1] > b[0]:
                    rows.append((s, a[0], a[1], b_shard, b[0], b[1], label))
                chunk, length = [], 0
            i += 1
    return np.asarray(rows, dtype=np.int64).reshape(-1, 7)


def build_full_sentence_index(shards: TokenShards, max_seq_length: int) -> np.ndarray:
    """RoBERTa FULL-SENTENCES: int64 rows (shard, start, end) of consecutive sentences packed to fit
    max_seq_length - 2 tokens plus one [SEP] per document boundary crossed. A sentence longer than the
    budget is cut into pieces."""
    budget = max_seq_length - 2  # [CLS] ... [SEP]
    if budget < 2:
        raise UserError(f"max_seq_length must be at least 4, got {max_seq_length}")
    rows: list[tuple[int, int, int]] = []
    for s, shard in enumerate(shards.shards):
        offs = shard.sentence_offsets
        doc_first_sentence = set(int(x) for x in shard.document_offsets[1:-1])
        start, used = None, 0
        for sent in range(len(offs) - 1):
            lo, hi = int(offs[sent]), int(offs[sent + 1])
            extra = 1 if (sent in doc_first_sentence and start is not None) else 0  # [SEP] between documents
            if start is not None and used + extra + (hi - lo) > budget:
                rows.append((s, start, lo))
                start, used, extra = None, 0, 0
            while hi - lo > budget:  # an over-long sentence on its own
                rows.append((s, lo, lo + budget))
                lo += budget
            if start is None:
                start = lo
            used += extra + (hi - lo)
        if start is not None and used:
            rows.append((s, start, int(offs[-1])))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


class PretrainingDataset(torch.utils.data.Dataset):
    """Examples for one epoch; call `set_epoch(e)` to draw that epoch's pairs (deterministic from seed and e).

    Items are dicts: `input_ids`, `token_type_ids` (numpy int64), `next_sentence_label` (pairs mode) and
    `mask_seed`, which `bertkit.data.masking.PretrainingCollator` uses to mask each example the same way
    whatever batch or rank it lands in.
    """

    def __init__(
        self,
        shards: TokenShards,
        max_seq_length: int = 128,
        mode: str = "pairs",
        short_seq_prob: float = 0.1,
        nsp_probability: float = 0.5,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise UserError(f"unknown example mode {mode!r}; choose 'pairs' (BERT, MLM+NSP) or 'full' (RoBERTa, MLM only)")
        if len(shards) == 0 or shards.num_tokens == 0:
            raise UserError(f"the {shards.split!r} split of {shards.folder} is empty; prepare more text or lower --valid-fraction")
        self.shards = shards
        self.max_seq_length = max_seq_length
        self.mode = mode
        self.short_seq_prob = short_seq_prob
        self.nsp_probability = nsp_probability
        self.seed = seed
        ids = shards.special_ids
        self.cls_id, self.sep_id = ids["cls"], ids["sep"]
        self._doc_starts = [shard.sentence_offsets[shard.document_offsets[:-1]] for shard in shards.shards]
        self.epoch = -1
        self.index = np.zeros((0, 7), dtype=np.int64)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        if epoch == self.epoch:
            return
        self.epoch = epoch
        if self.mode == "pairs":
            self.index = build_pair_index(self.shards, self.max_seq_length, self.short_seq_prob, self.nsp_probability,
                                          seed=self.seed * 1_000_003 + epoch)
        elif self.epoch == 0 or len(self.index) == 0:  # full-sentence chunks do not change between epochs
            self.index = build_full_sentence_index(self.shards, self.max_seq_length)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.index[i]
        if self.mode == "pairs":
            a_shard, a0, a1, b_shard, b0, b1, label = (int(x) for x in row)
            a = self.shards.shards[a_shard].tokens[a0:a1]
            b = self.shards.shards[b_shard].tokens[b0:b1]
            ids = np.concatenate([[self.cls_id], a, [self.sep_id], b, [self.sep_id]]).astype(np.int64)
            types = np.zeros(len(ids), dtype=np.int64)
            types[len(a) + 2:] = 1
            item = {"input_ids": ids, "token_type_ids": types, "next_sentence_label": label}
        else:
            shard, start, end = (int(x) for x in row)
            tokens = self.shards.shards[shard].tokens[start:end].astype(np.int64)
            # insert [SEP] before every document start inside the chunk (not at its very beginning)
            starts = self._doc_starts[shard]
            inner = starts[(starts > start) & (starts < end)] - start
            body = np.insert(tokens, inner, self.sep_id) if len(inner) else tokens
            ids = np.concatenate([[self.cls_id], body, [self.sep_id]]).astype(np.int64)
            item = {"input_ids": ids, "token_type_ids": np.zeros(len(ids), dtype=np.int64)}
        item["mask_seed"] = (self.seed, self.epoch, int(i))
        return item


class PretrainingSampler(torch.utils.data.Sampler):
    """Shuffled example order for one rank; every rank sees a disjoint, equal-sized part of each epoch.

    Rank r takes positions r, r + W, r + 2W, ... of the epoch's permutation, so the first global batch of W
    ranks holds exactly the examples a single process would put in its first batch of W times the size:
    a 2-rank run reproduces a 1-rank run with the same global batch. `start` skips examples (resume).
    """

    def __init__(self, dataset: PretrainingDataset, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True) -> None:
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is outside world size {world_size}")
        self.dataset, self.rank, self.world_size = dataset, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Order of `epoch`, beginning at this rank's `start`-th example (resume)."""
        self.epoch, self.start = epoch, start

    def _order(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        else:
            order = np.arange(n)
        per_rank = n // self.world_size  # drop the tail so every rank takes the same number of steps
        return order[: per_rank * self.world_size][self.rank::self.world_size]

    def __len__(self) -> int:
        return max(0, len(self.dataset) // self.world_size - self.start)

    def __iter__(self) -> Iterator[int]:
        yield from (int(i) for i in self._order()[self.start:])
