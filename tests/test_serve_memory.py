"""Issue 23, item 1: what keeps the server's RSS flat under a long mixed load (the soak itself is
benchmarks/soak_test.py --mix): malloc_trim hands freed heap memory back, the trimmer thread trims only after
work, and the batcher's statistics stay bounded."""
from __future__ import annotations

import time

import pytest

from bertkit.serve import memory
from bertkit.serve.batcher import RECENT_BATCHES, BatchStats


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(memory.glibc() is None, reason="malloc_trim is glibc's")
def test_malloc_trim_gives_freed_heap_memory_back():
    """Freed blocks below the mmap threshold stay in the heap (the last one pins its top) until a trim."""
    blocks = [bytearray(100_000) for _ in range(2000)]  # 200 MB in heap blocks, touched (zeroed)
    pin = bytearray(100_000)
    del blocks
    before = rss_mb()
    trimmer = memory.MallocTrimmer(0.01)
    trimmer.start()
    trimmer.touch()
    for _ in range(200):
        if trimmer.trims:
            break
        time.sleep(0.01)
    trimmer.stop()
    assert trimmer.trims == 1
    assert before - rss_mb() > 100, f"RSS {before:.0f} MB -> {rss_mb():.0f} MB after malloc_trim"
    del pin


@pytest.mark.skipif(memory.glibc() is None, reason="malloc_trim is glibc's")
def test_the_trimmer_trims_only_after_work():
    trimmer = memory.MallocTrimmer(0.02)
    trimmer.start()
    try:
        time.sleep(0.2)
        assert trimmer.trims == 0  # idle: nothing to give back, no trim
        for round_ in range(1, 4):
            trimmer.touch()
            for _ in range(200):
                if trimmer.trims == round_:
                    break
                time.sleep(0.01)
            assert trimmer.trims == round_
    finally:
        trimmer.stop()
    assert not memory.MallocTrimmer(0).active  # --malloc-trim-seconds 0: off


def test_batch_statistics_stay_bounded():
    stats = BatchStats()
    for index in range(5 * RECENT_BATCHES):
        stats.record(index % 32 + 1)
    assert stats.forward_calls == 5 * RECENT_BATCHES
    assert len(stats.batch_sizes) <= 2 * RECENT_BATCHES and stats.batch_sizes[-1] == (5 * RECENT_BATCHES - 1) % 32 + 1
