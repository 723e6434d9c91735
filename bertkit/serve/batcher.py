"""Dynamic batching: concurrent requests share one forward pass.

Requests arrive one at a time on the event loop. The batcher holds them for at most `max_wait_ms`
after the oldest one arrived (or until enough are waiting), sorts what it gathered by length so that
short texts are not padded to long ones, cuts that into batches of similar lengths and at most
`max_batch_size` inputs, and runs each batch in a worker thread (so the event loop keeps accepting requests while the model works).
Each request gets its own result back.

If a batch raises, its items are retried one by one, so a single bad input fails alone and the
others in its batch still get their answers.

An input leaves the queue as soon as nobody waits for it any more: its request was cancelled (the
client went away) or its `timeout` passed (`DeadlineExceeded`, which says whether its batch had
started). Either way it takes no place in a batch that has not run yet.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from bertkit.errors import UserError

RunBatch = Callable[[list[Any]], Sequence[Any]]
RECENT_BATCHES = 1000  # batch sizes kept in `BatchStats`: a server runs millions of batches


class DeadlineExceeded(Exception):
    """An input's time ran out: `started` says whether its batch was already running (then the
    forward pass finishes, and its result is dropped) or it was still waiting in the queue."""

    def __init__(self, started: bool) -> None:
        super().__init__("the model was still working on it" if started else "it was still waiting in the queue")
        self.started = started


@dataclass(eq=False)  # identity: the queue removes this very item
class _Pending:
    payload: Any
    length: int
    future: asyncio.Future
    arrived: float
    started: bool = False  # its batch is running (or has run)


@dataclass
class BatchStats:
    """What the batcher did: the size of each of the latest calls of the batch function (at most about
    2 x RECENT_BATCHES of them), and how many calls there were in all."""

    batch_sizes: list[int] = field(default_factory=list)
    retried_alone: int = 0  # items re-run one by one after their batch failed
    forward_calls: int = 0

    def record(self, size: int) -> None:
        self.forward_calls += 1
        self.batch_sizes.append(size)
        if len(self.batch_sizes) > 2 * RECENT_BATCHES:
            del self.batch_sizes[:-RECENT_BATCHES]


def group_by_length(
    lengths: Sequence[int], max_batch_size: int, spread: float = 1.25, slack: int = 8
) -> list[list[int]]:
    """Indices sorted by length and cut into batches of at most `max_batch_size` whose lengths stay close.

    A batch pads every input to its longest, so a batch takes an input only while it is at most
    `spread` times (or `slack` tokens) longer than the batch's shortest: padding stays under ~25%.
    On a CPU, where a forward pass costs what its padded tokens cost, two snug batches beat one loose one.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for index in order:
        if batches and len(batches[-1]) < max_batch_size:
            shortest = lengths[batches[-1][0]]
            if lengths[index] <= shortest * spread or lengths[index] - shortest <= slack:
                batches[-1].append(index)
                continue
        batches.append([index])
    return batches


class DynamicBatcher:
    """Gathers `submit(payload, length)` calls into calls of `run_batch(list_of_payloads)`.

    `run_batch` must return one result per payload, in order. It runs in `executor` (one thread by
    default: a model on CPU uses all cores per forward pass, so two passes at once only compete).
    """

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        executor: concurrent.futures.Executor | None = None,
        gather_factor: int = 4,
    ) -> None:
        if max_batch_size < 1:
            raise UserError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise UserError(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        # Gather a few batches' worth at once so that sorting by length has something to sort.
        self.max_gather = max_batch_size * gather_factor
        self.stats = BatchStats()
        self._executor = executor
        self._owns_executor = executor is None
        self._pending: list[_Pending] = []
        self._in_flight = 0  # submitted and not yet answered (queued, gathered or running)
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker on the running event loop."""
        if self._worker is None:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bertkit-model")
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        """Refuse new work, finish everything already submitted, then stop the worker."""
        self._closing = True
        self._arrived.set()
        if self._worker is not None:
            await self._worker
            self._worker = None
        if self._owns_executor and self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._closing

    @property
    def queued(self) -> int:
        """Inputs waiting to be gathered into a batch."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Inputs submitted and not answered yet: queued, gathered into a batch, or running."""
        return self._in_flight

    # -- requests ----------------------------------------------------------------------------
    async def submit(self, payload: Any, length: int = 0, timeout: float | None = None) -> Any:
        """Queue one input; returns its result (or raises its error) once its batch has run.

        After `timeout` seconds it raises `DeadlineExceeded` and leaves the queue; cancelling the call
        (a client that went away) takes it out of the queue too.
        """
        if self._closing:
            raise RuntimeError("the server is shutting down; retry on another instance")
        if self._worker is None:
            raise RuntimeError("the batcher is not started; call start() inside the event loop first")
        loop = asyncio.get_running_loop()
        item = _Pending(payload, length, loop.create_future(), loop.time())
        self._pending.append(item)
        self._in_flight += 1
        item.future.add_done_callback(self._answered)
        if timeout is not None:
            timer = loop.call_later(timeout, self._expire, item)
            item.future.add_done_callback(lambda _: timer.cancel())
        self._arrived.set()
        try:
            return await item.future
        finally:  # answered, failed, expired or cancelled: in every case it no longer needs a batch
            self._forget(item)

    async def submit_many(self, payloads: Sequence[Any], lengths: Sequence[int], timeout: float | None = None) -> list[Any]:
        """Queue several inputs of one request; they may land in different batches."""
        return list(await asyncio.gather(*(self.submit(p, n, timeout) for p, n in zip(payloads, lengths))))

    def _answered(self, future: asyncio.Future) -> None:
        self._in_flight -= 1

    def _expire(self, item: _Pending) -> None:
        _set_exception(item.future, DeadlineExceeded(item.started))
        self._forget(item)

    def _forget(self, item: _Pending) -> None:
        if not item.started and item in self._pending:
            self._pending.remove(item)

    # -- the worker --------------------------------------------------------------------------
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            # Wait until the oldest request has waited max_wait, or enough are here, or we close.
            deadline = self._pending[0].arrived + self.max_wait
            while len(self._pending) < self.max_gather and not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            gathered, self._pending = self._pending[: self.max_gather], self._pending[self.max_gather:]
            gathered = [item for item in gathered if not item.future.done()]  # client gone or expired: skip
            for indices in group_by_length([item.length for item in gathered], self.max_batch_size):
                await self._run([gathered[i] for i in indices])

    async def _run(self, batch: list[_Pending]) -> None:
        batch = [item for item in batch if not item.future.done()]  # gone or expired while earlier batches ran
        if not batch:
            return
        for item in batch:
            item.started = True
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._call, [item.payload for item in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the batch function returned {len(results)} results for {len(batch)} inputs")
        except Exception as error:  # noqa: BLE001 - the error goes back to the requests
            if len(batch) == 1:
                _set_exception(batch[0].future, error)
                return
            # Find the bad input(s): run each alone so the good ones still get answers.
            self.stats.retried_alone += len(batch)
            for item in batch:
                await self._run([item])
            return
        for item, result in zip(batch, results):
            if not item.future.done():
                item.future.set_result(result)

    def _call(self, payloads: list[Any]) -> Sequence[Any]:
        self.stats.record(len(payloads))
        return self.run_batch(payloads)


def _set_exception(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
