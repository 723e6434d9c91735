"""Added tokens: words and markers put on top of the WordPiece vocabulary, as HuggingFace's AddedVocabulary has them.

    tokenizer.add_tokens(["covid", "<ent>"])                                # ids after the vocabulary
    tokenizer.add_special_tokens({"additional_special_tokens": ["[E1]"]})   # also skipped by decode(skip_...)
    model.resize_token_embeddings(len(tokenizer))

WordPiece never splits an added token: the text is cut on them first, in HuggingFace's two passes.
1. Tokens matched as written (special tokens, and any `normalized=False` token) in the raw text.
2. Tokens matched after normalization (`normalized=True`, the default for non-special tokens) in the normalized
   text of what pass 1 left, so an added "covid" also matches "COVID" in an uncased tokenizer.
Each pass takes the leftmost match, the longest one at that position; `single_word` drops a match that sits
inside a word, `lstrip` / `rstrip` take the whitespace beside it into the token (and its offsets).
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from bertkit.errors import UserError
from bertkit.tokenizer.normalize import WHITESPACE, BertPreTokenizer, is_chinese_char

FIELDS = ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
SPECIAL_TOKEN_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
EXTRA_NAMES = ("additional_special_tokens", "extra_special_tokens")  # transformers 4's name, then 5's

Match = tuple[int, int, int]  # (token id, start, stop)


class AddedToken:
    """One added token and how it matches, HuggingFace's `AddedToken` (`from transformers import AddedToken`).

    `normalized` (default: not `special`) matches the token against the normalized text; `single_word` only
    where no letter or digit touches it; `lstrip` / `rstrip` take the whitespace on that side into the token.
    """

    def __init__(self, content: str, single_word: bool = False, lstrip: bool = False, rstrip: bool = False,
                 normalized: bool | None = None, special: bool = False) -> None:
        if not isinstance(content, str):
            raise TypeError(f"an added token's content must be a str, got {type(content).__name__}")
        self.content = content
        self.single_word, self.lstrip, self.rstrip = bool(single_word), bool(lstrip), bool(rstrip)
        self.special = bool(special)
        self.normalized = not self.special if normalized is None else bool(normalized)

    def to_dict(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in FIELDS}

    def copy(self) -> AddedToken:
        return AddedToken(**self.to_dict())

    # transformers 4 updates flags through __setstate__({...}) with only some of them
    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({key: value for key, value in state.items() if key in FIELDS})

    def __str__(self) -> str:
        return self.content

    def __repr__(self) -> str:
        return (f"AddedToken({self.content!r}, rstrip={self.rstrip}, lstrip={self.lstrip}, "
                f"single_word={self.single_word}, normalized={self.normalized}, special={self.special})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AddedToken):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.content)


def as_added_token(value: Any, special: bool) -> AddedToken:
    """An AddedToken (a copy) from a str, an AddedToken (bertkit's, or `tokenizers`' own, as transformers hands
    them out), or the dict HuggingFace's files hold; a str is special, and then not normalized, if `special`."""
    if isinstance(value, str):
        return AddedToken(value, special=special)
    if isinstance(value, AddedToken):
        return value.copy()
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return AddedToken(**{field: value[field] for field in FIELDS if field in value})
    if all(hasattr(value, field) for field in FIELDS) and isinstance(value.content, str):
        return AddedToken(**{field: getattr(value, field) for field in FIELDS})
    raise TypeError(f"a token to add must be a str or an AddedToken, got {type(value).__name__} {value!r}")


# ----------------------------------------------------------------------------------------- matching
def _is_space(char: str) -> bool:
    """Rust's `\\s` (Unicode White_Space), which HuggingFace strips with lstrip / rstrip."""
    return char.isspace() and char not in "\x1c\x1d\x1e\x1f"


def _is_word(char: str) -> bool:
    """Rust's `\\w` (letters, marks, digits, connector punctuation), which breaks a single_word match."""
    category = unicodedata.category(char)
    return category[0] in "LM" or category in ("Nd", "Nl", "Pc") or char in "\u200c\u200d"


