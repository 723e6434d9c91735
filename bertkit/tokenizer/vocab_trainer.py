"""Train a WordPiece vocabulary: the likelihood-score algorithm of seed 003, made fast.

The algorithm (Schuster & Nakajima 2012, as the HuggingFace course and seed 003 teach it):

1. Split the corpus into words with BERT's pre-tokenizer and count them.
2. Spell every word as characters: the first plain, the rest with the `##` continuation prefix
   (`word` -> `w ##o ##r ##d`). The vocabulary starts as the special tokens, then this alphabet, sorted.
3. Score every adjacent pair of symbols by `freq(pair) / (freq(first) * freq(second))`, merge the best
   pair everywhere, add the merged symbol to the vocabulary, and repeat until `vocab_size`.
   Ties go to the pair seen first when scanning the words in corpus order, as in the seed's loop.

The seed's loop recounts every pair after every merge (quadratic). Here a merge only re-spells the words
that contain the merged pair and updates the counts of the pairs it touches; the best pair comes from
a heap with lazy invalidation (a popped entry is checked against the pair's current score, and re-pushed
if stale). Because a merge lowers freq(first) and freq(second), it *raises* the score of every other
pair containing those symbols; those pairs are re-pushed, all others keep a valid entry.

By default the merges go coarse to fine (see `learn_vocab`): the same score, but only among pairs counted
at least a floor that halves whenever nothing is left above it. The seed's loop as printed favours rare
pairs and spends the vocabulary on spelling out rare words; `coarse_to_fine=False` runs it exactly.
"""
from __future__ import annotations

import heapq
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from bertkit.errors import MissingFileError, UserError
from bertkit.files import OPENERS, check_text_file, open_binary
from bertkit.tokenizer.normalize import CHUNK_PATTERN, SPLIT_UNSAFE, BertPreTokenizer

if TYPE_CHECKING:
    from bertkit.tokenizer.tokenizer import BertTokenizer

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CONTINUATION = "##"
# BERT encodes a word longer than this as [UNK], so such words teach the vocabulary nothing.
MAX_WORD_CHARS = 100
# A pair of symbol ids packed in one int: faster dict keys than tuples.
_SHIFT = 32
_MASK = (1 << _SHIFT) - 1


# ---------------------------------------------------------------------------------------------
# 1. Counting words
# ---------------------------------------------------------------------------------------------

# Compressed training files are read through these, by suffix.


def _expand_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; a folder stands for every file under it (sorted, hidden files skipped)."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise MissingFileError(f"training file {str(path)!r} does not exist; pass existing text files or folders "
                                    "(to train on strings, pass a list of them)")
    if not files:
        raise MissingFileError(f"no training files found in {[str(p) for p in paths]}")
    for file in files:  # a binary file would train a vocabulary of byte garbage: refuse it, by name
        check_text_file(file, "training file", strict=False)
    return files


def _iter_file_lines(files: list[Path], show_progress: bool) -> Iterator[str]:
    """The lines of the files (UTF-8, bad bytes replaced), with a progress bar in bytes."""
    total = sum(f.stat().st_size for f in files)
    with tqdm(total=total, unit="B", unit_scale=True, desc="reading", disable=not show_progress) as bar:
        for file in files:
            compressed = file.suffix.lower() in OPENERS
            with open_binary(file) as handle:
                for raw in handle:  # a UTF-8 character never spans a newline, so lines decode on their own
                    yield raw.decode("utf-8", errors="replace")
                    if not compressed:
                        bar.update(len(raw))
            if compressed:  # compressed: the bar counts file bytes, so advance it per file
                bar.update(file.stat().st_size)


