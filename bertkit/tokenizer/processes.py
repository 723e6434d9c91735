"""A batch call over several processes, when asked for: the batch is cut into contiguous shards of about equal
text; forked workers encode all shards but the first, the calling process the first, and the rows come back
in order (HuggingFace's Rust tokenizer uses threads for the same; Python threads would share one core).

    tokenizer.num_workers = 2             # this tokenizer's batch calls use 2 processes
    tokenizer(texts)                      # num_workers None (the default) or 1: one process

Opt-in, because on the 2-core machine it was measured on it does not pay yet (benchmarks/bench_tokenizer.py
--mode squad, "processes"): sending a worker's rows back as pickled Python lists costs about as much as
encoding them, and the forked copies of the caches pay copy-on-write faults. Workers are forked for the call
and end with it, so each starts with the caller's tokenizer exactly as it is (settings, added tokens, warm
caches) and nothing outlives the call. Where `fork` is not available (Windows, macOS's default) or the caller
is itself a daemon process (a DataLoader worker), the call stays in one process.
"""
from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from typing import Any


def worker_count(requested: int | None) -> int:
    """How many processes a batch call uses (1: this one alone)."""
    if requested is None or requested <= 1 or "fork" not in multiprocessing.get_all_start_methods() \
            or multiprocessing.current_process().daemon:
        return 1
    return int(requested)


def shard_bounds(lengths: Sequence[int], count: int) -> list[tuple[int, int]]:
    """`count` contiguous (start, stop) ranges of items with about equal total length, none empty."""
    count = max(1, min(count, len(lengths)))
    total = sum(lengths)
    bounds, start, running = [], 0, 0
    for index, length in enumerate(lengths):
        running += length
        if len(bounds) < count - 1 and running * count >= total * (len(bounds) + 1) and index + 1 < len(lengths):
            bounds.append((start, index + 1))
            start = index + 1
    bounds.append((start, len(lengths)))
    return bounds


def _serve(work: Callable[[int, int], Any], start: int, stop: int, conn: Any) -> None:
    try:
        result = ("ok", work(start, stop))
    except BaseException as error:  # noqa: BLE001 - the caller re-raises it
        result = ("error", error)
    try:
        conn.send(result)
    except Exception as error:  # an exception that does not pickle
        conn.send(("error", RuntimeError(f"a tokenizer worker failed: {result[1]!r} ({error})")))
    finally:
        conn.close()


def run_sharded(work: Callable[[int, int], Any], bounds: list[tuple[int, int]]) -> list[Any]:
    """work(start, stop) for every shard, the first in this process and the others in forked workers; the
    results in shard order. An exception in any shard is raised here."""
    if len(bounds) == 1:
        return [work(*bounds[0])]
    context = multiprocessing.get_context("fork")
    children = []
    finished = False
    try:
        with warnings.catch_warnings():  # 3.12+ warns when a process with threads forks; the workers run
            warnings.simplefilter("ignore", DeprecationWarning)  # only this pure-Python code, no locks from them
            for start, stop in bounds[1:]:
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(target=_serve, args=(work, start, stop, writer), daemon=True)
                process.start()
                writer.close()
                children.append((process, reader))
        results = [work(*bounds[0])]
        for process, reader in children:
            try:
                status, value = reader.recv()
            except EOFError:
                process.join()
                raise RuntimeError(f"a tokenizer worker died (exit code {process.exitcode})") from None
            if status == "error":
                raise value
            results.append(value)
        finished = True
        return results
    finally:
        for process, reader in children:
            reader.close()
            if not finished:
                process.terminate()
            process.join()
