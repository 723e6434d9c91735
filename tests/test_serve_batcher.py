"""The dynamic batcher on its own (no model, no HTTP): gathering, length grouping, isolation, draining."""
from __future__ import annotations

import asyncio
import threading

import pytest

from bertkit.serve.batcher import DynamicBatcher, group_by_length


class Recorder:
    """A batch function that records each batch it gets and answers each input with a function of it."""

    def __init__(self, fail_on: str | None = None, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.fail_on = fail_on
        self.delay = delay

    def __call__(self, payloads: list[str]) -> list[str]:
        self.batches.append(list(payloads))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            threading.Event().wait(self.delay)
        if self.fail_on is not None and self.fail_on in payloads:
            raise ValueError(f"cannot handle {self.fail_on!r}")
        return [text.upper() for text in payloads]


def run(coroutine):
    return asyncio.run(coroutine)


def test_group_by_length_sorts_then_cuts():
    assert group_by_length([5, 1, 9, 2, 7], 2) == [[1, 3], [0, 4], [2]]
    assert group_by_length([3, 3, 3], 8) == [[0, 1, 2]]
    assert group_by_length([], 4) == []


def test_group_by_length_keeps_padding_small():
    lengths = [12, 60, 10, 14, 50, 11, 58, 13, 100]
    batches = group_by_length(lengths, max_batch_size=32)
    # short ones together, long ones together, the very long one alone: not one batch padded to 100
    assert [[lengths[i] for i in batch] for batch in batches] == [[10, 11, 12, 13, 14], [50, 58, 60], [100]]
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 1.25 * sum(lengths[i] for i in batch) + 8 * len(batch)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))


def test_concurrent_requests_share_one_call_and_get_their_own_answers():
    recorder = Recorder()

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=16, max_wait_ms=200)
        batcher.start()
        texts = [f"text {i}" for i in range(10)]
        answers = await asyncio.gather(*(batcher.submit(t, len(t)) for t in texts))
        await batcher.close()
        return texts, answers, batcher.stats

    texts, answers, stats = run(main())
    assert answers == [t.upper() for t in texts]
    assert len(recorder.batches) == 1 and sorted(recorder.batches[0]) == sorted(texts)
    assert stats.batch_sizes == [10]
    # the model ran in the worker thread, not on the event loop
    assert all(name.startswith("bertkit-model") for name in recorder.threads)


def test_batches_respect_max_size_and_group_by_length():
    recorder = Recorder()
    lengths = [9, 1, 8, 2, 7, 3, 6, 4]

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=3, max_wait_ms=200)
        batcher.start()
        texts = ["x" * n for n in lengths]
        answers = await asyncio.gather(*(batcher.submit(t, len(t)) for t in texts))
        await batcher.close()
        return texts, answers

    texts, answers = run(main())
    assert answers == [t.upper() for t in texts]
    assert [len(batch) for batch in recorder.batches] == [3, 3, 2]
    # each batch holds neighbours in length: shortest three, next three, longest two
    assert [sorted(len(t) for t in batch) for batch in recorder.batches] == [[1, 2, 3], [4, 6, 7], [8, 9]]


def test_max_batch_size_one_means_one_call_per_request():
    recorder = Recorder()

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=1, max_wait_ms=0)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit(str(i), 1) for i in range(6)))
        await batcher.close()
        return answers

    assert run(main()) == [str(i) for i in range(6)]
    assert [len(batch) for batch in recorder.batches] == [1] * 6


def test_a_failing_input_fails_alone():
    recorder = Recorder(fail_on="bad")

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=8, max_wait_ms=200)
        batcher.start()
        texts = ["a", "b", "bad", "c", "d"]
        results = await asyncio.gather(*(batcher.submit(t, 1) for t in texts), return_exceptions=True)
        await batcher.close()
        return results, batcher.stats

    results, stats = run(main())
    assert results[:2] == ["A", "B"] and results[3:] == ["C", "D"]
    assert isinstance(results[2], ValueError) and "bad" in str(results[2])
    assert stats.retried_alone == 5  # the whole batch was re-run one by one to find the bad one


def test_wrong_number_of_results_is_an_error_for_each_input():
    async def main():
        batcher = DynamicBatcher(lambda payloads: payloads[:-1], max_batch_size=4, max_wait_ms=50)
        batcher.start()
        results = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
        await batcher.close()
        return results

    results = run(main())
    assert all(isinstance(r, RuntimeError) and "results" in str(r) for r in results)


def test_close_finishes_what_was_submitted_then_refuses_more():
    recorder = Recorder(delay=0.05)

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=2, max_wait_ms=1000)
        batcher.start()
        pending = [asyncio.ensure_future(batcher.submit(str(i), 1)) for i in range(5)]
        await asyncio.sleep(0)  # let them queue
        await batcher.close()  # must not wait the full second, and must not drop anything
        done = [task.result() for task in pending]
        with pytest.raises(RuntimeError, match="shutting down"):
            await batcher.submit("late")
        return done

    assert run(main()) == [str(i) for i in range(5)]


def test_a_cancelled_request_does_not_break_the_others():
    recorder = Recorder()

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=8, max_wait_ms=100)
        batcher.start()
        gone = asyncio.ensure_future(batcher.submit("gone"))
        kept = asyncio.ensure_future(batcher.submit("kept"))
        await asyncio.sleep(0.01)
        gone.cancel()  # the client hung up while waiting
        result = await kept
        await batcher.close()
        return result

    assert run(main()) == "KEPT"
    assert ["gone"] not in recorder.batches and all("gone" not in batch for batch in recorder.batches)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(lambda p: p, max_batch_size=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        DynamicBatcher(lambda p: p, max_wait_ms=-1)


def test_a_deadline_takes_a_waiting_input_out_of_the_queue_and_says_whether_it_had_started():
    from bertkit.serve.batcher import DeadlineExceeded

    recorder = Recorder(delay=0.4)

    async def main():
        batcher = DynamicBatcher(recorder, max_batch_size=1, max_wait_ms=0)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit("running", timeout=0.2))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(batcher.submit("waiting", timeout=0.1))
        await asyncio.sleep(0.01)
        assert batcher.queued == 1 and batcher.in_flight == 2
        results = await asyncio.gather(running, waiting, return_exceptions=True)
        assert batcher.queued == 0 and batcher.in_flight == 0
        await batcher.close()
        return results

    running, waiting = run(main())
    assert isinstance(running, DeadlineExceeded) and running.started
    assert isinstance(waiting, DeadlineExceeded) and not waiting.started
    assert recorder.batches == [["running"]]  # the expired one never took a place in a batch


def test_a_cancelled_request_leaves_the_queue_at_once():
    async def main():
        batcher = DynamicBatcher(Recorder(), max_batch_size=8, max_wait_ms=10_000)
        batcher.start()
        gone = asyncio.ensure_future(batcher.submit("gone"))
        await asyncio.sleep(0.01)
        assert batcher.queued == 1
        gone.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        counts = batcher.queued, batcher.in_flight
        await batcher.close()
        return counts

    assert run(main()) == (0, 0)