def _resolve_corpus(corpus: Any, show_progress: bool) -> tuple[Iterator[str], bool]:
    """(the texts, whether they come from files): a path (str or Path), or a list of Paths or of names of
    existing files -> their lines; any other iterable of str -> the texts themselves."""
    if isinstance(corpus, (str, os.PathLike)):
        return _iter_file_lines(_expand_files([corpus]), show_progress), True
    if not isinstance(corpus, Iterable):
        raise UserError(f"corpus must be a file path, a list of Paths, or an iterable of texts; got {type(corpus).__name__}")
    if isinstance(corpus, (list, tuple)) and corpus and all(
        isinstance(item, os.PathLike) or (isinstance(item, str) and "\n" not in item and os.path.isfile(item))
        for item in corpus
    ):  # Paths, or strings that all name existing files (checking stops at the first text that does not)
        return _iter_file_lines(_expand_files(corpus), show_progress), True
    return _check_texts(corpus), False


def _check_texts(texts: Iterable[Any]) -> Iterator[str]:
    for text in texts:
        if not isinstance(text, str):
            raise UserError(
                f"training texts must be str, got {type(text).__name__}; pass file paths as pathlib.Path objects"
            )
        yield text


def count_words(texts: Iterable[str], pre_tokenizer: BertPreTokenizer, show_progress: bool = False) -> Counter[str]:
    """Count the pre-tokenized words of `texts`, in order of first appearance.

    Pre-tokenization never crosses whitespace, so the texts are first cut into whitespace-free chunks
    (which repeat a lot) and each distinct chunk is pre-tokenized once; the counts and their
    first-appearance order are the same as pre-tokenizing every text.
    """
    chunks: Counter[str] = Counter()
    for text in tqdm(texts, desc="counting", unit=" lines", disable=not show_progress, mininterval=1.0):
        # str.split() agrees with the pre-tokenizer's whitespace unless one of a few control chars is present
        chunks.update(CHUNK_PATTERN.findall(text) if SPLIT_UNSAFE.search(text) else text.split())
    words: Counter[str] = Counter()
    for chunk, count in chunks.items():
        for word, _start, _end in pre_tokenizer.pre_tokenize(chunk):
            words[word] += count
    return words


# ---------------------------------------------------------------------------------------------
# 2. Learning the vocabulary from word counts
# ---------------------------------------------------------------------------------------------

def _select_alphabet(word_counts: Mapping[str, int], limit_alphabet: int | None) -> set[str] | None:
    """The characters kept when the alphabet is limited (most frequent first), or None for all."""
    if limit_alphabet is None:
        return None
    if limit_alphabet < 1:
        raise UserError(f"limit_alphabet must be a positive number of characters or None, got {limit_alphabet}")
    char_counts: Counter[str] = Counter()
    for word, count in word_counts.items():
        for char in word:
            char_counts[char] += count
    ranked = sorted(char_counts.items(), key=lambda item: (-item[1], item[0]))
    return {char for char, _ in ranked[:limit_alphabet]}


