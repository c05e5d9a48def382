"""Prefetches on the model thread: low priority, dropped when the session moves on,
bounded, never computed twice; and their logits land in the registry's cache.

The engine's model thread runs here with a recording batcher in place of the forward
passes (the passes themselves are tested on real weights in tests/models)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from typing import Any

import pytest
import torch

from tests.inference.fake_weights import FakeEngine, FakeWeights, RegistryOnFakeWeights
from tokenwheel.inference.engine import InferenceEngine
from tokenwheel.inference.passes import LogitsRequest

MODEL = FakeWeights()
TIMEOUT = 10


class RecordingBatcher:
    """Serves each batch with a tensor holding its ids' length, recording the batches
    (as tuples of ids) in order. While ``hold`` is set, the first pass that starts waits
    for it to clear, so requests can queue up behind it."""

    def __init__(self) -> None:
        self.served: list[list[tuple[int, ...]]] = []
        self.hold = threading.Event()
        self.holding = threading.Event()  # a pass is waiting for hold to clear

    def serve(self, batch: list[LogitsRequest]) -> None:
        self.served.append([r.ids for r in batch])
        if self.hold.is_set():
            self.holding.set()
            while self.hold.is_set():
                self.hold.wait(0.005)
        for request in batch:
            request.future.set_result(torch.tensor([float(len(request.ids))]))


@pytest.fixture
def engine() -> Iterator[tuple[InferenceEngine, RecordingBatcher]]:
    engine = InferenceEngine(threads=1, max_batch=32, batch_wait=0.0, max_prefetches=3)
    batcher = RecordingBatcher()
    engine._batcher = batcher  # type: ignore[assignment]
    yield engine, batcher
    batcher.hold.clear()
    engine.shutdown()


def busy(engine: InferenceEngine, batcher: RecordingBatcher) -> Future[torch.Tensor]:
    """A student's request that holds the model thread until ``batcher.hold`` clears."""
    batcher.hold.set()
    first = engine.submit(MODEL, (1,))
    assert batcher.holding.wait(TIMEOUT)
    return first


def release(batcher: RecordingBatcher, *futures: Future[Any]) -> None:
    batcher.hold.clear()
    for future in futures:
        with contextlib.suppress(CancelledError):
            future.result(TIMEOUT)


def test_a_student_queued_behind_prefetches_runs_first(
    engine: tuple[InferenceEngine, RecordingBatcher],
) -> None:
    inference, batcher = engine
    first = busy(inference, batcher)
    prefetches = [inference.prefetch(MODEL, (2, n), f"s{n}") for n in range(3)]
    student = inference.submit(MODEL, (3, 3, 3))
    release(batcher, first, student, *prefetches)
    assert batcher.served[:2] == [[(1,)], [(3, 3, 3)]]  # the student before every prefetch
    assert batcher.served[2] == [(2, 0), (2, 1), (2, 2)]  # then the prefetches, in one pass
    assert all(f.result(TIMEOUT).item() == 2.0 for f in prefetches)
    assert inference.stats.prefetches == 3


def test_a_prefetch_for_a_session_that_moved_on_is_dropped(
    engine: tuple[InferenceEngine, RecordingBatcher],
) -> None:
    inference, batcher = engine
    first = busy(inference, batcher)
    stale = inference.prefetch(MODEL, (5, 6), "session-a")
    other = inference.prefetch(MODEL, (7, 8), "session-b")
    fresh = inference.prefetch(MODEL, (5, 6, 9), "session-a")  # session a moved on
    assert stale.cancelled()
    release(batcher, first, other, fresh)
    assert batcher.served[1:] == [[(7, 8), (5, 6, 9)]]  # the stale one never ran
    assert inference.stats.prefetches_dropped == 1


def test_waiting_prefetches_are_bounded_oldest_dropped_first(
    engine: tuple[InferenceEngine, RecordingBatcher],
) -> None:
    inference, batcher = engine  # max_prefetches=3
    first = busy(inference, batcher)
    futures = [inference.prefetch(MODEL, (n, n), f"s{n}") for n in range(5)]
    assert inference._work.pending_prefetches() == 3
    assert [f.cancelled() for f in futures] == [True, True, False, False, False]
    release(batcher, first, *futures)
    assert batcher.served[1:] == [[(2, 2), (3, 3), (4, 4)]]


