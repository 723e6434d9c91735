"""What `GET /metrics` shows, in Prometheus' text format (prometheus-client, part of the [serve] extra).

Each app has its own registry rather than the process-wide default one: two apps in one process (tests, a notebook)
would otherwise share, and double-register, the same metrics. Routes are labelled by their path when it is a route of
the app and "unmatched" otherwise, so that scanners probing random paths cannot grow the label set without end.
"""
from __future__ import annotations

import time
from typing import Any, Callable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The server's counters, histograms and gauges, in a registry of their own."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("bertkit_requests", "HTTP requests answered, by route, method and status code",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("bertkit_request_duration_seconds", "seconds from a request's start to its answer's end",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("bertkit_batch_size", "inputs per forward pass", ["task"], buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.tokens = Counter("bertkit_tokens", "tokens of the inputs admitted, special tokens included", ["task"],
                              registry=self.registry)
        self.queue = Gauge("bertkit_queue_depth", "inputs waiting for the model or in it, all tasks", registry=self.registry)
        self.queue.set_function(queue_depth)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def batched(self, task: str, run_batch: Callable[[list[Any]], Any]) -> Callable[[list[Any]], Any]:
        """`run_batch`, with the size of each batch it runs recorded."""
        histogram = self.batch_size.labels(task)

        def run(items: list[Any]) -> Any:
            histogram.observe(len(items))
            return run_batch(items)

        return run


class RequestMetrics:
    """ASGI middleware: counts each HTTP request and times it, by route, once its answer is sent."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics
        self._paths: set[str] | None = None

    def route(self, scope: dict[str, Any]) -> str:
        if self._paths is None:  # the routes are all added before the first request
            self._paths = {getattr(route, "path", "") for route in scope["app"].routes}
        return scope["path"] if scope["path"] in self._paths else "unmatched"

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]  # no answer started at all counts as the 500 it becomes

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = self.route(scope)
            self.metrics.requests.labels(route, scope["method"], str(status[0])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