def _alternation(contents: Iterable[str]) -> re.Pattern[str] | None:
    """A regex for the leftmost, then longest, of the tokens (HuggingFace's Aho-Corasick match kind). The tokens
    share their prefixes as a trie does ("ab(?:c|d)?"): with thousands of added tokens a flat alternation would
    try each one at every position; the greedy optional parts make the longest token win."""
    contents = set(contents)
    trie: dict[str, Any] = {}
    for content in contents:
        node = trie
        for char in content:
            node = node.setdefault(char, {})
        node[""] = True  # a token ends here
    if not trie:
        return None
    try:
        return re.compile(_trie_pattern(trie))
    except RecursionError:  # thousands of nested prefixes ("a", "aa", "aaa", ...): longest first, flat
        return re.compile("|".join(map(re.escape, sorted(contents, key=len, reverse=True))))


def _trie_pattern(node: dict[str, Any]) -> str:
    ends = "" in node
    branches = [re.escape(char) + _trie_pattern(child) for char, child in sorted(node.items()) if char]
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if not ends:
        return body
    return (body if len(branches) > 1 or len(body) == 1 else "(?:" + body + ")") + "?"


class _NormalizedChars(dict):
    """ord(char) -> the char as HuggingFace's BertNormalizer writes it: whitespace becomes a space, control
    characters go, CJK ideographs get spaces around them, accents and case as the tokenizer sets them. A
    str.translate table that fills itself, so the text is normalized in C."""

    def __init__(self, pre_tokenizer: BertPreTokenizer) -> None:
        super().__init__()
        self.pre_tokenizer = pre_tokenizer

    def __missing__(self, code_point: int) -> str:
        char = chr(code_point)
        if WHITESPACE.fullmatch(char):
            value = " "
        else:
            value, _ = self.pre_tokenizer.normalize_char(char)
            if value and self.pre_tokenizer.tokenize_chinese_chars and is_chinese_char(char):
                value = f" {value} "
        self[code_point] = value
        return value


class AddedTokenSplitter:
    """Cuts a text on the added tokens: `split(text)` -> [(piece, its offset in text, token id or None)].

    Built from the tokenizer's added tokens and its normalizer, and rebuilt (never pickled) when they change.
    With only tokens matched as written and no strip or single-word flags (a tokenizer's special tokens, the
    common case) it runs one regex; `screen(text)` is a check in C that rules most texts out before that.
    """

    def __init__(self, added: dict[int, AddedToken], pre_tokenizer: BertPreTokenizer) -> None:
        self.tokens = dict(added)
        self.table = _NormalizedChars(pre_tokenizer)
        self.raw_ids: dict[str, int] = {}
        self.normalized_ids: dict[str, int] = {}
        # id -> the token as convert_ids_to_tokens and decode write it: HuggingFace writes a normalized token
        # normalized ("COVID" added to an uncased tokenizer reads "covid")
        self.display: dict[int, str] = {}
        for token_id, token in added.items():
            self.display[token_id] = token.content
            if not token.content:
                continue
            if token.normalized:
                normalized = token.content.translate(self.table)
                if normalized:
                    self.display[token_id] = normalized
                    self.normalized_ids.setdefault(normalized, token_id)
            else:
                self.raw_ids.setdefault(token.content, token_id)
        self.raw_pattern = _alternation(self.raw_ids)
        self.normalized_pattern = _alternation(self.normalized_ids)
        flagged = any(t.single_word or t.lstrip or t.rstrip for t in added.values())
        self.plain = self.normalized_pattern is None and not flagged
        if self.normalized_pattern is not None:  # it may hide behind any character ("É" for "e"): look at all
            self.screen = bool
        elif self.raw_pattern is not None:
            first_chars = "".join(sorted({re.escape(content[0]) for content in self.raw_ids}))
            self.screen = re.compile(f"[{first_chars}]").search
        else:
            self.screen = _never

    def split(self, text: str) -> list[tuple[str, int, int | None]]:
        if not self.screen(text):
            return [(text, 0, None)]
        if self.plain:
            if not self.raw_pattern.search(text):
                return [(text, 0, None)]
            matches = [(self.raw_ids[m.group()], m.start(), m.end()) for m in self.raw_pattern.finditer(text)]
        else:
            matches = self._matches(text, self.raw_pattern, self.raw_ids) if self.raw_pattern else []
            if self.normalized_pattern is not None:
                matches = self._with_normalized(text, matches)
        if not matches:
            return [(text, 0, None)]
        segments: list[tuple[str, int, int | None]] = []
        position = 0
        for token_id, start, stop in matches:
            if start > position:
                segments.append((text[position:start], position, None))
            segments.append((text[start:stop], start, token_id))
            position = stop
        if position < len(text):
            segments.append((text[position:], position, None))
        return segments

    def _matches(self, sentence: str, pattern: re.Pattern[str], ids: dict[str, int]) -> list[Match]:
        """HuggingFace's find_matches: non-overlapping matches, with the single_word / lstrip / rstrip rules."""
        found: list[Match] = []
        taken = 0
        for match in pattern.finditer(sentence):
            start, stop = match.span()
            token_id = ids[match.group()]
            token = self.tokens[token_id]
            if token.single_word and ((start > 0 and _is_word(sentence[start - 1]))
                                      or (stop < len(sentence) and _is_word(sentence[stop]))):
                continue
            if token.lstrip:  # never into what an earlier match took
                while start > taken and _is_space(sentence[start - 1]):
                    start -= 1
            if token.rstrip:
                while stop < len(sentence) and _is_space(sentence[stop]):
                    stop += 1
            if start < taken:  # only a token that starts with whitespace, after an rstrip
                continue
            found.append((token_id, start, stop))
            taken = stop
        return found

    def _with_normalized(self, text: str, raw: list[Match]) -> list[Match]:
        """Pass 2: the normalized tokens in each stretch of text between the raw matches."""
        found: list[Match] = []
        position = 0
        for match in [*raw, (-1, len(text), len(text))]:
            token_id, start, stop = match
            if start > position:
                found.extend(self._normalized_matches(text, position, start))
            if token_id >= 0:
                found.append(match)
            position = stop
        return found

    def _normalized_matches(self, text: str, start: int, end: int) -> list[Match]:
        piece = text[start:end]
        normalized = piece.translate(self.table)
        if not self.normalized_pattern.search(normalized):
            return []
        matches = self._matches(normalized, self.normalized_pattern, self.normalized_ids)
        if len(normalized) == len(piece) and piece.isascii():  # each ASCII char gives one char or none: none went
            return [(token_id, start + s, start + e) for token_id, s, e in matches]
        # which character of `piece` each normalized character came from
        origin = [k for k, char in enumerate(piece) for _ in self.table[ord(char)]]
        return [(token_id, start + origin[s], start + origin[e - 1] + 1) for token_id, s, e in matches]


