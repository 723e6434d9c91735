"""Greedy longest-match-first WordPiece: a word becomes the longest vocabulary piece at its start, then the
longest `##` piece at each following position; a word with any position that no piece covers is `[UNK]`."""
from __future__ import annotations


class WordPiece:
    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]", prefix: str = "##",
                 max_input_chars_per_word: int = 100) -> None:
        if unk_token not in vocab:
            raise ValueError(f"the vocabulary has no unknown token {unk_token!r}: add it to vocab.txt "
                             "(BERT vocabularies put [UNK] near the top) or pass unk_token=")
        self.vocab = vocab
        self.unk_token = unk_token
        self.unk_id = vocab[unk_token]
        self.prefix = prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        # No piece is longer than this many characters, so the search never tries longer substrings.
        self.longest_piece = max((len(t) for t in vocab), default=1)

    def tokenize(self, word: str) -> list[tuple[int, int, int]]:
        """(id, start, end) per piece; start/end index the characters of `word`."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [(self.unk_id, 0, n)]
        vocab, prefix, longest = self.vocab, self.prefix, self.longest_piece
        pieces = []
        start = 0
        while start < n:
            end = min(n, start + longest)
            while end > start:
                piece = word[start:end] if start == 0 else prefix + word[start:end]
                token_id = vocab.get(piece)
                if token_id is not None:
                    break
                end -= 1
            else:  # nothing matched at `start`: the whole word is unknown
                return [(self.unk_id, 0, n)]
            pieces.append((token_id, start, end))
            start = end
        return pieces
