"""BertTokenizer: HuggingFace's BertTokenizer(Fast) surface over our normalizer and WordPiece.

text -> normalized words (str.translate + str.split) -> WordPiece ids (cached per word)
     -> truncation windows -> [CLS] A [SEP] (B [SEP]) rows -> padding -> BatchEncoding
        (the second line lives in sequences.py: SequenceAssembly, which BertTokenizer inherits)

The hot path runs in C: translate, split, then one dict lookup per word, so a word seen before costs only
the lookup. Offsets and word ids take a second path (whitespace chunks with per-character spans, cached per
chunk) and are only computed when asked for, directly or through `BatchEncoding.word_ids()`.
"""
from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

from bertkit.errors import MissingFileError, UserError
from bertkit.tokenizer.added_tokens import AddedToken, AddedVocabulary
from bertkit.tokenizer.encoding import BatchEncoding, Encoding
from bertkit.tokenizer.normalize import BertPreTokenizer
from bertkit.tokenizer.offsets import Cache, OffsetTracker
from bertkit.tokenizer.processes import run_sharded, shard_bounds, worker_count
from bertkit.tokenizer.sequences import (
    DETAILS,
    IDS,
    OFFSETS,
    VERY_LARGE_INTEGER,
    SequenceAssembly,
    Tokens,
    as_batch,
    as_int_list,
    pad_length,
)
from bertkit.tokenizer.sequences import TRUNCATION_STRATEGIES as TRUNCATION_STRATEGIES
from bertkit.tokenizer.serialization import (
    SPECIAL_TOKEN_NAMES,
    read_tokenizer_folder,
    read_vocabulary_lines,
    write_tokenizer_folder,
)
from bertkit.tokenizer.wordpiece import WordPiece
from bertkit.utils.logging import warn_ignored


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while a batch is built: the call makes no reference cycles, and
    full collections would otherwise keep re-walking every row and cache entry made so far."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """vocab.txt: one token per line, the line number is the id."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no vocabulary file at {path}: expected a vocab.txt with one token per line")
    lines = read_vocabulary_lines(path)
    vocab: dict[str, int] = {}
    for index, token in enumerate(lines):
        if token in vocab:
            raise UserError(f"{path} lists {token!r} twice (lines {vocab[token] + 1} and {index + 1}); "
                             "each token must appear once, since its line number is its id")
        vocab[token] = index
    if not vocab:
        raise UserError(f"{path} is empty: a vocabulary needs at least the special tokens and [UNK]")
    return vocab


