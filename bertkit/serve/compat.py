"""The routes existing clients expect: text-embeddings-inference's (TEI's) and OpenAI's, and Prometheus' /metrics.

They are other doors to bertkit's tasks, not tasks of their own: /embed_all and /v1/embeddings run on the embed
task's batcher, /predict and /rerank on classify's, /decode answers while it is prepared as /tokenize does. Each goes
through `routes.task_work` (admission, `bertkit.serve.prepare`'s checks and budgets, the batcher, the deadline), so
every limit and error of bertkit's own routes holds here too; only the answer's shape is the other API's. TEI's
/embed, /tokenize and /info share bertkit's paths (`schemas.EitherApi`, `tei.tei_info`). docs/serving.md says which
body gets which answer.
"""
from __future__ import annotations

import base64
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from bertkit.serve import prepare, routes, schemas, tei


async def embed_all(request: Request, body: schemas.EmbedAllRequest) -> Response:
    work = await routes.task_work(request, "embed", body, prepare.prepare_embed_all)
    if work.results is None:
        return Response(status_code=routes.CLIENT_GONE)
    # the pipeline gives HuggingFace's [1, tokens, hidden] per text; TEI's answer is [tokens, hidden] per text
    return await routes.answer(routes.serving(request), [tokens[0] for tokens in work.results])


async def predict(request: Request, body: schemas.PredictRequest) -> Response:
    work = await routes.task_work(request, "classify", body, prepare.prepare_predict)
    if work.results is None:
        return Response(status_code=routes.CLIENT_GONE)
    return await routes.answer(routes.serving(request), tei.predict_answer(body, work.results))


async def rerank(request: Request, body: schemas.RerankRequest) -> Response:
    work = await routes.task_work(request, "classify", body, prepare.prepare_rerank)
    if work.results is None:
        return Response(status_code=routes.CLIENT_GONE)
    return await routes.answer(routes.serving(request), tei.rerank_answer(body, work.results))


async def decode(request: Request, body: schemas.DecodeRequest) -> Response:
    work = await routes.task_work(request, "tokenize", body, prepare.prepare_decode)
    return await routes.answer(routes.serving(request), work.results)


async def openai_embeddings(request: Request, body: schemas.OpenAIEmbeddingsRequest) -> Response:
    """OpenAI's embeddings answer; base64 is the little-endian float32 bytes of each vector, as OpenAI sends it."""
    work = await routes.task_work(request, "embed", body, prepare.prepare_openai_embeddings)
    if work.results is None:
        return Response(status_code=routes.CLIENT_GONE)
    if body.encoding_format == "base64":
        vectors: list[Any] = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii") for v in work.results]
    else:
        vectors = work.results
    tokens = sum(work.lengths)
    return await routes.answer(routes.serving(request), {
        "object": "list",
        "data": [{"object": "embedding", "index": index, "embedding": vector} for index, vector in enumerate(vectors)],
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


async def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(routes.serving(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


TEI_ROUTES: list[tuple[str, Callable, str]] = [
    ("/embed_all", embed_all, "TEI: every token's vector, [texts][tokens][hidden]"),
    ("/predict", predict, "TEI: labels and scores of texts or [text, text_pair] pairs (sequence classifiers)"),
    ("/rerank", rerank, "TEI: texts ranked by relevance to a query (one-output cross-encoders)"),
    ("/decode", decode, "TEI: token ids back to text"),
]


# the task each route runs on: a model without it answers 404 there, and /docs leaves the route out
ROUTE_TASKS = {"/embed_all": "embed", "/predict": "classify", "/rerank": "classify", "/decode": "tokenize"}


def add_compat_routes(app: FastAPI, served: list[str]) -> None:
    for path, endpoint, summary in TEI_ROUTES:
        app.add_api_route(path, endpoint, methods=["POST"], tags=["text-embeddings-inference"], summary=summary,
                          responses=routes.ERROR_RESPONSES, include_in_schema=ROUTE_TASKS[path] in served)
    app.add_api_route("/v1/embeddings", openai_embeddings, methods=["POST"], tags=["openai"], responses=routes.ERROR_RESPONSES,
                      summary="OpenAI's embeddings API (the openai client's embeddings.create)")
    app.add_api_route("/metrics", metrics, methods=["GET"], tags=["server"],
                      summary="Prometheus: requests and latency per route, queue depth, batch sizes, tokens")
