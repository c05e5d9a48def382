"""Threads released at the same instant: how the tests make requests race."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def at_once(count: int, work: Callable[[int], object], timeout: float = 60.0) -> None:
    """Run ``work(n)`` for n in 0..count-1, each on a thread of its own, all released
    together by a barrier, and wait for them, at most ``timeout`` seconds in all.

    A worker's exception is raised here (the first one, the others noted on it), and a
    thread still running at the deadline fails the test: a race that silently lost a
    worker, or never finished, would otherwise pass."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread below
            with lock:
                errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(n,), name=f"at_once-{n}", daemon=True)
        for n in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    alive = [thread.name for thread in threads if thread.is_alive()]
    if alive:
        barrier.abort()  # release any still waiting for the others
        raise AssertionError(
            f"{len(alive)} of {count} threads still running after {timeout} s: {alive}"
        )
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"another worker raised too: {other!r}")
        raise first
