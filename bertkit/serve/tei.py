"""text-embeddings-inference's (TEI's) answer shapes, made from what bertkit's tasks compute.

TEI answers bare JSON lists where bertkit answers `{"results": [...]}`, and describes its model in `/info` with keys
of its own. Nothing here runs a model or checks a budget: the requests go through `bertkit.serve.prepare` and the
tasks' batchers like any other, and these functions only reshape the results (docs/serving.md, "TEI and OpenAI").
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bertkit.pipelines.feature_extraction import folder_defaults
from bertkit.serve import schemas
from bertkit.serve.service import ServeError

CLASSIFIERS = ("BertForSequenceClassification",)  # TEI's model_type "classifier"; every other head is "embedding"


def tei_answer(service: Any, task: str, body: Any, results: list[Any]) -> Any:
    """The answer TEI gives on the same path: /embed a bare list of vectors, /tokenize a list of token lists."""
    if task == "tokenize":
        texts = with_prompt(service.folder, _as_list(body.inputs), body.prompt_name)
        return tei_tokens(texts, results, body.add_special_tokens is not False)
    return results


def with_prompt(folder: Path, texts: list[str], prompt_name: str | None) -> list[str]:
    """TEI's `prompt_name`: the folder's prompt of that name before each text."""
    if prompt_name is None:
        return texts
    known = prompts(folder)
    if prompt_name not in known:
        have = f"it has {', '.join(sorted(known))}" if known else "it has none"
        raise ServeError(422, "invalid_request", f"prompt_name {prompt_name!r} is not a prompt of this model's "
                                                 f"config_sentence_transformers.json ({have})")
    return [known[prompt_name] + text for text in texts]


def tei_tokens(texts: list[str], results: list[dict[str, Any]], add_special_tokens: bool = True) -> list[list[dict]]:
    """bertkit's tokenize results as TEI's `SimpleToken`s: id, text (the span of the input; the token itself for a
    special token), special, start/stop (character offsets; null for a special token)."""
    answer = []
    for text, result in zip(texts, results):
        tokens = []
        for token, token_id, (start, stop) in zip(result["tokens"], result["input_ids"], result["offsets"]):
            special = start == stop  # only [CLS], [SEP] and [PAD] cover no characters
            if special and not add_special_tokens:
                continue
            tokens.append({"id": token_id, "text": token if special else text[start:stop], "special": special,
                           "start": None if special else start, "stop": None if special else stop})
        answer.append(tokens)
    return answer


def predict_answer(body: schemas.PredictRequest, results: list[list[dict]]) -> Any:
    """TEI's /predict: one input (a text or a pair) answers its label list, a batch a list of them."""
    return results[0] if predict_is_single(body) else results


def predict_is_single(body: schemas.PredictRequest) -> bool:
    inputs = body.inputs
    return isinstance(inputs, str) or (len(inputs) == 2 and all(isinstance(text, str) for text in inputs))


def predict_sequences(body: schemas.PredictRequest) -> list[list[str]]:
    """Each input as [text] or [text, text_pair]. As in TEI, a list of exactly two texts is one pair (TEI's untagged
    `Single(Pair)` is tried before `Batch`): send [["a"], ["b"]] for two texts."""
    inputs = body.inputs
    if predict_is_single(body):
        return [[inputs] if isinstance(inputs, str) else list(inputs)]
    return [[text] if isinstance(text, str) else list(text) for text in inputs]


def rerank_answer(body: schemas.RerankRequest, results: list[list[dict]]) -> list[dict[str, Any]]:
    """TEI's /rerank: {index, score[, text]} per text, best first."""
    ranked = [{"index": index, "score": labels[0]["score"], **({"text": body.texts[index]} if body.return_text else {})}
              for index, labels in enumerate(results)]
    return sorted(ranked, key=lambda entry: entry["score"], reverse=True)


def tei_info(service: Any, *, max_queue: int, tokenization_workers: int) -> dict[str, Any]:
    """TEI's /info keys, which bertkit's /info carries beside its own (none of the names clash)."""
    from bertkit import __version__

    config = service.model.config
    if service.architecture in CLASSIFIERS:
        id2label = {str(i): label for i, label in sorted(config.id2label.items())}
        model_type: dict[str, Any] = {"classifier": {"id2label": id2label, "label2id": {v: int(k) for k, v in id2label.items()}}}
    else:
        model_type = {"embedding": {"pooling": folder_defaults(service.folder)["pooling"]}}
    limits, dtype = service.limits, next(service.model.parameters()).dtype
    return {
        "model_id": str(service.folder), "model_sha": None, "model_dtype": str(dtype).removeprefix("torch."),
        "model_type": model_type, "max_concurrent_requests": max_queue, "max_input_length": limits.max_length,
        "max_batch_tokens": limits.max_total_tokens, "max_batch_requests": None, "max_client_batch_size": limits.max_texts,
        "auto_truncate": limits.truncate, "tokenization_workers": tokenization_workers, "version": __version__,
        "sha": None, "docker_label": None, "prompts": sorted(prompts(service.folder)),
    }


def prompts(folder: Path) -> dict[str, str]:
    """The folder's sentence-transformers prompts (`config_sentence_transformers.json`), TEI's `prompt_name`s."""
    path = Path(folder) / "config_sentence_transformers.json"
    if not path.is_file():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("prompts") or {}
    except (ValueError, AttributeError):  # a broken settings file means no prompts, as sentence-transformers reads it
        return {}
    return {str(name): str(text) for name, text in found.items()} if isinstance(found, dict) else {}


def _as_list(inputs: Any) -> list[Any]:
    return [inputs] if isinstance(inputs, str) else list(inputs)
