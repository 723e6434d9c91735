"""What each task's request asks of the model, checked, tokenized and budgeted before anything is queued.

One `prepare_<task>(service, body) -> Work` per task. They share `prepare_texts` (count the inputs, check or
cut each against the token limit, budget the tokens of the whole request, one batcher `Item` per input) and
differ only in what is special to the task (fill-mask's masks and top_k, QA's two limits, ...). Each task of
`bertkit.tasks.registry` names its function here (`TaskSpec.prepare`) and its request schema; the app makes one
POST route of each and runs these in a worker thread, off the event loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bertkit.serve import schemas
from bertkit.serve.service import (
    ATTENTION_MAX_TOKENS,
    FILL_MASK_CANDIDATE_BYTES,
    FILL_MASK_SEQUENCES,
    QA_CONTEXT_WINDOWS,
    Item,
    ModelService,
    ServeError,
)

# an attention weight in the JSON: "0.1234," (attention.DECIMALS digits)
ATTENTION_NUMBER_BYTES = 8


@dataclass
class Work:
    """A request made ready: the batcher's inputs with their token counts, or the results themselves
    when the task runs no model (tokenize)."""

    items: list[Item] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    results: list[Any] | None = None


def prepare_texts(
    service: ModelService,
    texts: list[str],
    pairs: list[str] | None = None,
    *,
    truncate: bool | None = None,
    limit: int | None = None,
    params: tuple = (),
    what: str = "texts",
) -> Work:
    """The steps every text task shares: count, fit each input to the token limit, budget the request."""
    service.check_count(texts, what)
    texts, pairs, lengths = service.fit(texts, pairs, truncate=truncate, limit=limit)
    service.check_total(lengths)
    payloads = texts if pairs is None else list(zip(texts, pairs))
    return Work([Item(payload, params) for payload in payloads], lengths)


def prepare_tokenize(service: ModelService, body: schemas.TokenizeRequest) -> Work:
    texts = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    pairs = None if body.text_pair is None else ([body.text_pair] if isinstance(body.text_pair, str) else body.text_pair)
    if pairs is not None and len(pairs) != len(texts):
        service.check_count(texts)
        raise ServeError(422, "invalid_request", f"{len(texts)} texts but {len(pairs)} text_pair values; send one per text")
    work = prepare_texts(service, texts, pairs, truncate=True)  # tokenizing shows the cut, never refuses
    cut = [item.payload for item in work.items]
    texts, pairs = ([t for t, _ in cut], [p for _, p in cut]) if pairs is not None else (cut, None)
    return Work(results=service.tokenize(texts, pairs))


def prepare_embed(service: ModelService, body: schemas.EmbedRequest) -> Work:
    params = tuple((k, v) for k, v in (("pooling", body.pooling), ("normalize", body.normalize)) if v is not None)
    return prepare_texts(service, body.texts(), truncate=body.truncate, params=params)


def prepare_fill_mask(service: ModelService, body: schemas.FillMaskRequest) -> Work:
    texts, mask = body.texts(), service.tokenizer.mask_token
    service.check_top_k(body.top_k, "predictions per mask")
    service.check_masks(texts)  # before tokenizing: 510 masks x top_k 100 is refused at once
    work = prepare_texts(service, texts, truncate=body.truncate,
                         params=(("top_k", body.top_k), ("sequences", FILL_MASK_SEQUENCES)))
    for index, item in enumerate(work.items):
        if mask not in item.payload:
            cut = f" once cut to {service.limits.max_length} tokens" if mask in texts[index] else ""
            raise ServeError(422, "no_mask", f"text {index} has no {mask}{cut}: put {mask} where the word to predict goes")
    # each mask gets top_k candidates; the best few carry the whole text back as their `sequence`
    with_text = min(body.top_k, FILL_MASK_SEQUENCES)
    estimate = sum(item.payload.count(mask) * (body.top_k * FILL_MASK_CANDIDATE_BYTES + with_text * len(item.payload))
                   for item in work.items)
    service.check_response(estimate, "ask for a smaller top_k, fewer masks or fewer texts")
    return work


def prepare_next_sentence(service: ModelService, body: schemas.NextSentenceRequest) -> Work:
    pairs = body.pairs()
    return prepare_texts(service, [p.text for p in pairs], [p.text_pair for p in pairs], truncate=body.truncate,
                         what="sentence pairs")


def prepare_classify(service: ModelService, body: schemas.ClassifyRequest) -> Work:
    return prepare_texts(service, body.texts(), truncate=body.truncate)


def prepare_ner(service: ModelService, body: schemas.NerRequest) -> Work:
    return prepare_texts(service, body.texts(), truncate=body.truncate,
                         params=(("aggregation_strategy", body.aggregation_strategy),))


def prepare_qa(service: ModelService, body: schemas.QaRequest) -> Work:
    questions = body.questions()
    service.check_count(questions, "questions")
    service.check_top_k(body.top_k, "answers per question")
    limit = service.limits.max_length
    asked, _, asked_lengths = service.fit([q.question for q in questions], truncate=False, limit=limit // 2)
    # the pipeline windows a long context itself; bound the work to a few windows
    contexts, _, lengths = service.fit([q.context for q in questions], truncate=False, limit=limit * QA_CONTEXT_WINDOWS)
    service.check_total([a + c for a, c in zip(asked_lengths, lengths)])
    params = (("top_k", body.top_k),)
    return Work([Item({"question": q, "context": c}, params) for q, c in zip(asked, contexts)], lengths)


def prepare_attention(service: ModelService, body: schemas.AttentionRequest) -> Work:
    if body.layer is not None and not -service.num_layers <= body.layer < service.num_layers:
        raise ServeError(422, "invalid_request", f"layer {body.layer} does not exist: the model has layers 0..{service.num_layers - 1}")
    pairs = None if body.text_pair is None else [body.text_pair]
    limit = min(service.limits.max_length, ATTENTION_MAX_TOKENS)
    work = prepare_texts(service, [body.inputs], pairs, truncate=body.truncate, limit=limit,
                         params=(("layer", body.layer),) if body.layer is not None else ())
    payload = work.items[0].payload
    work.items[0] = work.items[0]._replace(payload=payload if pairs else (payload, None))
    layers = 1 if body.layer is not None else service.num_layers
    service.check_response(layers * service.num_heads * work.lengths[0] ** 2 * ATTENTION_NUMBER_BYTES,
                           "ask for one layer, or a shorter text")
    return work