class _PairStats:
    """Words spelled as symbol ids, with the pair and symbol counts that the scores need."""

    def __init__(self, words: list[str], freqs: list[int]) -> None:
        self.min_count = 1  # pairs counted fewer times are not merged (set_min_count changes it)
        self.symbols: list[str] = []
        self.symbol_ids: dict[str, int] = {}
        self.symbol_chars: list[int] = []  # characters a symbol covers (without "##"): orders pairs in a word
        self.symbol_freq: list[int] = []
        self.freqs = freqs
        self.splits: list[list[int]] = []
        self.pair_count: dict[int, int] = {}
        self.pair_words: dict[int, set[int]] = {}
        self.pair_first: dict[int, int] = {}  # first word holding the pair; missing = recompute lazily
        self.pairs_with: dict[int, set[int]] = {}  # symbol -> the eligible pairs it is part of
        for index, (word, freq) in enumerate(zip(words, freqs)):
            split = [self.symbol(word[0])] + [self.symbol(CONTINUATION + char) for char in word[1:]]
            self.splits.append(split)
            for symbol in split:
                self.symbol_freq[symbol] += freq
            for pair in self._pairs(split):
                if pair not in self.pair_count:
                    self._new_pair(pair, index)
                self.pair_count[pair] += freq
                self.pair_words[pair].add(index)
        self.set_min_count(1)

    def set_min_count(self, min_count: int) -> None:
        """Make only pairs counted at least `min_count` times eligible for merging."""
        self.min_count = max(min_count, 1)
        for pairs in self.pairs_with.values():
            pairs.clear()
        for pair, count in self.pair_count.items():
            if count >= self.min_count:
                self._mark_eligible(pair, True)

    def symbol(self, text: str) -> int:
        found = self.symbol_ids.get(text)
        if found is None:
            found = self.symbol_ids[text] = len(self.symbols)
            self.symbols.append(text)
            self.symbol_chars.append(len(text) - len(CONTINUATION) if text.startswith(CONTINUATION) else len(text))
            self.symbol_freq.append(0)
            self.pairs_with[found] = set()
        return found

    @staticmethod
    def _pairs(split: list[int]) -> list[int]:
        return [(first << _SHIFT) | second for first, second in zip(split, split[1:])]

    def _new_pair(self, pair: int, word: int) -> None:
        self.pair_count[pair] = 0
        self.pair_words[pair] = set()
        self.pair_first[pair] = word

    def _mark_eligible(self, pair: int, eligible: bool) -> None:
        for symbol in (pair >> _SHIFT, pair & _MASK):
            if eligible:
                self.pairs_with[symbol].add(pair)
            else:
                self.pairs_with[symbol].discard(pair)

    def _add_count(self, pair: int, delta: int) -> None:
        before = self.pair_count[pair]
        after = self.pair_count[pair] = before + delta
        if (before >= self.min_count) != (after >= self.min_count):
            self._mark_eligible(pair, after >= self.min_count)

    def merged_text(self, pair: int) -> str:
        first, second = self.symbols[pair >> _SHIFT], self.symbols[pair & _MASK]
        return first + (second[len(CONTINUATION):] if second.startswith(CONTINUATION) else second)

    def priority(self, pair: int) -> tuple[float, int, int] | None:
        """Heap key (smaller is better): (-score, first word, character offset in that word); None if ineligible."""
        count = self.pair_count.get(pair, 0)
        if count < self.min_count:
            return None
        first, second = pair >> _SHIFT, pair & _MASK
        score = count / (self.symbol_freq[first] * self.symbol_freq[second])
        word = self.pair_first.get(pair)
        if word is None:
            word = self.pair_first[pair] = min(self.pair_words[pair])
        split = self.splits[word]
        offset = 0
        for i in range(len(split) - 1):
            if split[i] == first and split[i + 1] == second:
                break
            offset += self.symbol_chars[split[i]]
        return (-score, word, offset)

    def merge(self, pair: int) -> tuple[int, set[int]]:
        """Merge `pair` in every word holding it; returns the new symbol and the pairs whose priority rose."""
        first, second = pair >> _SHIFT, pair & _MASK
        merged = self.symbol(self.merged_text(pair))
        risen: set[int] = set()
        for index in list(self.pair_words[pair]):
            old = self.splits[index]
            new: list[int] = []
            start, last, merges = 0, len(old) - 1, 0
            while True:  # left to right, as the seed's merge_pair; list.index finds candidates in C
                try:
                    at = old.index(first, start, last)
                except ValueError:
                    break
                if old[at + 1] == second:
                    new += old[start:at]
                    new.append(merged)
                    start = at + 2
                    merges += 1
                else:
                    new += old[start:at + 1]
                    start = at + 1
            new += old[start:]
            self.splits[index] = new
            freq = self.freqs[index]
            self.symbol_freq[first] -= merges * freq
            self.symbol_freq[second] -= merges * freq
            self.symbol_freq[merged] += merges * freq
            old_pairs, new_pairs = self._pairs(old), self._pairs(new)
            old_set, new_set = set(old_pairs), set(new_pairs)
            if len(old_set) == len(old_pairs) and len(new_set) == len(new_pairs):  # no pair twice: set algebra
                delta = dict.fromkeys(new_set - old_set, 1)
                delta.update(dict.fromkeys(old_set - new_set, -1))
            else:
                delta = Counter(new_pairs)
                delta.subtract(old_pairs)
            for changed, times in delta.items():
                if times == 0:
                    continue
                if changed not in self.pair_count:
                    self._new_pair(changed, index)
                self._add_count(changed, times * freq)
                if times > 0:
                    risen.add(changed)
                    self.pair_words[changed].add(index)
                    if self.pair_first.get(changed, index) > index:
                        self.pair_first[changed] = index
            for gone in old_set - new_set:
                self.pair_words[gone].discard(index)
                if self.pair_first.get(gone) == index:
                    del self.pair_first[gone]  # recomputed when next asked for
                if self.pair_count[gone] <= 0:  # gone from every word
                    del self.pair_count[gone], self.pair_words[gone]
                    self.pair_first.pop(gone, None)
        # freq(first) and freq(second) fell, so every eligible pair containing them now scores higher.
        risen.update(self.pairs_with[first])
        risen.update(self.pairs_with[second])
        return merged, risen