def test_a_student_asking_for_a_waiting_prefetch_takes_it_at_full_priority(
    engine: tuple[InferenceEngine, RecordingBatcher],
) -> None:
    inference, batcher = engine
    first = busy(inference, batcher)
    others = [inference.prefetch(MODEL, (2, n), f"s{n}") for n in range(2)]
    prefetch = inference.prefetch(MODEL, (4, 4), "mine")
    student = inference.submit(MODEL, (4, 4))
    release(batcher, first, prefetch, student, *others)
    # one row computes both, before the other sessions' prefetches
    assert batcher.served[1] == [(4, 4), (4, 4)]
    assert batcher.served[2:] == [[(2, 0), (2, 1)]]
    assert prefetch.result(TIMEOUT).item() == student.result(TIMEOUT).item() == 2.0
    assert inference.stats.prefetches_joined == 1


def test_a_student_asking_for_a_running_prefetch_waits_for_its_answer(
    engine: tuple[InferenceEngine, RecordingBatcher],
) -> None:
    inference, batcher = engine
    batcher.hold.set()
    prefetch = inference.prefetch(MODEL, (4, 4, 4), "mine")
    assert batcher.holding.wait(TIMEOUT)  # the prefetch's pass is under way
    student = inference.submit(MODEL, (4, 4, 4))
    release(batcher, prefetch)
    assert student.result(TIMEOUT).item() == 3.0
    assert batcher.served == [[(4, 4, 4)]]  # computed once
    assert inference.stats.prefetches_joined == 1


def test_shutdown_drops_waiting_prefetches(
    engine: tuple[InferenceEngine, RecordingBatcher],
) -> None:
    inference, batcher = engine
    first = busy(inference, batcher)
    waiting = inference.prefetch(MODEL, (9, 9), "s")
    stopper = threading.Thread(target=inference.shutdown)
    stopper.start()
    release(batcher, first)
    stopper.join(TIMEOUT)
    assert waiting.cancelled() and batcher.served == [[(1,)]]


# ---------------------------------------------------------------- the registry's side


def test_a_prefetch_lands_in_the_logits_cache_and_the_wheel_costs_no_pass(
    fake_weights: RegistryOnFakeWeights,
) -> None:
    engine = fake_weights.engine
    assert isinstance(engine, FakeEngine)
    ids = fake_weights.encode_prompt("fake", "The cat sat")
    fake_weights.prefetch("fake", ids, "session-1")
    assert engine.prefetched == [(tuple(ids), "session-1")]
    assert fake_weights.local_wheels.prefetches.landed == 1
    passes = fake_weights.forward_passes
    wheel = fake_weights.distribution("fake", ids, 0.8, 0.05, 10)
    assert fake_weights.forward_passes == passes  # served from the cache
    assert wheel.vocabulary_size == MODEL.vocabulary_size
    # and the numbers are the ones a pass gives
    fake_weights.local_wheels.cache.drop_model("fake")
    fake_weights.local_wheels.prepared_cache.drop_model("fake")
    assert fake_weights.distribution("fake", ids, 0.8, 0.05, 10) == wheel


def test_nothing_is_prefetched_that_is_cached_or_for_a_model_not_loaded(
    fake_weights: RegistryOnFakeWeights,
) -> None:
    engine = fake_weights.engine
    assert isinstance(engine, FakeEngine)
    ids = fake_weights.encode_prompt("fake", "The cat")
    fake_weights.distribution("fake", ids, 1.0, 0.05, 10)
    fake_weights.prefetch("fake", ids, "s")  # an undo back to a cached wheel
    fake_weights.prefetch("gpt2", ids, "s")  # in the catalog, not loaded: never loads it
    assert engine.prefetched == [] and not fake_weights.loaded("gpt2")
