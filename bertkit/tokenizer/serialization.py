"""A tokenizer folder in HuggingFace layout, read and written: vocab.txt, tokenizer_config.json,
special_tokens_map.json, tokenizer.json and added_tokens.json (what `BertTokenizer.from_pretrained` /
`save_pretrained` use).

    settings = read_tokenizer_folder("path/to/bert")      # BertTokenizer keyword arguments
    write_tokenizer_folder(tokenizer, "out")              # the files; transformers 4 and 5 load them

Added tokens are written where each HuggingFace version reads them: tokenizer.json's "added_tokens" (with their
flags), tokenizer_config.json's "added_tokens_decoder" and added_tokens.json (those past the vocabulary), never
in vocab.txt, which stays the WordPiece vocabulary.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from bertkit.errors import MissingFileError, UserError
from bertkit.files import read_json_object, read_text
from bertkit.hub import resolve_folder
from bertkit.tokenizer.added_tokens import SPECIAL_TOKEN_NAMES, as_added_token

if TYPE_CHECKING:
    from bertkit.tokenizer.tokenizer import BertTokenizer

# Bounds far above any real vocabulary (bert-base-multilingual: 119,547 tokens, a 1 MB vocab.txt, a 3 MB
# tokenizer.json, no token near 100 characters). A file past them is no vocabulary, and reading it whole would cost
# gigabytes and many seconds (a 200 MB vocab.txt took 2.2 GB and 20 s): it is refused before it is read.
MAX_VOCAB_FILE_BYTES = 64 << 20
MAX_VOCAB_TOKENS = 1_000_000
MAX_TOKEN_CHARS = 1024
VOCAB_REMEDY = "use the vocab.txt or tokenizer.json that came with the model, or train one with bertkit train-tokenizer"
CONFIG_FLAGS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "keep_hangul", "model_max_length",
                "clean_up_tokenization_spaces", "padding_side", "truncation_side", "max_input_chars_per_word")


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, "fix or delete it")


def _token_content(token: Any) -> Any:
    """Special tokens are saved as "[CLS]" or as {"content": "[CLS]", ...}."""
    return token.get("content") if isinstance(token, dict) else token


def read_tokenizer_folder(path: str | os.PathLike) -> dict[str, Any]:
    """BertTokenizer keyword arguments from a HuggingFace tokenizer folder (or a bare vocab.txt file).

    tokenizer.json, when present, decides the vocabulary and the normalizer (as HuggingFace's fast tokenizer
    does); tokenizer_config.json and special_tokens_map.json give the special tokens and model_max_length.
    """
    name, path = str(path), Path(path)
    if path.is_file():
        return {"vocab_file": path, "name_or_path": str(path)}
    path = resolve_folder(name, "tokenizer")  # a folder, or a hub name from the cache (or the network)
    settings: dict[str, Any] = {"name_or_path": name}
    config = _read_json(path / "tokenizer_config.json") if (path / "tokenizer_config.json").is_file() else {}
    special = _read_json(path / "special_tokens_map.json") if (path / "special_tokens_map.json").is_file() else {}
    for source in (special, config):
        for name in SPECIAL_TOKEN_NAMES:
            if _token_content(source.get(name)):
                settings[name] = _token_content(source[name])
        extra = source.get("additional_special_tokens") or source.get("extra_special_tokens")
        if isinstance(extra, list) and extra:
            settings["additional_special_tokens"] = [_token_content(t) for t in extra]
    settings.update({key: config[key] for key in CONFIG_FLAGS if config.get(key) is not None})
    if "strip_accents" in config:  # an explicit null means "follow do_lower_case"
        settings["strip_accents"] = config["strip_accents"]
    if (path / "tokenizer.json").is_file():
        settings.update(_read_tokenizer_json(path / "tokenizer.json"))
    elif (path / "vocab.txt").is_file():
        settings["vocab_file"] = path / "vocab.txt"
    else:
        raise MissingFileError(f"{path} holds neither vocab.txt nor tokenizer.json: save a tokenizer there with "
                                "save_pretrained() or copy a BERT vocab.txt into it")
    settings["added_tokens_decoder"] = _read_added_tokens(path, settings.get("added_tokens_decoder") or {},
                                                          config, settings)
    return settings


def _read_added_tokens(path: Path, added: dict[int, Any], config: dict[str, Any],
                       settings: dict[str, Any]) -> dict[int, Any]:
    """The added tokens, wherever a HuggingFace version put them: tokenizer.json (read already) first, then
    tokenizer_config.json's "added_tokens_decoder" (transformers >= 4.34), then added_tokens.json (older ones,
    and the slow tokenizer), each adding only the ids and tokens the ones before it lack."""
    contents = {as_added_token(token, False).content for token in added.values()}
    decoder = config.get("added_tokens_decoder") or {}
    if not isinstance(decoder, dict):
        raise UserError(f"{path / 'tokenizer_config.json'}: added_tokens_decoder must map ids to tokens, got "
                         f"{type(decoder).__name__}; fix or delete that entry")
    for key, value in decoder.items():
        token = _added_token(value, path / "tokenizer_config.json")
        if str(key).isdigit() and int(key) not in added and token.content not in contents:
            added[int(key)] = token
            contents.add(token.content)
    if (path / "added_tokens.json").is_file():
        file = _read_json(path / "added_tokens.json")
        specials = {settings.get(name) for name in SPECIAL_TOKEN_NAMES} | set(
            settings.get("additional_special_tokens") or ())
        for content, token_id in file.items():
            if not isinstance(token_id, int) or isinstance(token_id, bool) or token_id < 0:
                raise UserError(f"{path / 'added_tokens.json'} maps {content!r} to {token_id!r}; it must map each "
                                 "token to its id (a non-negative integer)")
            if token_id not in added and content not in contents:
                added[token_id] = as_added_token(content, special=content in specials)
                contents.add(content)
    return added


def _added_token(value: Any, path: Path) -> Any:
    try:
        return as_added_token(value, special=False)
    except TypeError:
        raise UserError(f"{path} lists the added token {value!r}, which is not a token (a string or a "
                         "{\"content\": ...} object); fix or delete it") from None


def check_vocabulary_file(path: Path) -> None:
    """Refuse, before reading it, a vocabulary file larger than any real one."""
    size = path.stat().st_size
    if size > MAX_VOCAB_FILE_BYTES:
        raise UserError(f"{path} is {size / 1e6:,.0f} MB, far larger than any real vocabulary (the limit is "
                         f"{MAX_VOCAB_FILE_BYTES / 1e6:.0f} MB; a BERT vocab.txt is about 1 MB); {VOCAB_REMEDY}")


def check_vocabulary(tokens: Sequence[str], path: Path) -> None:
    """Refuse a vocabulary of more tokens, or longer ones, than any real one."""
    if len(tokens) > MAX_VOCAB_TOKENS:
        raise UserError(f"{path} holds {len(tokens):,} tokens; the limit is {MAX_VOCAB_TOKENS:,} (a BERT vocabulary "
                         f"has 30,000 to 120,000); {VOCAB_REMEDY}")
    longest = max(tokens, key=len, default="")
    if len(longest) > MAX_TOKEN_CHARS:
        raise UserError(f"{path} holds a token of {len(longest):,} characters ({longest[:20]!r}...); the limit is "
                         f"{MAX_TOKEN_CHARS} (WordPiece never matches a word of over 100 characters); {VOCAB_REMEDY}")


def read_vocabulary_lines(path: Path) -> list[str]:
    """The tokens of a vocab.txt, one per line, within the bounds of a real vocabulary."""
    check_vocabulary_file(path)
    lines = read_text(path, "vocabulary file").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    check_vocabulary(lines, path)
    return lines


def _read_tokenizer_json(path: Path) -> dict[str, Any]:
    check_vocabulary_file(path)
    data = _read_json(path)
    model = data.get("model") or {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise UserError(f"{path} holds a {model.get('type')!r} model; bertkit reads WordPiece (BERT) tokenizers only")
    if model.get("continuing_subword_prefix", "##") != "##":
        raise UserError(f"{path}: continuing_subword_prefix must be '##', got {model['continuing_subword_prefix']!r}")
    vocab = dict(model["vocab"])  # the WordPiece vocabulary; added tokens stay apart, as in HuggingFace
    check_vocabulary([str(token) for token in vocab], path)
    added: dict[int, Any] = {}
    for entry in data.get("added_tokens") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
            raise UserError(f"{path}: each of \"added_tokens\" must be an object with an \"id\" and a "
                             f"\"content\", got {entry!r}; fix or delete it")
        added[entry["id"]] = _added_token(entry, path)
    settings: dict[str, Any] = {"vocab": vocab, "unk_token": model.get("unk_token", "[UNK]"),
                                "max_input_chars_per_word": model.get("max_input_chars_per_word", 100),
                                "added_tokens_decoder": added}
    settings.update(_read_normalizer(data.get("normalizer"), path))
    return settings


def _read_normalizer(normalizer: dict[str, Any] | None, path: Path) -> dict[str, Any]:
    """BertNormalizer, or the Sequence that save_pretrained writes for keep_hangul (Korean mode)."""
    if normalizer is None:
        return {"do_lower_case": False, "strip_accents": False}
    if normalizer.get("type") == "BertNormalizer":
        return {"do_lower_case": normalizer.get("lowercase", True), "strip_accents": normalizer.get("strip_accents"),
                "tokenize_chinese_chars": normalizer.get("handle_chinese_chars", True), "keep_hangul": False}
    steps = normalizer.get("normalizers") or []
    types = [step.get("type") for step in steps]
    if normalizer.get("type") == "Sequence" and types[:1] == ["BertNormalizer"] and "NFC" in types:
        return {"do_lower_case": "Lowercase" in types, "strip_accents": True, "keep_hangul": True,
                "tokenize_chinese_chars": steps[0].get("handle_chinese_chars", True)}
    raise UserError(f"{path}: unsupported normalizer {normalizer.get('type')!r}; bertkit reads BERT's "
                     "BertNormalizer (or the Korean-mode sequence it writes itself)")


def _normalizer_json(tokenizer: BertTokenizer) -> dict[str, Any]:
    bert = {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": tokenizer.tokenize_chinese_chars,
            "strip_accents": tokenizer.strip_accents, "lowercase": tokenizer.do_lower_case}
    if not (tokenizer.keep_hangul and tokenizer.pre_tokenizer.strip_accents):
        return bert
    # Korean mode in HuggingFace's terms: decompose, drop nonspacing marks, recompose (Hangul comes back whole).
    steps = [{**bert, "strip_accents": False, "lowercase": False}, {"type": "NFD"},
             {"type": "Replace", "pattern": {"Regex": "\\p{Mn}"}, "content": ""}, {"type": "NFC"}]
    if tokenizer.do_lower_case:
        steps.append({"type": "Lowercase"})
    return {"type": "Sequence", "normalizers": steps}


def write_tokenizer_folder(tokenizer: BertTokenizer, folder: str | os.PathLike) -> tuple[str, ...]:
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"cannot save a tokenizer to {folder}: it is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    added = tokenizer.added_tokens_decoder
    tokens = {token_id: token for token, token_id in tokenizer.vocab.items()}  # the WordPiece vocabulary only
    # a tokenizer.json may keep some of the vocabulary's ids (a [PAD] at 0, say) among its added tokens only
    tokens.update((i, added[i].content) for i in range(max(tokens, default=-1)) if i not in tokens and i in added)
    by_id = sorted(((token, token_id) for token_id, token in tokens.items()), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise UserError("the vocabulary ids are not 0..n-1 without gaps, so they cannot be written as vocab.txt")
    for token, _ in by_id:
        if "\n" in token:
            raise UserError(f"token {token!r} holds a newline and cannot be written to vocab.txt")
    paths = {name: folder / name for name in
             ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")}
    paths["vocab.txt"].write_text("".join(token + "\n" for token, _ in by_id), encoding="utf-8")
    beyond = {token.content: token_id for token_id, token in added.items() if token_id >= len(by_id)}
    if beyond:  # what transformers 4's slow tokenizer reads (it writes the file only when there are some)
        paths["added_tokens.json"] = folder / "added_tokens.json"
        _write_json(paths["added_tokens.json"], beyond)
    elif (folder / "added_tokens.json").is_file():  # a stale one from an earlier save would add tokens back
        (folder / "added_tokens.json").unlink()
    specials = tokenizer.special_tokens_map
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": tokenizer.do_lower_case,
              "strip_accents": tokenizer.strip_accents, "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars,
              "keep_hangul": tokenizer.keep_hangul, "do_basic_tokenize": True, "never_split": None,
              "model_max_length": tokenizer.model_max_length,
              "clean_up_tokenization_spaces": tokenizer.clean_up_tokenization_spaces,
              "max_input_chars_per_word": tokenizer.max_input_chars_per_word,
              "padding_side": tokenizer.padding_side, "truncation_side": tokenizer.truncation_side, **specials,
              "added_tokens_decoder": {str(token_id): token.to_dict() for token_id, token in added.items()}}
    _write_json(paths["tokenizer_config.json"], config)
    _write_json(paths["special_tokens_map.json"], specials)
    single = [{"SpecialToken": {"id": tokenizer.cls_token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
              {"SpecialToken": {"id": tokenizer.sep_token, "type_id": 0}}]
    pair = single + [{"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": tokenizer.sep_token, "type_id": 1}}]
    full = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": token_id, **token.to_dict()} for token_id, token in added.items()],
        "normalizer": _normalizer_json(tokenizer),
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": {
            token: {"id": token, "ids": [tokenizer.convert_tokens_to_ids(token)], "tokens": [token]}
            for token in (tokenizer.cls_token, tokenizer.sep_token)}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": tokenizer._wordpiece_unk, "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": tokenizer.max_input_chars_per_word, "vocab": dict(by_id)},
    }
    _write_json(paths["tokenizer.json"], full)
    return tuple(str(p) for p in paths.values())


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