def learn_vocab(
    word_counts: Mapping[str, int],
    vocab_size: int = 30000,
    min_frequency: int = 2,
    limit_alphabet: int | None = None,
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
    coarse_to_fine: bool = True,
    show_progress: bool = False,
) -> list[str]:
    """Learn a WordPiece vocabulary (a list of tokens, id order) from word counts.

    `word_counts` maps each pre-tokenized word to its frequency; its iteration order is the corpus
    order (first appearance) and decides ties, as in seed 003. Pairs seen fewer than `min_frequency`
    times are never merged. `limit_alphabet` keeps only the most frequent characters; words with any
    other character are left out (BERT would encode them as [UNK] anyway).

    coarse_to_fine=False is the seed's loop: the best-scoring eligible pair, always. Its score favours
    pairs of rare symbols, so on real text the vocabulary fills up with spellings of rare words
    (`un`, `unf`, ... `unfortu`) while common words stay in pieces (2.8 tokens per held-out word on 10 MB of
    English Wikipedia, 30,000 tokens). coarse_to_fine=True (the default) merges by the same score but
    lets in only pairs counted at least a floor that starts at half the largest pair count and halves
    each time no eligible pair is left, down to `min_frequency`: frequent pieces first, rare ones last
    (1.11 tokens per word on the same text; docs/train-tokenizer.md has the measurements).
    """
    if vocab_size < 1:
        raise UserError(f"vocab_size must be a positive number of tokens, got {vocab_size}")
    if min_frequency < 0:
        raise UserError(f"min_frequency must be >= 0, got {min_frequency}")
    specials = list(dict.fromkeys(special_tokens))
    keep = _select_alphabet(word_counts, limit_alphabet)
    words: list[str] = []
    freqs: list[int] = []
    for word, count in word_counts.items():
        if count <= 0 or not word or len(word) > MAX_WORD_CHARS:
            continue
        if keep is not None and not keep.issuperset(word):
            continue
        words.append(word)
        freqs.append(int(count))

    stats = _PairStats(words, freqs)
    alphabet = sorted(symbol for symbol in stats.symbols if symbol not in specials)
    vocab = specials + alphabet
    in_vocab = set(vocab)
    floor = max(stats.pair_count.values(), default=0) if coarse_to_fine else min_frequency

    with tqdm(total=max(vocab_size - len(vocab), 0), desc="merging", unit=" tokens", disable=not show_progress) as bar:
        while len(vocab) < vocab_size:
            floor = max(floor // 2, min_frequency) if coarse_to_fine else floor
            stats.set_min_count(floor)
            bar.set_postfix(min_count=stats.min_count)
            heap = [(*key, pair) for pair in stats.pair_count if (key := stats.priority(pair)) is not None]
            heapq.heapify(heap)
            while len(vocab) < vocab_size and heap:
                *stale, pair = heapq.heappop(heap)
                key = stats.priority(pair)
                if key is None:
                    continue
                if key != tuple(stale):  # the score moved since this entry was pushed: queue the current one
                    heapq.heappush(heap, (*key, pair))
                    continue
                merged, risen = stats.merge(pair)
                token = stats.symbols[merged]
                if token not in in_vocab:  # two merges can spell the same token; list it once
                    vocab.append(token)
                    in_vocab.add(token)
                    bar.update(1)
                for other in risen:
                    key = stats.priority(other)
                    if key is not None:
                        heapq.heappush(heap, (*key, other))
            if floor <= max(min_frequency, 1):  # the last floor is spent: no pair left to merge
                break
    return vocab


# ---------------------------------------------------------------------------------------------
# 3. The user's entry points: train_wordpiece() and `bertkit train-tokenizer`
# ---------------------------------------------------------------------------------------------

def train_wordpiece(
    corpus: str | os.PathLike | Iterable[str] | Iterable[os.PathLike],
    vocab_size: int = 30000,
    min_frequency: int = 2,
    limit_alphabet: int | None = None,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    keep_hangul: bool = False,
    tokenize_chinese_chars: bool = True,
    special_tokens: Iterable[str] = SPECIAL_TOKENS,
    coarse_to_fine: bool = True,
    show_progress: bool = True,
) -> BertTokenizer:
    """Train a WordPiece vocabulary and return a `BertTokenizer` that uses it.

        tokenizer = train_wordpiece("corpus.txt", vocab_size=8000)
        tokenizer = train_wordpiece(["first text", "second text"], vocab_size=100, min_frequency=1)
        tokenizer.save_pretrained("my-tokenizer")          # vocab.txt + tokenizer_config.json + ...

    corpus: one path (a text file, .xz/.gz/.bz2 too, or a folder of them), a list of paths (`Path`
        objects, or strings that all name existing files), or any iterable of text strings.
    vocab_size: the vocabulary's size, special tokens and alphabet included (fewer if the pairs run out).
    min_frequency: pairs seen fewer times are never merged.
    limit_alphabet: keep only this many of the most frequent characters (words with others are skipped).
    lowercase / strip_accents / keep_hangul / tokenize_chinese_chars: the normalization, exactly as the
        returned tokenizer applies it (`strip_accents=None` follows `lowercase`; `keep_hangul=True` is
        the Korean mode that keeps Hangul syllables whole).
    special_tokens: placed first, in this order; must hold BERT's five, others become
        additional special tokens (never split).
    coarse_to_fine: merge frequent pairs first (see `learn_vocab`); False runs seed 003's loop as printed.
    """
    from bertkit.tokenizer.tokenizer import BertTokenizer

    specials = list(dict.fromkeys(special_tokens))
    missing = [token for token in SPECIAL_TOKENS if token not in specials]
    if missing:
        raise UserError(f"special_tokens lacks {missing}: BERT needs {list(SPECIAL_TOKENS)}; add your own after them")
    if min_frequency < 0:
        raise UserError(f"min_frequency must be >= 0, got {min_frequency}")
    pre_tokenizer = BertPreTokenizer(lowercase, strip_accents, keep_hangul, tokenize_chinese_chars)
    texts, from_files = _resolve_corpus(corpus, show_progress)
    word_counts = count_words(texts, pre_tokenizer, show_progress and not from_files)  # files have a bar already
    if not word_counts:
        raise UserError("the training corpus holds no words: pass non-empty text")
    vocab = learn_vocab(word_counts, vocab_size, min_frequency, limit_alphabet, specials, coarse_to_fine, show_progress)
    return BertTokenizer(
        vocab={token: index for index, token in enumerate(vocab)},
        do_lower_case=lowercase,
        strip_accents=strip_accents,
        tokenize_chinese_chars=tokenize_chinese_chars,
        keep_hangul=keep_hangul,
        additional_special_tokens=[token for token in specials if token not in SPECIAL_TOKENS],
    )
