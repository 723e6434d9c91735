"""Greedy longest-match-first WordPiece: a word becomes the longest vocabulary piece at its start, then the
longest `##` piece at each following position; a word with any position that no piece covers is `[UNK]`."""
from __future__ import annotations

from bertkit.errors import UserError


class WordPiece:
    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]", prefix: str = "##",
                 max_input_chars_per_word: int = 100) -> None:
        if unk_token not in vocab:
            raise UserError(f"the vocabulary has no unknown token {unk_token!r}: add it to vocab.txt "
                             "(BERT vocabularies put [UNK] near the top) or pass unk_token=")
        self.vocab = vocab
        self.unk_token = unk_token
        self.unk_id = vocab[unk_token]
        self.prefix = prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        # Continuation pieces without their "##", so the search slices the word and never concatenates.
        self.continuations = {t[len(prefix):]: i for t, i in vocab.items() if t.startswith(prefix) and t != prefix}
        # The longest piece that starts with a given character: the search never tries longer substrings
        # (for Hangul jamo or rare scripts this is 1, which saves most of the failed lookups).
        self.longest_initial = _longest_by_first_char(vocab)
        self.longest_continuation = _longest_by_first_char(self.continuations)
        # Characters that start no piece longer than themselves: a word made only of them (Hangul jamo with an
        # English vocabulary, say) splits one character per piece, which a dict lookup per character does.
        self.single_chars = frozenset(
            c for c in {**self.longest_initial, **self.longest_continuation}
            if self.longest_initial.get(c, 0) <= 1 and self.longest_continuation.get(c, 0) <= 1)

    def split(self, word: str) -> tuple[list[int], list[int] | None]:
        """Greedy longest match: the piece ids and where each piece ends ([UNK] for the whole word if stuck);
        ends is None when every piece is one character."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [self.unk_id], [n]
        whole = self.vocab.get(word)
        if whole is not None:  # the common case: the word is one piece
            return [whole], [n]
        if self.single_chars.issuperset(word):
            ids = [self.vocab.get(word[0]), *map(self.continuations.get, word[1:])]
            return ([self.unk_id], [n]) if None in ids else (ids, None)
        ids, ends = [], []
        table, longest = self.vocab, self.longest_initial
        start = 0
        while start < n:
            end = start + longest.get(word[start], 0)
            if end > n:
                end = n
            while end > start:
                token_id = table.get(word[start:end])
                if token_id is not None:
                    break
                end -= 1
            else:  # nothing matched at `start`: the whole word is unknown
                return [self.unk_id], [n]
            ids.append(token_id)
            ends.append(end)
            start = end
            table, longest = self.continuations, self.longest_continuation
        return ids, ends

    def tokenize(self, word: str) -> list[tuple[int, int, int]]:
        """(id, start, end) per piece; start/end index the characters of `word`."""
        ids, ends = self.split(word)
        if ends is None:
            ends = list(range(1, len(word) + 1))
        return list(zip(ids, [0, *ends[:-1]], ends))

    def ids(self, word: str) -> tuple[int, ...]:
        return tuple(self.split(word)[0])


def _longest_by_first_char(pieces: dict[str, int]) -> dict[str, int]:
    longest: dict[str, int] = {}
    for piece in pieces:
        if piece and len(piece) > longest.get(piece[0], 0):
            longest[piece[0]] = len(piece)
    return longest
