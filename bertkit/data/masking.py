"""Dynamic MLM masking (BERT's 80/10/10) and the pretraining collator.

    masker = Masker.from_tokenizer(tokenizer, mlm_probability=0.15, whole_word=True)
    collate = PretrainingCollator(masker, pad_token_id=tokenizer.pad_token_id)
    batch = collate(examples)   # dict of tensors: input_ids, attention_mask, token_type_ids, labels, (next_sentence_label)

As in Google's create_pretraining_data.py: of the maskable tokens of a sequence (never [CLS]/[SEP]/[PAD]
or any special token) exactly max(1, round(rate * n)) are chosen (optionally capped by
`max_predictions`); each chosen token becomes [MASK] with probability 0.8, a random ordinary vocabulary
token with 0.1, and stays itself with 0.1. Labels are the original ids at chosen positions and -100
everywhere else. With whole-word masking a word's `##` continuation pieces are chosen together with its
first piece.

Dynamic masking: the masks are drawn when a batch is built, so every epoch sees fresh masks. Each example
is masked with its own generator seeded by its `mask_seed` (the dataset sets it from seed, epoch and
example index): the masks then do not depend on batch composition, on the number of ranks, or on RNG
state, which is what makes a resumed run and a 2-process run reproduce a 1-process run exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from bertkit.errors import UserError


@dataclass
class Masker:
    """Chooses and corrupts MLM positions for one sequence of ids."""

    mask_token_id: int
    special_ids: Sequence[int]
    random_ids: np.ndarray  # ids a "random token" replacement is drawn from (ordinary vocabulary)
    is_continuation: np.ndarray | None = None  # bool per vocab id: a "##" piece (whole-word masking)
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    max_predictions: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.mlm_probability < 1.0:
            raise UserError(f"mlm_probability must be between 0 and 1 (BERT uses 0.15), got {self.mlm_probability}")
        if self.mask_replace_prob < 0 or self.random_replace_prob < 0 or self.mask_replace_prob + self.random_replace_prob > 1:
            raise UserError("mask_replace_prob and random_replace_prob must be >= 0 and sum to at most 1 (BERT: 0.8, 0.1)")
        self.random_ids = np.asarray(self.random_ids, dtype=np.int64)
        if len(self.random_ids) == 0:
            raise UserError("the vocabulary has no ordinary tokens to draw random replacements from")
        self._special = np.asarray(sorted(set(int(i) for i in self.special_ids)), dtype=np.int64)

    @property
    def whole_word(self) -> bool:
        return self.is_continuation is not None

    @classmethod
    def from_vocab(cls, vocab: Sequence[str] | dict[str, int], whole_word: bool = False, **kwargs: Any) -> "Masker":
        """From the token strings (id order) or a token->id dict; specials are the `[...]` tokens."""
        tokens = _id_to_token(vocab)
        special = [i for i, t in enumerate(tokens) if _is_bracketed(t)]
        if "[MASK]" not in tokens:
            raise UserError("the vocabulary has no [MASK] token; MLM needs one")
        # random replacements come from ordinary tokens, as [unused*]/[PAD] would be impossible inputs
        ordinary = [i for i, t in enumerate(tokens) if not _is_bracketed(t)]
        cont = np.array([t.startswith("##") for t in tokens], dtype=bool) if whole_word else None
        return cls(mask_token_id=tokens.index("[MASK]"), special_ids=special, random_ids=np.array(ordinary),
                   is_continuation=cont, **kwargs)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, whole_word: bool = False, **kwargs: Any) -> "Masker":
        masker = cls.from_vocab(tokenizer.vocab, whole_word=whole_word, **kwargs)
        masker.mask_token_id = int(tokenizer.mask_token_id)
        masker._special = np.union1d(masker._special, np.asarray(list(tokenizer.all_special_ids), dtype=np.int64))
        return masker

    def candidates(self, ids: np.ndarray) -> np.ndarray:
        """Positions that may be masked: every non-special token."""
        return np.flatnonzero(~np.isin(ids, self._special))

    def mask(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(corrupted ids, labels) for one sequence; `ids` is not modified."""
        ids = np.asarray(ids, dtype=np.int64)
        labels = np.full_like(ids, -100)
        cand = self.candidates(ids)
        if len(cand) == 0:
            return ids.copy(), labels
        n_target = max(1, int(round(len(cand) * self.mlm_probability)))
        if self.max_predictions is not None:
            n_target = min(n_target, self.max_predictions)
        chosen = self._choose(ids, cand, n_target, rng)
        labels[chosen] = ids[chosen]
        out = ids.copy()
        action = rng.random(len(chosen))
        to_mask = chosen[action < self.mask_replace_prob]
        to_random = chosen[(action >= self.mask_replace_prob) & (action < self.mask_replace_prob + self.random_replace_prob)]
        out[to_mask] = self.mask_token_id
        out[to_random] = self.random_ids[rng.integers(0, len(self.random_ids), len(to_random))]
        return out, labels

    def _choose(self, ids: np.ndarray, cand: np.ndarray, n_target: int, rng: np.random.Generator) -> np.ndarray:
        if not self.whole_word:
            return np.sort(rng.choice(cand, size=min(n_target, len(cand)), replace=False))
        # group candidate positions into words: a "##" piece joins the word before it (if contiguous)
        cont = self.is_continuation[np.clip(ids[cand], 0, len(self.is_continuation) - 1)]
        starts_word = ~cont | np.r_[True, np.diff(cand) != 1]
        word_of = np.cumsum(starts_word) - 1
        n_words = int(word_of[-1]) + 1
        bounds = np.r_[np.flatnonzero(starts_word), len(cand)]
        chosen: list[np.ndarray] = []
        count = 0
        # as Google's script: visit words in random order, skip a word that would overshoot the target
        for w in rng.permutation(n_words):
            if count >= n_target:
                break
            size = bounds[w + 1] - bounds[w]
            if count + size > n_target:
                continue
            chosen.append(cand[bounds[w]:bounds[w + 1]])
            count += size
        return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _id_to_token(vocab: Sequence[str] | dict[str, int]) -> list[str]:
    if isinstance(vocab, dict):
        tokens = [""] * (max(vocab.values()) + 1)
        for token, i in vocab.items():
            tokens[i] = token
        return tokens
    return list(vocab)