def _never(text: str) -> bool:
    return False


# ----------------------------------------------------------------------------------------- the tokenizer's part
class AddedVocabulary:
    """The added-token part of BertTokenizer (which inherits it): HuggingFace's add_tokens / add_special_tokens,
    added_tokens_encoder / added_tokens_decoder. The tokenizer supplies the settings annotated here and calls
    `_build_added()` from its own build."""

    vocab: dict[str, int]
    pre_tokenizer: BertPreTokenizer
    ids_to_tokens: dict[int, str]
    additional_special_tokens: list[str]
    _added: dict[int, AddedToken]  # id -> token: the data, pickled with the tokenizer
    _BUILT_ADDED = ("_splitter", "_added_ids", "_special_added_ids", "_length")

    def _build_added(self) -> None:
        self._splitter = AddedTokenSplitter(self._added, self.pre_tokenizer)
        self._added_ids = {token.content: token_id for token_id, token in self._added.items()}
        self._special_added_ids = frozenset(i for i, token in self._added.items() if token.special)
        self.ids_to_tokens.update(self._splitter.display)
        # HuggingFace's length: every distinct token, the added ones that are not in the vocabulary too
        self._length = len(self.vocab) + sum(1 for content in self._added_ids if content not in self.vocab)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """id -> AddedToken for every added token (special tokens included), by id; copies."""
        return {token_id: self._added[token_id].copy() for token_id in sorted(self._added)}

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """token -> id for every added token (special tokens included), by id."""
        return {self._added[token_id].content: token_id for token_id in sorted(self._added)}

    def get_added_vocab(self) -> dict[str, int]:
        return self.added_tokens_encoder

    @property
    def extra_special_tokens(self) -> list[str]:
        """transformers 5's name for additional_special_tokens."""
        return list(self.additional_special_tokens)

    def add_tokens(self, new_tokens: str | AddedToken | Sequence[str | AddedToken],
                   special_tokens: bool = False) -> int:
        """Add tokens that WordPiece never splits; returns how many were added (HuggingFace's count: a token the
        vocabulary already has counts and keeps its id, one added before does not). Grow the model after it:
        `model.resize_token_embeddings(len(tokenizer))`."""
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        added = self._register(new_tokens, special_tokens)
        self._build_added()
        return added

    def add_special_tokens(self, special_tokens_dict: dict[str, Any], replace_additional_special_tokens: bool = True,
                           replace_extra_special_tokens: bool | None = None) -> int:
        """Set special tokens ({"pad_token": "<pad>", "additional_special_tokens": ["<e1>", "<e2>"]}), adding the
        new ones; returns how many were added. The additional list replaces the old one unless
        replace_additional_special_tokens=False (the old ones stay added, special tokens)."""
        if not special_tokens_dict:
            return 0
        if not isinstance(special_tokens_dict, dict):
            raise TypeError("add_special_tokens takes a dict such as {'additional_special_tokens': ['<e1>']}, got "
                            f"{type(special_tokens_dict).__name__}; for a list of tokens use add_tokens(..., "
                            "special_tokens=True)")
        replace = replace_additional_special_tokens if replace_extra_special_tokens is None \
            else replace_extra_special_tokens
        tokens: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key in EXTRA_NAMES:
                if not isinstance(value, (list, tuple)):
                    raise UserError(f"{key} must be a list of tokens, got {type(value).__name__} {value!r}; "
                                    f"write {{{key!r}: [{value!r}]}}")
                new = [as_added_token(v, special=True) for v in value]
                names = [t.content for t in new] if replace else \
                    self.additional_special_tokens + [t.content for t in new]
                self.additional_special_tokens = list(dict.fromkeys(names))
                tokens += new
            elif key in SPECIAL_TOKEN_NAMES:
                token = as_added_token(value, special=True)
                if not token.content:
                    raise UserError(f"{key} cannot be empty; give the token's text, e.g. {{'{key}': '<tok>'}}")
                setattr(self, key, token.content)
                tokens.append(token)
            else:
                raise UserError(f"{key!r} is not a special token of a BERT tokenizer; use one of "
                                f"{', '.join(SPECIAL_TOKEN_NAMES + EXTRA_NAMES)} (for other tokens: add_tokens)")
        return self.add_tokens(tokens, special_tokens=True)

    def _register(self, new_tokens: Sequence[Any], special: bool) -> int:
        """Add or update tokens as HuggingFace's AddedVocabulary does; returns the count it reports."""
        ids = {token.content: token_id for token_id, token in self._added.items()}
        next_id = max([len(self.vocab), *(token_id + 1 for token_id in self._added)])
        count = 0
        for value in new_tokens:
            token = as_added_token(value, special)
            if special:
                token.special = True
            if not token.content:
                continue
            token_id = ids.get(token.content)
            if token_id is not None:
                old = self._added[token_id]
                # A plain string never turns a special token into a normal one (HuggingFace's fast tokenizer
                # would, so add_tokens(["[CLS]"]) would stop [CLS] being special); it can make a token special.
                if old == token or (isinstance(value, str) and (old.special or not special)):
                    continue
            else:
                token_id = self.vocab.get(token.content)
                if token_id is None:  # after the vocabulary and every added token, as HuggingFace numbers them
                    token_id = next_id
                next_id = max(next_id, token_id + 1)
            self._added[token_id] = token
            ids[token.content] = token_id
            count += 1
        return count

    def _init_added(self, added_tokens_decoder: dict[Any, Any] | None) -> None:
        """The added tokens a tokenizer starts with: those its files list, then its special tokens (HuggingFace
        always registers them, so they are never split). Special tokens given as AddedToken keep their flags."""
        self._added = {}
        for key, value in (added_tokens_decoder or {}).items():
            try:
                token_id = int(key)
            except (TypeError, ValueError):
                raise UserError(f"added_tokens_decoder maps ids to tokens; {key!r} is not an id (an integer)") \
                    from None
            if token_id < 0:
                raise UserError(f"added token {value!r} has the negative id {token_id}; ids start at 0")
            self._added[token_id] = as_added_token(value, special=False)
        specials: dict[str, AddedToken] = {}
        for name in SPECIAL_TOKEN_NAMES:
            value = getattr(self, name)
            if value:
                token = as_added_token(value, special=True)
                setattr(self, name, token.content)
                specials.setdefault(token.content, token)
        extras = [as_added_token(value, special=True) for value in self.additional_special_tokens if value]
        self.additional_special_tokens = list(dict.fromkeys(token.content for token in extras))
        for token in extras:
            specials.setdefault(token.content, token)
        present = {token.content for token in self._added.values()}
        self._register([token for content, token in specials.items() if content not in present], special=True)
