"""The server's memory under a long mixed load: what glibc's allocator keeps, given back.

Every forward pass allocates its activations at the batch's shape (texts x tokens x width), and under real
traffic no two batches have the same shape. The tensors are freed after each pass (nothing of a request stays
alive), but glibc's malloc keeps the freed memory in its heaps, one heap ("arena") per thread that allocated
(the model thread, the two preparation threads, torch's intra-op threads), fragmented by the ever-changing sizes,
and raises its mmap threshold to the largest freed block, so later blocks of up to 32 MB come from those heaps
too. RSS then grows round after round (issue 23: +78% in 10 rounds) although the live memory does not:
`malloc_trim(0)` gave most of it back at once.

So the server does what long-running Python services on glibc do (see docs/serving.md):
- at start, at most `ARENA_MAX` arenas (as `MALLOC_ARENA_MAX=2` would; an operator's own setting wins);
- after work, a `MallocTrimmer` thread calls `malloc_trim(0)` at most every `--malloc-trim-seconds`, which hands
  the free pages of every arena back to the system (a few milliseconds; nothing runs while idle).
Elsewhere than glibc (musl, macOS, or jemalloc/tcmalloc preloaded, which return memory themselves) both do nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from typing import Any

log = logging.getLogger("bertkit.serve")
M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENA_MAX = 2


def glibc() -> Any | None:
    """glibc's C library when it is the allocator in use; None elsewhere."""
    if os.environ.get("LD_PRELOAD", "").find("malloc") >= 0:  # jemalloc or tcmalloc preloaded: they trim themselves
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """At most `arenas` malloc arenas from now on (fewer heaps to fragment); True when set."""
    libc = glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


class MallocTrimmer:
    """A daemon thread that gives the allocator's free memory back to the system: `touch()` after work, and within
    `interval` seconds it calls `malloc_trim(0)` once (never while nothing happened since the last time)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.trims = 0
        self._libc = glibc() if interval > 0 else None
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._libc is not None

    def start(self) -> None:
        if self.active and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bertkit-malloc-trim", daemon=True)
            self._thread.start()

    def touch(self) -> None:
        self._dirty.set()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()  # wake it
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            if self._stop.wait(self.interval):
                return
            self._dirty.clear()
            self._libc.malloc_trim(0)
            self.trims += 1
