"""The race helper itself: a worker's failure or a hung worker fails the test."""

from __future__ import annotations

import threading

import pytest

from tests.threads import at_once


def test_every_worker_runs_once() -> None:
    seen: list[int] = []
    at_once(8, seen.append)
    assert sorted(seen) == list(range(8))


def test_an_exception_in_a_worker_is_raised_in_the_test() -> None:
    def work(n: int) -> None:
        if n in (2, 5):
            raise ValueError(f"worker {n}")

    with pytest.raises(ValueError, match="worker") as caught:
        at_once(6, work)
    assert any("another worker raised too" in note for note in caught.value.__notes__)


def test_a_worker_still_running_at_the_deadline_fails_the_test() -> None:
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match="1 of 3 threads still running"):
            at_once(3, lambda n: n == 1 and release.wait(30), timeout=0.3)
    finally:
        release.set()
