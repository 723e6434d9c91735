"""Schema fuzzing (issue 12): schemathesis generates requests for every endpoint of the server's own OpenAPI
document, valid and invalid, a bounded number per endpoint: no answer is a 500, none is slower than a bound,
and /health answers after each. Two real servers on loopback: a pretraining head and a QA head.
"""
from __future__ import annotations

import time

import httpx
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi) is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a dev extra")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from test_serve import save_tiny  # noqa: E402

from bertkit.model import BertForPreTraining, BertForQuestionAnswering  # noqa: E402
from bertkit.serve.app import background_server, create_app  # noqa: E402
from bertkit.serve.service import Limits, ModelService  # noqa: E402

EXAMPLES = 10  # per endpoint and server: the whole file runs in well under a minute on one core
SLOWEST_S = 5.0  # a tiny model at 64 tokens answers in milliseconds; seconds mean something queued or spun


@pytest.fixture(scope="module", params=[BertForPreTraining, BertForQuestionAnswering], ids=["lm", "qa"])
def server(request, tmp_path_factory, minilm_dir):
    folder = save_tiny(tmp_path_factory.mktemp(request.param.__name__), request.param, minilm_dir)
    app = create_app(ModelService(folder, Limits(max_length=64)), max_wait_ms=1)
    with background_server(app) as url:
        yield url


def operations(url: str) -> list:
    loaded = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_gets_a_500_or_a_slow_answer(server, mode):
    ran: dict[str, int] = {}
    for operation in operations(server):
        if mode is GenerationMode.NEGATIVE and operation.method.upper() != "POST":
            continue  # a GET without parameters has no invalid form

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def check(case):
            started = time.monotonic()
            response = case.call(base_url=server, timeout=30)
            took = time.monotonic() - started
            case.validate_response(response, checks=[not_a_server_error])
            assert took < SLOWEST_S, f"{case.method} {case.path} took {took:.1f} s"
            assert httpx.get(f"{server}/health", timeout=5).json() == {"status": "ok"}
            ran[operation.label] = ran.get(operation.label, 0) + 1

        check()
    assert {"POST /embed", "POST /tokenize", "POST /attention"} <= set(ran)
