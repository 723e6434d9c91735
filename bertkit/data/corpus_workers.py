"""Worker processes for `prepare-corpus --workers N`: each process owns a stateful worker that turns tasks into
files of its own and sends back only small reports, so no bulk data crosses a process boundary on the way back.

    results = run_workers(make_worker, tasks, workers=2, on_report=bar_update)

Task i goes to worker i % N (round robin, so which process writes what depends only on the input and N, never on
timing); each worker is `make_worker(index)`, built inside its own process, with `process(task) -> report` for
every task and `finish() -> result` at the end. The reports reach `on_report` in the parent as they come (a
progress bar); the results come back in worker order. With one worker everything runs in this process.

Workers are forked where the platform has `fork` (they inherit the tokenizer as it is, nothing to pickle), and
spawned elsewhere (then `make_worker` must pickle). An exception in a worker stops the others and is raised here:
a `UserError` as itself, an `OSError` (disk full, permissions) as a `UserError` naming the worker, anything else,
a bug, as a `RuntimeError` carrying the worker's traceback; a worker that dies (killed, out of memory) is
reported with its exit code.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import traceback
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from bertkit.errors import UserError

_END = None  # the task that tells a worker to finish
_POLL_S = 0.2


class Worker(Protocol):
    def process(self, task: Any) -> Any: ...

    def finish(self) -> Any: ...


def resolve_workers(requested: int | str | None) -> int:
    """`--workers`: a positive number, or "auto" for the cores this process may use."""
    if requested is None:
        return 1
    if isinstance(requested, str):
        if requested.strip().lower() == "auto":
            cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
            return max(1, len(cores))
        try:
            requested = int(requested)
        except ValueError:
            raise UserError(f"--workers must be a positive number or 'auto', got {requested!r}") from None
    if int(requested) < 1:
        raise UserError(f"--workers must be at least 1, got {requested}")
    return int(requested)


def _describe(error: BaseException) -> tuple[Any, str]:
    """The exception itself when it pickles (else its repr), and the worker's traceback as text."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    try:
        pickle.loads(pickle.dumps(error))
        return error, text
    except Exception:  # noqa: BLE001 - an exception that does not pickle travels as text
        return repr(error), text


def _child(make_worker: Callable[[int], Worker], index: int, tasks: Any, reports: Any) -> None:
    try:
        worker = make_worker(index)
        while (task := tasks.get()) is not _END:
            reports.put(("report", index, worker.process(task)))
        reports.put(("done", index, worker.finish()))
    except BaseException as error:  # noqa: BLE001 - the parent raises it
        reports.put(("error", index, _describe(error)))


def _raise_worker_error(index: int, error: Any, text: str) -> None:
    if isinstance(error, UserError):
        raise error
    if isinstance(error, OSError):
        raise UserError(f"prepare-corpus worker {index} could not write its shards: {error}") from None
    raise RuntimeError(f"prepare-corpus worker {index} failed:\n{text.rstrip()}")


def run_workers(make_worker: Callable[[int], Worker], tasks: Iterable[Any], workers: int,
                on_report: Callable[[Any], None] = lambda report: None) -> list[Any]:
    """Every task through `workers` workers (round robin); the workers' `finish()` results, in worker order."""
    if workers <= 1:
        worker = make_worker(0)
        for task in tasks:
            on_report(worker.process(task))
        return [worker.finish()]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    inboxes = [context.Queue(maxsize=2) for _ in range(workers)]
    reports = context.Queue()
    processes = [context.Process(target=_child, args=(make_worker, index, inboxes[index], reports), daemon=True,
                                 name=f"prepare-corpus-{index}") for index in range(workers)]
    results: dict[int, Any] = {}

    def handle(message: tuple) -> None:
        kind, index, payload = message
        if kind == "report":
            on_report(payload)
        elif kind == "done":
            results[index] = payload
        else:
            _raise_worker_error(index, *payload)

    def drain(wait: float = 0.0) -> None:
        while True:
            try:
                handle(reports.get(timeout=wait) if wait else reports.get_nowait())
            except queue.Empty:
                return
            wait = 0.0

    def check_alive() -> None:
        for index, process in enumerate(processes):
            if index not in results and process.exitcode is not None:
                drain(wait=1.0)  # its last message may still be on the way
                if index not in results:
                    raise RuntimeError(f"prepare-corpus worker {index} died (exit code {process.exitcode}); "
                                       "if it ran out of memory, try fewer --workers")

    def send(index: int, task: Any) -> None:
        while True:
            drain()
            try:
                inboxes[index].put(task, timeout=_POLL_S)
                return
            except queue.Full:
                check_alive()

    try:
        with warnings.catch_warnings():  # 3.12+ warns when a process with threads forks; the workers only
            warnings.simplefilter("ignore", DeprecationWarning)  # run this module's loop and the tokenizer
            for process in processes:
                process.start()
        for number, task in enumerate(tasks):
            send(number % workers, task)
        for index in range(workers):
            send(index, _END)
        while len(results) < workers:
            drain(wait=_POLL_S)
            check_alive()
        return [results[index] for index in range(workers)]
    finally:
        for process in processes:
            if process.exitcode is None and len(results) < workers:
                process.terminate()
        for process in processes:
            process.join()
        for inbox in inboxes + [reports]:
            inbox.cancel_join_thread()
            inbox.close()