class BertTokenizer(AddedVocabulary, SequenceAssembly):
    """BERT's WordPiece tokenizer with HuggingFace's API, id for id with HuggingFace's BertTokenizerFast.

        tokenizer = BertTokenizer.from_pretrained("path/to/folder")   # vocab.txt (+ tokenizer_config.json)
        batch = tokenizer(["I love Paris", "short"], padding=True, return_tensors="pt")

    `keep_hangul=True` (Korean mode) strips Latin accents but keeps Hangul syllables whole. Added tokens
    (`add_tokens`, `add_special_tokens`, `added_tokens_decoder=`) live in added_tokens.py.
    """

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    is_fast = True
    padding_side = "right"
    truncation_side = "right"
    num_workers: int | None = None  # processes for a batch call (processes.py): None or 1 = this one alone

    def __init__(
        self,
        vocab_file: str | os.PathLike | dict[str, int] | None = None,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        keep_hangul: bool = False,
        unk_token: str | AddedToken = "[UNK]",
        sep_token: str | AddedToken = "[SEP]",
        pad_token: str | AddedToken = "[PAD]",
        cls_token: str | AddedToken = "[CLS]",
        mask_token: str | AddedToken = "[MASK]",
        additional_special_tokens: Sequence[str | AddedToken] = (),
        added_tokens_decoder: dict[int, AddedToken | dict[str, Any]] | None = None,
        model_max_length: int | None = None,
        max_input_chars_per_word: int = 100,
        clean_up_tokenization_spaces: bool = False,
        padding_side: str = "right",
        truncation_side: str = "right",
        name_or_path: str = "",
        vocab: dict[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        if vocab is None:
            if vocab_file is None:
                raise UserError("BertTokenizer needs a vocabulary: pass vocab_file='vocab.txt' or vocab={token: id}")
            vocab = dict(vocab_file) if isinstance(vocab_file, dict) else load_vocab(vocab_file)
        if not isinstance(vocab, dict) or not all(isinstance(t, str) and isinstance(i, int) for t, i in vocab.items()):
            raise TypeError("vocab must be a dict mapping token strings to integer ids")
        if len(set(vocab.values())) != len(vocab):
            raise UserError("the vocabulary gives two tokens the same id; ids must be unique")
        for side, name in ((padding_side, "padding_side"), (truncation_side, "truncation_side")):
            if side not in ("left", "right"):
                raise UserError(f"{name} must be 'left' or 'right', got {side!r}")
        self.vocab = vocab
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.keep_hangul = bool(keep_hangul)
        self.unk_token, self.sep_token, self.pad_token = unk_token, sep_token, pad_token
        self.cls_token, self.mask_token = cls_token, mask_token
        self.additional_special_tokens = list(additional_special_tokens or ())
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.max_input_chars_per_word = max_input_chars_per_word
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.padding_side, self.truncation_side = padding_side, truncation_side
        self.name_or_path = str(name_or_path)
        self.init_kwargs = kwargs
        # Special tokens missing from the vocabulary get ids after it, as HuggingFace's added tokens do.
        self._init_added(added_tokens_decoder)
        self._wordpiece_unk = self.unk_token  # the word-level [UNK]: add_special_tokens leaves it, as HF does
        self._build()

    # The parts built from the settings above. Pickling leaves them out and unpickling rebuilds them: the
    # normalizer's self-filling tables hold functions pickle cannot save, and the caches would only swell what
    # multiprocessing and `datasets.map(num_proc=...)` send to each worker.
    _BUILT = ("ids_to_tokens", "pre_tokenizer", "wordpiece", "_word_ids", "_offsets",
              *AddedVocabulary._BUILT_ADDED)

    def _build(self) -> None:
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.pre_tokenizer = BertPreTokenizer(self.do_lower_case, self.strip_accents, self.keep_hangul,
                                              self.tokenize_chinese_chars)
        self.wordpiece = WordPiece(self.vocab, self._wordpiece_unk, "##", self.max_input_chars_per_word)
        self._word_ids = Cache(self.wordpiece.ids)  # normalized word -> ids
        self._offsets = OffsetTracker(self.pre_tokenizer, self.wordpiece)  # the path with offsets
        # Special and added tokens are cut out of the text before normalization and WordPiece.
        self._build_added()

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in self._BUILT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build()

    # ----------------------------------------------------------------------------------------- vocabulary
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return self._length

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self.added_tokens_encoder}

    def __repr__(self) -> str:
        return (f"BertTokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"do_lower_case={self.do_lower_case}, strip_accents={self.strip_accents}, "
                f"keep_hangul={self.keep_hangul}, model_max_length={self.model_max_length})")

    def _token_id(self, token: str) -> int:
        token_id = self._added_ids.get(token)  # an added token wins, as in HuggingFace
        if token_id is None:
            token_id = self.vocab.get(token)
            if token_id is None:
                token_id = self.unk_token_id
        return token_id

    @property
    def unk_token_id(self) -> int:
        token_id = self._added_ids.get(self.unk_token)
        return self.vocab[self.unk_token] if token_id is None else token_id

    @property
    def sep_token_id(self) -> int:
        return self._token_id(self.sep_token)

    @property
    def pad_token_id(self) -> int:
        return self._token_id(self.pad_token)

    @property
    def cls_token_id(self) -> int:
        return self._token_id(self.cls_token)

    @property
    def mask_token_id(self) -> int:
        return self._token_id(self.mask_token)

    @property
    def special_tokens_map(self) -> dict[str, Any]:
        tokens: dict[str, Any] = {name: getattr(self, name) for name in SPECIAL_TOKEN_NAMES}
        if self.additional_special_tokens:
            tokens["additional_special_tokens"] = list(self.additional_special_tokens)
        return tokens

    @property
    def all_special_tokens(self) -> list[str]:
        tokens = [getattr(self, name) for name in SPECIAL_TOKEN_NAMES] + self.additional_special_tokens
        return list(dict.fromkeys(t for t in tokens if t))

    @property
    def all_special_ids(self) -> list[int]:
        return [self._token_id(t) for t in self.all_special_tokens]

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Token -> id ([UNK]'s id for unknown tokens); a list gives a list."""
        if isinstance(tokens, str):
            return self._token_id(tokens)
        return [self._token_id(t) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Id -> token; a list gives a list (ids outside the vocabulary are dropped, as HuggingFace does)."""
        if isinstance(ids, int) or (hasattr(ids, "ndim") and ids.ndim == 0):
            token = self.ids_to_tokens.get(int(ids))
            if token is None:
                raise UserError(f"id {int(ids)} is outside the vocabulary (0..{len(self) - 1})")
            return token
        special = set(self.all_special_ids).union(self._special_added_ids) if skip_special_tokens else set()
        return [self.ids_to_tokens[i] for i in as_int_list(ids) if i in self.ids_to_tokens and i not in special]

    # ----------------------------------------------------------------------------------------- tokenizing
    def _segments(self, text: str) -> list[tuple[str, int, int | None]]:
        """Split out special and added tokens: (piece, offset in text, the token's id or None)."""
        return self._splitter.split(text)

    def _ids_of(self, text: str) -> list[int]:
        """The fast path, ids only: normalize by str.translate, split, one cached lookup per word, all in C."""
        return list(chain.from_iterable(map(self._word_ids.__getitem__, self.pre_tokenizer.words(text))))

    def _encode_text(self, text: str, track: int) -> Tokens:
        """The tokens of one text, without [CLS]/[SEP]; offsets when `track` >= OFFSETS, word ids at DETAILS."""
        segments = self._segments(text)
        if track == IDS:
            ids: list[int] = []
            for piece, _, special_id in segments:
                if special_id is None:
                    ids += self._ids_of(piece)
                else:
                    ids.append(special_id)
            return Tokens(ids)
        words = track == DETAILS
        if len(segments) == 1 and segments[0][2] is None:  # no added token: the whole text in one go
            ids, offsets, word_ids, _ = self._offsets.encode(text, words=words)
            return Tokens(ids, offsets, word_ids)
        tokens = Tokens([], [], [] if words else None)
        word = 0  # every split counts as a word, special and added tokens included (as in HuggingFace)
        for piece, base, special_id in segments:
            if special_id is not None:
                ids, offsets, word_ids, word = [special_id], [(base, base + len(piece))], [word], word + 1
            else:
                ids, offsets, word_ids, word = self._offsets.encode(piece, base, word, words)
            tokens.ids += ids
            tokens.offsets += offsets
            if words:
                tokens.word_ids += word_ids
        return tokens

    def _encode_input(self, text: str | Sequence[str], is_split_into_words: bool, track: int) -> Tokens:
        if not is_split_into_words:
            return self._encode_text(text, track)
        # Pre-split words: each is tokenized on its own; its tokens carry its index and offsets inside it.
        merged = Tokens([], [] if track else None, [] if track == DETAILS else None)
        for index, word in enumerate(text):
            tokens = self._encode_text(word, min(track, OFFSETS))
            merged.ids.extend(tokens.ids)
            if track:
                merged.offsets.extend(tokens.offsets)
            if track == DETAILS:
                merged.word_ids.extend([index] * len(tokens.ids))
        return merged

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False,
                 is_split_into_words: bool = False, **kwargs: Any) -> list[str]:
        """The WordPiece tokens of `text` (and `pair`), without [CLS]/[SEP] unless add_special_tokens."""
        if not isinstance(text, str) and not is_split_into_words:
            raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
        ids = self.encode(text, pair, add_special_tokens=add_special_tokens,
                          is_split_into_words=is_split_into_words, **kwargs)
        return [self.ids_to_tokens[i] for i in ids]

    # ----------------------------------------------------------------------------------------- the call
    def __call__(
        self,
        text: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        text_pair: str | Sequence[str] | Sequence[Sequence[str]] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Encode one text, a pair, or batches of them (HuggingFace's call signature and results)."""
        if kwargs:
            raise TypeError(f"unexpected keyword argument(s) {sorted(kwargs)} for the tokenizer call")
        batched, firsts, seconds = as_batch(text, is_split_into_words, "text")
        if text_pair is not None:
            if seconds is not None:
                raise UserError("text holds (first, second) pairs and text_pair is given too: pass the second "
                                 "texts one way, inside the pairs or as text_pair")
            pair_batched, seconds, nested = as_batch(text_pair, is_split_into_words, "text_pair")
            if nested is not None:
                raise TypeError("text_pair must hold second texts only, not (first, second) pairs")
            if pair_batched != batched or len(seconds) != len(firsts):
                raise UserError(f"text and text_pair must both be single inputs or batches of the same size "
                                 f"(got {len(firsts)} and {len(seconds)})")
        padding, truncation, max_length = self._strategies(padding, truncation, max_length)
        padding_side = padding_side or self.padding_side
        if padding_side not in ("left", "right"):
            raise UserError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        options = dict(add_special_tokens=add_special_tokens, truncation=truncation, max_length=max_length,
                       stride=stride, overflow=return_overflowing_tokens, split=is_split_into_words)

        columns, sample_of_row = self._rows_in_processes(firsts, seconds, track=OFFSETS if return_offsets_mapping
                                                         else IDS, special_mask=return_special_tokens_mask, **options)
        pad_to = pad_length([len(r) for r in columns["input_ids"]], padding, max_length, pad_to_multiple_of)
        self._pad(columns, pad_to, padding_side)

        data: dict[str, Any] = {"input_ids": columns["input_ids"]}
        if return_token_type_ids is not False:
            data["token_type_ids"] = columns["token_type_ids"]
        if return_attention_mask is not False:
            data["attention_mask"] = columns["attention_mask"]
        if return_special_tokens_mask:
            data["special_tokens_mask"] = columns["special_tokens_mask"]
        if return_offsets_mapping:
            data["offset_mapping"] = columns["offsets"]
        if return_length:
            data["length"] = [len(r) for r in columns["input_ids"]]
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = sample_of_row

        def n_texts(sample: int) -> int:
            return 1 if seconds is None or seconds[sample] is None else 2

        def details() -> list[Encoding]:  # redo the call with offsets and word ids tracked
            tracked, samples = self._rows(firsts, seconds, track=DETAILS, special_mask=True, **options)
            self._pad(tracked, pad_to, padding_side)
            return [self._to_encoding({key: column[i] for key, column in tracked.items()}, n_texts(sample))
                    for i, sample in enumerate(samples)]

        if not batched and return_tensors is None and not return_overflowing_tokens:
            data = {key: value[0] for key, value in data.items()}
        encoding = BatchEncoding(data, details, n_sequences=n_texts(0) if firsts else None)
        if return_tensors is not None:
            encoding.convert_to_tensors(return_tensors)
        return encoding

    encode_plus = __call__  # transformers 4's single-input call; 5 has only the call

    def batch_encode_plus(self, batch_text_or_text_pairs: Sequence[Any], **kwargs: Any) -> BatchEncoding:
        """transformers 4's batch call: a list of texts or of (first, second) pairs (5 has only the call)."""
        if not isinstance(batch_text_or_text_pairs, (list, tuple)):
            raise TypeError("batch_text_or_text_pairs must be a list of texts or of (first, second) pairs, got "
                            f"{type(batch_text_or_text_pairs).__name__}; for one text call the tokenizer itself")
        return self(batch_text_or_text_pairs, **kwargs)

    def encode(self, text: str | Sequence[str], text_pair: str | Sequence[str] | None = None,
               add_special_tokens: bool = True, padding: bool | str = False, truncation: bool | str | None = None,
               max_length: int | None = None, stride: int = 0, return_tensors: str | None = None,
               **kwargs: Any) -> list[int] | Any:
        """The ids of one text or pair (HuggingFace's `encode`)."""
        if text is None or (not isinstance(text, str) and not kwargs.get("is_split_into_words")):
            raise TypeError(f"encode expects a str (use the tokenizer call for batches), got {type(text).__name__}")
        encoding = self(text, text_pair, add_special_tokens=add_special_tokens, padding=padding,
                        truncation=truncation, max_length=max_length, stride=stride,
                        return_tensors=return_tensors, return_token_type_ids=False,
                        return_attention_mask=False, **kwargs)
        return encoding["input_ids"]

    def _rows_in_processes(self, firsts: list, seconds: list | None, **options: Any
                           ) -> tuple[dict[str, list[list]], list[int]]:
        """`_rows`, over `num_workers` processes when asked for (processes.py)."""
        count = worker_count(self.num_workers)
        if count == 1 or len(firsts) < 2:
            return self._rows(firsts, seconds, **options)
        lengths = [_text_length(text) for text in firsts]
        if seconds is not None:
            lengths = [n + _text_length(second) for n, second in zip(lengths, seconds)]

        def work(start: int, stop: int) -> tuple[dict[str, list[list]], list[int]]:
            return self._rows(firsts[start:stop], None if seconds is None else seconds[start:stop], **options)

        bounds = shard_bounds(lengths, count)
        with _gc_paused():  # unpickling the workers' rows makes millions of lists: no collections meanwhile
            shards = run_sharded(work, bounds)
        columns, sample_of_row = shards[0]
        for (start, _), (more_columns, more_samples) in zip(bounds[1:], shards[1:]):
            for key, column in columns.items():
                column += more_columns[key]
            sample_of_row += [start + sample for sample in more_samples]
        return columns, sample_of_row

    def _rows(self, firsts: list, seconds: list | None, *, track: int, special_mask: bool,
              add_special_tokens: bool, truncation: str | None, max_length: int | None, stride: int,
              overflow: bool, split: bool) -> tuple[dict[str, list[list]], list[int]]:
        """Encode every sample, truncate it into windows and assemble the rows (unpadded), column by column."""
        keys = ["input_ids", "token_type_ids", "attention_mask"] + (["special_tokens_mask"] if special_mask else [])
        keys += ["offsets"] if track else []
        keys += ["word_ids", "sequence_ids"] if track == DETAILS else []
        columns: dict[str, list[list]] = {key: [] for key in keys}
        input_ids, type_ids, attention = columns["input_ids"], columns["token_type_ids"], columns["attention_mask"]
        sample_of_row: list[int] = []
        # The common case, kept lean: a single plain text that fits becomes [CLS] ids [SEP] directly.
        lean = not track and not split and seconds is None and not special_mask and add_special_tokens
        fits = VERY_LARGE_INTEGER if truncation is None or max_length is None else max_length - 2
        cls, sep = self.cls_token_id, self.sep_token_id
        special_start = self._splitter.screen  # a quick check in C: could the text hold an added token?
        words, word_ids = self.pre_tokenizer.words, self._word_ids.__getitem__
        # A text repeated from the sample before (a SQuAD context asked several questions) is encoded once.
        last_first = last_second = last_a = last_b = None
        with _gc_paused():
            for sample, first in enumerate(firsts):
                if lean and not special_start(first):
                    ids = [cls]
                    ids += chain.from_iterable(map(word_ids, words(first)))  # _ids_of, inlined
                    if len(ids) - 1 <= fits:
                        ids.append(sep)
                        input_ids.append(ids)
                        type_ids.append([0] * len(ids))
                        attention.append([1] * len(ids))
                        sample_of_row.append(sample)
                        continue
                    a = Tokens(ids[1:])
                elif first == last_first:
                    a = last_a
                else:
                    a = last_a = self._encode_input(first, split, track)
                    last_first = first
                second = None if seconds is None else seconds[sample]
                if second is None:
                    b = None
                elif second != last_second:
                    b = last_b = self._encode_input(second, split, track)
                    last_second = second
                else:
                    b = last_b
                windows = self._truncate(a, b, truncation, max_length, stride, add_special_tokens)
                for a_window, b_window in windows if overflow else windows[:1]:
                    row = self._assemble(a_window, b_window, add_special_tokens, track, special_mask)
                    for key, column in columns.items():
                        column.append(row[key])
                    sample_of_row.append(sample)
        return columns, sample_of_row

    def _to_encoding(self, row: dict[str, list], n_sequences: int) -> Encoding:
        return Encoding(ids=row["input_ids"], tokens=[self.ids_to_tokens[i] for i in row["input_ids"]],
                        type_ids=row["token_type_ids"], attention_mask=row["attention_mask"],
                        special_tokens_mask=row["special_tokens_mask"], offsets=row["offsets"],
                        word_ids=row["word_ids"], sequence_ids=row["sequence_ids"], n_sequences=n_sequences)

    # ----------------------------------------------------------------------------------------- decoding
    def convert_tokens_to_string(self, tokens: Sequence[str]) -> str:
        """Join WordPiece tokens as HuggingFace's WordPiece decoder does: '##' pieces glue to the previous one,
        others get a space, and each token's space before . , ? ! and English contractions is removed."""
        pieces = []
        for i, token in enumerate(tokens):
            if not isinstance(token, str):
                raise TypeError(f"convert_tokens_to_string takes token strings, got {type(token).__name__} {token!r}; "
                                "for ids use decode()")
            if i and token.startswith("##"):
                token = token[2:]
            elif i:
                token = " " + token
            pieces.append(clean_up_tokenization(token, contract_do_not=True))
        return "".join(pieces)

    def decode(self, token_ids: Any, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> str:
        """Ids back to text, as HuggingFace's WordPiece decoder writes it (lowercased if the vocab is)."""
        if kwargs:
            warn_ignored("BertTokenizer.decode", kwargs)
        tokens = self.convert_ids_to_tokens(as_int_list(token_ids), skip_special_tokens=skip_special_tokens)
        text = self.convert_tokens_to_string(tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> list[str]:
        if kwargs:
            warn_ignored("BertTokenizer.batch_decode", kwargs)
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(s, skip_special_tokens, clean_up_tokenization_spaces) for s in sequences]

    # ----------------------------------------------------------------------------------------- files
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **overrides: Any) -> BertTokenizer:
        """Load from a folder in HuggingFace layout: vocab.txt (+ tokenizer_config.json) or tokenizer.json."""
        settings = read_tokenizer_folder(pretrained_model_name_or_path)
        settings.update(overrides)
        return cls(**settings)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> tuple[str, ...]:
        """Write vocab.txt, tokenizer_config.json, special_tokens_map.json and tokenizer.json (HF loads it)."""
        if kwargs:
            warn_ignored("BertTokenizer.save_pretrained", kwargs)
        return write_tokenizer_folder(self, save_directory)

    save_vocabulary = save_pretrained


# --------------------------------------------------------------------------------------------- functions
def _text_length(text: str | Sequence[str] | None) -> int:
    """Characters in a text, or in a pre-split text's words."""
    if text is None:
        return 0
    return len(text) if isinstance(text, str) else sum(map(len, text))


def clean_up_tokenization(text: str, contract_do_not: bool = False) -> str:
    """transformers' clean_up_tokenization: no space before punctuation and English contractions.
    `contract_do_not=True` is HuggingFace's WordPiece decoder cleanup (applied per token), which differs from
    transformers' only in also writing " do not" as " don't"; both are kept so decode matches either one."""
    text = (text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
            .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m"))
    if contract_do_not:
        text = text.replace(" do not", " don't")
    return text.replace(" 's", "'s").replace(" 've", "'ve").replace(" 're", "'re")


class AutoTokenizer:
    """`AutoTokenizer.from_pretrained(folder)` gives a BertTokenizer (the only tokenizer bertkit has)."""

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> BertTokenizer:
        kwargs.pop("use_fast", None)
        return BertTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)


BertTokenizerFast = BertTokenizer
