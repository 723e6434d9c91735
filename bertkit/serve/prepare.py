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

from bertkit.serve import schemas, tei
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
# a float of a vector in the JSON: "-0.012345678," (what Python's repr of a float32 value mostly takes)
VECTOR_NUMBER_BYTES = 14


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
    texts = tei.with_prompt(service.folder, [body.inputs] if isinstance(body.inputs, str) else body.inputs, body.prompt_name)
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
    texts = tei.with_prompt(service.folder, body.texts(), body.prompt_name)
    return prepare_texts(service, texts, truncate=body.truncate, params=params)


def prepare_embed_all(service: ModelService, body: schemas.EmbedAllRequest) -> Work:
    """TEI's /embed_all: every token's vector, on the embed task's batcher."""
    texts = tei.with_prompt(service.folder, [body.inputs] if isinstance(body.inputs, str) else body.inputs, body.prompt_name)
    work = prepare_texts(service, texts, truncate=body.truncate, params=(("pooling", "none"), ("normalize", False)))
    service.check_response(sum(work.lengths) * service.model.config.hidden_size * VECTOR_NUMBER_BYTES,
                           "send fewer or shorter texts")
    return work


def prepare_openai_embeddings(service: ModelService, body: schemas.OpenAIEmbeddingsRequest) -> Work:
    hidden = service.model.config.hidden_size
    if body.dimensions is not None and body.dimensions != hidden:
        raise ServeError(422, "invalid_request", f"dimensions {body.dimensions}: this model's vectors have {hidden}; "
                                                 "leave dimensions out")
    return prepare_texts(service, [body.input] if isinstance(body.input, str) else body.input)


def prepare_predict(service: ModelService, body: schemas.PredictRequest) -> Work:
    """TEI's /predict: texts or [text, text_pair] pairs on the classify task's batcher."""
    sequences = tei.predict_sequences(body)
    sizes = {len(sequence) for sequence in sequences}
    if not sizes <= {1, 2} or len(sizes) > 1:
        raise ServeError(422, "invalid_request", "inputs: send texts, or [text, text_pair] pairs, not a mix of both "
                                                 "nor lists of another length")
    pairs = [sequence[1] for sequence in sequences] if sizes == {2} else None
    return classify_work(service, [sequence[0] for sequence in sequences], pairs, body.truncate, body.raw_scores)


def prepare_rerank(service: ModelService, body: schemas.RerankRequest) -> Work:
    """TEI's /rerank: the query paired with each text, scored by a one-output cross-encoder."""
    if service.model.config.num_labels != 1:
        raise ServeError(404, "task_not_supported", f"rerank needs a cross-encoder with one output (num_labels 1); "
                                                    f"this model has {service.model.config.num_labels} labels: use /predict")
    return classify_work(service, [body.query] * len(body.texts), list(body.texts), body.truncate, body.raw_scores)


def classify_work(service: ModelService, texts: list[str], pairs: list[str] | None, truncate: bool | None,
                  raw_scores: bool) -> Work:
    work = prepare_texts(service, texts, pairs, truncate=truncate, params=(("function_to_apply", "none"),) if raw_scores else (),
                         what="texts" if pairs is None else "sentence pairs")
    if pairs is not None:  # the pipeline's pair input
        work.items = [item._replace(payload={"text": item.payload[0], "text_pair": item.payload[1]}) for item in work.items]
    return work


def prepare_decode(service: ModelService, body: schemas.DecodeRequest) -> Work:
    """TEI's /decode: token ids back to text (no model)."""
    rows = body.ids if body.ids and isinstance(body.ids[0], list) else [body.ids]
    service.check_count(rows, "id lists")
    size = len(service.tokenizer)
    for index, row in enumerate(rows):
        if len(row) > service.limits.max_length:
            raise ServeError(413, "text_too_long", f"id list {index} holds {len(row)} ids; the limit is "
                                                   f"{service.limits.max_length} (--max-length)")
        wrong = next((i for i in row if not 0 <= i < size), None)
        if wrong is not None:
            raise ServeError(422, "invalid_input", f"id list {index} holds {wrong}, not an id of the {size}-token vocabulary")
    return Work(results=[service.tokenizer.decode(row, skip_special_tokens=body.skip_special_tokens) for row in rows])


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
