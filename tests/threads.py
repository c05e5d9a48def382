"""Threads released at the same instant: how the tests make requests race."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(count: int, work: Callable[[int], object], timeout: float = 60.0) -> None:
    """Run ``work(n)`` for n in 0..count-1, each on a thread of its own, all released
    together by a barrier, and wait for them (at most ``timeout`` seconds each)."""
    barrier = threading.Barrier(count)

    def run(n: int) -> None:
        barrier.wait()
        work(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
