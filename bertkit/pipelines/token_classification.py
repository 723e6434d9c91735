"""Token classification (NER): a text in, its entities out, with character offsets in the original text.

    ner = pipeline("token-classification", model="runs/conll", aggregation_strategy="simple")
    ner("Elon Musk founded Tesla in California.")
    # [{'entity_group': 'PER', 'score': 0.99, 'word': 'elon musk', 'start': 0, 'end': 9}, ...]

aggregation_strategy, as HuggingFace defines them:
- "none": one dict per sub-word token that is not "O" (entity, score, index, word, start, end);
- "simple": adjacent tokens of the same type merge into one entity_group (a B- tag starts a new one);
- "first" / "average" / "max": first the sub-words of each word agree on one tag (the first piece's, the
  average of the pieces' scores, or the piece with the highest score), then words group as in "simple".
Words come from the tokenizer's word_ids() (HuggingFace guesses them from '##'), so a word's pieces
always stay together. `text[start:end]` is the entity as the user wrote it; `word` is the tokens joined.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from bertkit.errors import UserError
from bertkit.pipelines.base import Pipeline

STRATEGIES = ("none", "simple", "first", "average", "max")


def split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") from "B-PER"; a tag without B-/I- counts as a continuation (HuggingFace's get_tag)."""
    if tag.startswith("B-"):
        return "B", tag[2:]
    if tag.startswith("I-"):
        return "I", tag[2:]
    return "I", tag


def group_entities(entities: list[dict], tokens_to_string: Callable[[list[str]], str]) -> list[dict]:
    """Merge adjacent tokens (or words) of the same type into entity groups; a B- starts a new group.
    `tokens_to_string` is the tokenizer's convert_tokens_to_string (the group's word, as HF writes it)."""
    groups: list[list[dict]] = []
    for entity in entities:
        prefix, entity_type = split_tag(entity["entity"])
        if groups and prefix != "B" and split_tag(groups[-1][-1]["entity"])[1] == entity_type:
            groups[-1].append(entity)
        else:
            groups.append([entity])
    return [
        {
            "entity_group": group[0]["entity"].split("-", 1)[-1],
            "score": float(np.mean([e["score"] for e in group])),
            "word": tokens_to_string([e["word"] for e in group]),
            "start": group[0]["start"],
            "end": group[-1]["end"],
        }
        for group in groups
    ]


class TokenClassificationPipeline(Pipeline):
    model_class = "BertForTokenClassification"
    parameters = ("aggregation_strategy", "ignore_labels")

    def preprocess(self, batch: list[Any], **params: Any) -> dict:
        for text in batch:
            if not isinstance(text, str):
                raise UserError(f"token-classification takes a text or a list of texts, got {type(text).__name__}")
        return self.tokenize(batch, return_offsets_mapping=True)

    def postprocess(self, encoded: dict, outputs: Any, batch: list[str], aggregation_strategy: str = "none",
                    ignore_labels: list[str] | None = None, **params: Any) -> list[list[dict]]:
        strategy = str(aggregation_strategy).lower()
        if strategy not in STRATEGIES:
            raise UserError(f"aggregation_strategy must be one of {STRATEGIES}, got {aggregation_strategy!r}")
        ignore = ["O"] if ignore_labels is None else list(ignore_labels)
        id2label = self.model.config.id2label
        logits = outputs.logits.float().cpu().numpy()
        results = []
        for row, text in enumerate(batch):
            shifted = np.exp(logits[row] - logits[row].max(axis=-1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
            ids = encoded["input_ids"][row].tolist()
            word_ids = encoded.word_ids(row)
            tokens = [] if not ids else self.tokenizer.convert_ids_to_tokens(ids)
            # one record per real token (no [CLS]/[SEP]/padding)
            pieces, previous_word = [], None
            for index, word_id in enumerate(word_ids):
                if word_id is None:
                    continue
                start, end = (int(x) for x in encoded["offset_mapping"][row][index])
                word = text[start:end] if ids[index] == self.tokenizer.unk_token_id else tokens[index]
                pieces.append({"scores": probabilities[index], "index": index, "word": word, "start": start,
                               "end": end, "is_subword": word_id == previous_word})
                previous_word = word_id
            if strategy in ("none", "simple"):
                entities = [{"entity": id2label[int(p["scores"].argmax())], "score": float(p["scores"].max()),
                             "index": p["index"], "word": p["word"], "start": p["start"], "end": p["end"]}
                            for p in pieces]
            else:
                entities = [self.aggregate_word(word, strategy) for word in self.words(pieces)]
            if strategy != "none":
                entities = group_entities(entities, self.tokenizer.convert_tokens_to_string)
            results.append([e for e in entities if e.get("entity", e.get("entity_group")) not in ignore])
        return results

    @staticmethod
    def words(pieces: list[dict]) -> list[list[dict]]:
        words: list[list[dict]] = []
        for piece in pieces:
            if piece["is_subword"] and words:
                words[-1].append(piece)
            else:
                words.append([piece])
        return words

    def aggregate_word(self, pieces: list[dict], strategy: str) -> dict:
        """One tag for a whole word from its pieces' scores (first / average / max)."""
        if strategy == "first":
            scores = pieces[0]["scores"]
        elif strategy == "max":
            scores = max(pieces, key=lambda p: p["scores"].max())["scores"]
        else:  # average
            scores = np.nanmean(np.stack([p["scores"] for p in pieces]), axis=0)
        best = int(scores.argmax())
        return {"entity": self.model.config.id2label[best], "score": float(scores[best]),
                "word": self.tokenizer.convert_tokens_to_string([p["word"] for p in pieces]),
                "start": pieces[0]["start"], "end": pieces[-1]["end"]}
