"""Named entity recognition data: CoNLL / JSONL -> sentences of (words, tags) -> sub-word features.

    sentences = read_ner_file("train.txt", tag_column=-1)        # CoNLL: one token per line
    label2id, id2label = build_tag_maps(sentences)
    features = encode_sentences(sentences, tokenizer, label2id, max_length=128)
    ...
    tags = word_predictions(logits_of_one_feature, features[i]["word_ids"], id2label, n_words)

Words are tokenized with `is_split_into_words=True`; the tokenizer's `word_ids()` say which word each
sub-word comes from. The word's tag goes on its first sub-word and -100 (ignored by the loss) on the rest,
as seed 004 shows with "Elon Musk founded Tesla in California ." — or, with `label_all_subwords=True`,
on every sub-word (a B- tag continues as I- on the later pieces, as HuggingFace's run_ner does).
BIO and IOBES tags both work: the tag set is whatever the data uses, and the entity metric
(`bertkit.tasks.metrics.entity_metrics`) reads both.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bertkit.errors import UserError
from bertkit.files import iter_jsonl, open_text

# a NER tag: O, or a position prefix and an entity type; the prefixes of IO, BIO/IOB, IOBES and BILOU
NER_TAG = re.compile(r"O|[BIESLU]-\S+")


@dataclass
class NerSentence:
    words: list[str]
    tags: list[str] = field(default_factory=list)  # empty when the sentence is to be predicted


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1) -> list[NerSentence]:
    """CoNLL columns split on white space (tabs too); blank lines end sentences; -DOCSTART- lines skipped.

    `tag_column=-1` is the last column (CoNLL-2003's NER tag); a file with a single column gives words only.
    """
    path = Path(path)
    sentences: list[NerSentence] = []
    words: list[str] = []
    tags: list[str] = []

    def close() -> None:
        if words:
            sentences.append(NerSentence(list(words), list(tags)))
        words.clear()
        tags.clear()

    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.lstrip("\ufeff").rstrip("\r\n")
            if not line.strip():
                close()
                continue
            columns = line.split("\t") if "\t" in line else line.split()
            if columns[0] == "-DOCSTART-":
                close()
                continue
            if len(columns) == 1:
                words.append(columns[0])
                continue
            try:
                word, tag = columns[token_column], columns[tag_column]
            except IndexError:
                raise UserError(f"{path.name} line {number} has {len(columns)} columns, so there is no column "
                                 f"{token_column if abs(token_column) >= len(columns) else tag_column}; "
                                 f"choose --token-column / --tag-column (0-based, -1 = last)") from None
            if not NER_TAG.fullmatch(tag) and line.startswith("#"):
                continue  # a comment line (CoNLL-U, KLUE): "# text = ..."
            if not NER_TAG.fullmatch(tag):  # plain text or another column: refuse instead of learning "France." as a label
                raise UserError(f"{path} line {number}: {tag[:40]!r} (column {tag_column}) is not a NER tag: CoNLL needs "
                                 "one token per line and a tag such as O, B-PER, I-LOC (IO, BIO/IOB, IOBES or BILOU); "
                                 "choose the column with --tag-column")
            words.append(word)
            tags.append(tag)
    close()
    if not sentences:
        raise UserError(f"{path.name} holds no sentences: CoNLL needs one token per line, blank lines between sentences")
    for i, sentence in enumerate(sentences):
        if sentence.tags and len(sentence.tags) != len(sentence.words):
            raise UserError(f"{path.name}: sentence {i + 1} has tags on some lines only; tag every token")
    return sentences


def read_ner_jsonl(path: str | Path, tokens_key: str | None = None, tags_key: str | None = None) -> list[NerSentence]:
    """One JSON object per line with a word list and a tag list of the same length.
    Keys default to the first found of tokens/words and tags/ner_tags/labels."""
    path = Path(path)
    sentences = []
    with open_text(path) as f:
        for number, row in iter_jsonl(f, path.name):
            words_key = tokens_key or next((k for k in ("tokens", "words") if k in row), None)
            labels_key = tags_key or next((k for k in ("tags", "ner_tags", "labels") if k in row), None)
            if words_key not in row:
                raise UserError(f"{path.name} line {number}: no word list (keys: {sorted(row)}); "
                                 "name it with --tokens-key")
            words = [str(w) for w in row[words_key]]
            tags = [str(t) for t in row[labels_key]] if labels_key in row else []
            if tags and len(tags) != len(words):
                raise UserError(f"{path.name} line {number}: {len(words)} words but {len(tags)} tags")
            sentences.append(NerSentence(words, tags))
    if not sentences:
        raise UserError(f"{path.name} is empty: it needs one JSON object per line")
    return sentences


def read_ner_file(path: str | Path, token_column: int = 0, tag_column: int = -1) -> list[NerSentence]:
    """JSONL for .jsonl/.json files, CoNLL for everything else."""
    name = Path(path).name.lower().removesuffix(".xz").removesuffix(".gz")
    if name.endswith((".jsonl", ".json")):
        return read_ner_jsonl(path)
    return read_conll(path, token_column, tag_column)


def read_task_file(path: str | Path, settings: dict[str, Any], require_labels: bool = True) -> list[NerSentence]:
    """The sentences of a file, with the columns the model was fine-tuned with (`bertkit_task.json` settings)."""
    return read_ner_file(path, settings.get("token_column", 0), settings.get("tag_column", -1))


def detect_scheme(tags: Sequence[str]) -> str:
    """"IOBES" when the tags use E-/S- prefixes, else "BIO"."""
    return "IOBES" if any(t[:2] in ("E-", "S-") for t in tags) else "BIO"


def build_tag_maps(sentences: Sequence[NerSentence]) -> tuple[dict[str, int], dict[int, str]]:
    """label2id / id2label: "O" first, then entity types in order, B before I (before E, S)."""
    distinct = {t for s in sentences for t in s.tags}
    if not distinct:
        raise UserError("the training sentences carry no tags; check --tag-column")
    order = {"B": 0, "I": 1, "E": 2, "S": 3}
    ordered = sorted(distinct, key=lambda t: (t != "O", t[2:], order.get(t[:1], 9), t))
    return {t: i for i, t in enumerate(ordered)}, {i: t for i, t in enumerate(ordered)}


def inside_tag(tag: str) -> str:
    """The tag later sub-words of a word carry under label_all_subwords: B-X becomes I-X (as HuggingFace's
    run_ner does), so a word never holds two entity starts; other tags stay as they are."""
    return "I-" + tag[2:] if tag.startswith("B-") else tag


def align_labels(word_ids: Sequence[int | None], word_tags: Sequence[str], label2id: dict[str, int],
                 label_all_subwords: bool = False) -> list[int]:
    """Sub-word labels from word tags: the first piece of a word gets its tag, special tokens -100, later
    pieces -100 (or the word's inside tag with label_all_subwords)."""
    labels, previous = [], None
    for word_id in word_ids:
        if word_id is None:
            labels.append(-100)
        elif word_id != previous:
            labels.append(_tag_id(word_tags[word_id], label2id))
        elif label_all_subwords:
            tag = inside_tag(word_tags[word_id])
            labels.append(label2id[tag] if tag in label2id else _tag_id(word_tags[word_id], label2id))
        else:
            labels.append(-100)
        previous = word_id
    return labels


def _tag_id(tag: str, label2id: dict[str, int]) -> int:
    if tag not in label2id:
        raise UserError(f"tag {tag!r} was not seen in training; known tags: {list(label2id)}")
    return label2id[tag]


def encode_sentences(
    sentences: Sequence[NerSentence],
    tokenizer: Any,
    label2id: dict[str, int] | None = None,
    max_length: int = 128,
    label_all_subwords: bool = False,
) -> list[dict[str, Any]]:
    """One feature per sentence: model inputs, `labels` (when the sentences have tags) and `word_ids`
    (to read word-level predictions back). Words cut off by max_length are predicted "O"."""
    encoded = tokenizer([s.words for s in sentences], is_split_into_words=True, truncation=True, max_length=max_length)
    features = []
    for i, sentence in enumerate(sentences):
        feature = {k: encoded[k][i] for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoded}
        feature["word_ids"] = list(encoded.word_ids(i))
        if sentence.tags and label2id is not None:
            feature["labels"] = align_labels(feature["word_ids"], sentence.tags, label2id, label_all_subwords)
        features.append(feature)
    return features


def word_predictions(logits: np.ndarray, word_ids: Sequence[int | None], id2label: dict[int, str],
                     n_words: int) -> list[str]:
    """Word-level tags from one feature's token logits: each word takes its first sub-word's prediction."""
    tags = ["O"] * n_words
    seen = set()
    predicted = np.asarray(logits).argmax(-1)
    for position, word_id in enumerate(word_ids):
        if word_id is None or word_id in seen or position >= len(predicted):
            continue
        seen.add(word_id)
        tags[word_id] = id2label[int(predicted[position])]
    return tags