def _is_bracketed(token: str) -> bool:
    return len(token) > 2 and token.startswith("[") and token.endswith("]")


class PretrainingCollator:
    """Pads a list of examples and masks them: the batch a pretraining step consumes.

    Each example is a dict with `input_ids` (and optionally `token_type_ids`, `next_sentence_label`,
    `mask_seed`). Without `mask_seed` an example is masked from the collator's own generator (`seed`).
    Padding goes to the longest example (rounded up to `pad_to_multiple_of`, which helps tensor cores).
    """

    def __init__(self, masker: Masker, pad_token_id: int = 0, pad_to_multiple_of: int | None = None, seed: int = 0) -> None:
        self.masker = masker
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.rng = np.random.default_rng(seed)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise UserError("cannot collate an empty list of examples")
        length = max(len(e["input_ids"]) for e in examples)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        n = len(examples)
        input_ids = np.full((n, length), self.pad_token_id, dtype=np.int64)
        labels = np.full((n, length), -100, dtype=np.int64)
        attention = np.zeros((n, length), dtype=np.int64)
        types = np.zeros((n, length), dtype=np.int64)
        for row, example in enumerate(examples):
            ids = np.asarray(example["input_ids"], dtype=np.int64)
            seed = example.get("mask_seed")
            rng = np.random.default_rng(seed) if seed is not None else self.rng
            masked, lab = self.masker.mask(ids, rng)
            k = len(ids)
            input_ids[row, :k] = masked
            labels[row, :k] = lab
            attention[row, :k] = 1
            if "token_type_ids" in example:
                types[row, :k] = example["token_type_ids"]
        batch = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(attention),
            "token_type_ids": torch.from_numpy(types),
            "labels": torch.from_numpy(labels),
        }
        if "next_sentence_label" in examples[0]:
            batch["next_sentence_label"] = torch.tensor([int(e["next_sentence_label"]) for e in examples], dtype=torch.long)
        return batch
