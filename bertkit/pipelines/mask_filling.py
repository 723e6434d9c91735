"""Fill-mask: what the masked-language-model head predicts for each [MASK].

    unmasker = pipeline("fill-mask", model="path/to/folder")
    unmasker("Love is like the [MASK]. You can't see it but you can feel it", top_k=3)
    # [{'score': 0.75, 'token': 3103, 'token_str': 'sun', 'sequence': "love is like the sun. ..."}, ...]

Outputs are HuggingFace's: one list of top_k dicts per text; with several masks in one text, one
list per mask (each mask scored on its own, as HuggingFace does), and the sequences keep the special
tokens so the other masks stay visible. Also the `bertkit fill-mask` command.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch

from bertkit.errors import UserError
from bertkit.pipelines.base import Pipeline


def prediction_logits(outputs: Any) -> torch.Tensor:
    """MLM logits of a BertForMaskedLM (`logits`) or a BertForPreTraining (`prediction_logits`) output."""
    logits = getattr(outputs, "logits", None)
    return logits if logits is not None else outputs.prediction_logits


class FillMaskPipeline(Pipeline):
    model_class = "BertForMaskedLM"
    parameters = ("top_k", "targets", "sequences")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.tokenizer, "mask_token_id", None) is None:
            raise UserError("the tokenizer has no mask token; fill-mask needs a vocabulary with [MASK]")

    def shape(self, results: list[Any], inputs: Any, is_batch: bool, params: dict[str, Any]) -> Any:
        # HuggingFace's convention: a list holding one text gives that text's result, not a list of one
        if is_batch and len(results) == 1:
            return results[0]
        return super().shape(results, inputs, is_batch, params)

    def preprocess(self, batch: list[str], **params: Any) -> dict:
        for text in batch:
            if not isinstance(text, str):
                raise UserError(f"fill-mask takes a text or a list of texts, got {type(text).__name__}")
        # no truncation: cutting the text could cut off the [MASK] we are asked about
        encoded = self.tokenize(batch, truncation=False, max_length=None)
        has_mask = (encoded["input_ids"] == self.tokenizer.mask_token_id).any(dim=1)
        for text, ok in zip(batch, has_mask.tolist()):
            if not ok:
                mask = self.tokenizer.mask_token
                raise UserError(f"no {mask} token in {text!r}; put {mask} where the word to predict goes")
        if encoded["input_ids"].shape[1] > self.max_length:
            raise UserError(
                f"a text is {encoded['input_ids'].shape[1]} tokens long but the model takes at most "
                f"{self.max_length}; shorten it around the {self.tokenizer.mask_token}"
            )
        return encoded

    def target_ids(self, targets: str | list[str]) -> list[int]:
        """Vocabulary ids of the target words; a word outside the vocabulary stands for its first piece."""
        targets = [targets] if isinstance(targets, str) else list(targets)
        vocab = self.tokenizer.vocab
        ids: list[int] = []
        for target in targets:
            if target in vocab:
                ids.append(vocab[target])
                continue
            pieces = self.tokenizer.tokenize(target)
            if not pieces:
                warnings.warn(f"target {target!r} gives no token with this vocabulary; ignoring it")
                continue
            warnings.warn(f"target {target!r} is not in the vocabulary; scoring its first piece {pieces[0]!r}")
            ids.append(self.tokenizer.convert_tokens_to_ids(pieces[0]))
        ids = sorted(set(ids))
        if not ids:
            raise UserError(f"none of the targets {targets} can be scored with this vocabulary")
        return ids

    def postprocess(
        self, encoded: dict, outputs: Any, batch: list[str], top_k: int = 5, targets: Any = None,
        sequences: int | None = None, **params: Any
    ) -> list[list[dict]]:
        """`sequences`: how many of each mask's best candidates carry the filled-in text as `sequence` (None: all,
        as HF does); decoding a long text per candidate is most of the work and the size of a large answer."""
        if top_k < 1:
            raise UserError(f"top_k must be at least 1, got {top_k}")
        target_ids = torch.tensor(self.target_ids(targets)) if targets is not None else None
        if target_ids is not None:
            top_k = min(top_k, len(target_ids))
        logits = prediction_logits(outputs).float().cpu()
        results = []
        for row, input_ids in enumerate(encoded["input_ids"]):
            input_ids = input_ids[encoded["attention_mask"][row].bool()]  # drop the padding
            mask_positions = (input_ids == self.tokenizer.mask_token_id).nonzero().squeeze(-1)
            probs = logits[row, mask_positions].softmax(dim=-1)
            if target_ids is not None:
                probs = probs[:, target_ids]
            scores, predictions = probs.topk(top_k)
            single_mask = len(mask_positions) == 1
            per_mask = []
            for position, mask_scores, mask_predictions in zip(mask_positions, scores.tolist(), predictions.tolist()):
                candidates = []
                for rank, (score, prediction) in enumerate(zip(mask_scores, mask_predictions)):
                    token = int(target_ids[prediction]) if target_ids is not None else prediction
                    candidate = {"score": score, "token": token, "token_str": self.tokenizer.decode([token])}
                    if sequences is None or rank < sequences:
                        filled = input_ids.clone()
                        filled[position] = token
                        candidate["sequence"] = self.tokenizer.decode(filled.tolist(), skip_special_tokens=single_mask)
                    candidates.append(candidate)
                per_mask.append(candidates)
            results.append(per_mask[0] if single_mask else per_mask)
        return results
