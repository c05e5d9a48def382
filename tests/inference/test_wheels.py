"""Wheels answered without waiting (``Wheels.ask_later``, the inference process's way):
the same answers as asked and waited for, only once the logits are there, errors
included, and never computed on the thread that delivered the logits."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import torch

from tests.inference.fake_weights import FakeWeights
from tokenwheel.inference.types import NO_RULES, EmptyOtherError, SamplingRules
from tokenwheel.inference.wheels import WheelQuestion, Wheels

QUESTIONS = (
    WheelQuestion("wheel", 0.8, 0.05, NO_RULES, other_top_k=5),
    WheelQuestion("wheel", 1.3, 0.01, SamplingRules(top_k=3, top_p=0.9), other_top_k=2),
    WheelQuestion("score", 0.8, 0.05, token_id=4),
    WheelQuestion("land", 0.8, 0.05, draw=0.93),
    WheelQuestion("other", 0.8, 0.05, draw=0.5),
)


class HeldEngine:
    """An engine whose passes finish only when the test says so."""

    def __init__(self) -> None:
        self.waiting: list[tuple[FakeWeights, tuple[int, ...], Future[torch.Tensor]]] = []

    def submit(self, model: FakeWeights, ids: Sequence[int]) -> Future[torch.Tensor]:
        future: Future[torch.Tensor] = Future()
        self.waiting.append((model, tuple(ids), future))
        return future

    def logits(self, model: FakeWeights, ids: Sequence[int]) -> torch.Tensor:
        return model.logits(ids)

    def finish(self) -> None:
        for model, ids, future in self.waiting:
            future.set_result(model.logits(ids))
        self.waiting.clear()


def test_an_answer_comes_once_its_logits_do_and_equals_the_waited_for_one() -> None:
    model, engine = FakeWeights(), HeldEngine()
    later, now = Wheels(engine, "float32", 1 << 20), Wheels(engine, "float32", 1 << 20)
    ids = model.encode_prompt("The cat sat")
    threads: set[str] = set()
    with ThreadPoolExecutor(1, thread_name_prefix="math") as pool:

        def on_math_thread(task: Callable[[], None]) -> None:
            threads.add(threading.current_thread().name)
            task()

        def run(task: Callable[[], None]) -> object:
            return pool.submit(on_math_thread, task)

        answers = [later.ask_later(model, ids, q, run) for q in QUESTIONS]  # type: ignore[arg-type]
        assert len(engine.waiting) == len(QUESTIONS) and not any(a.done() for a in answers)
        engine.finish()
        got = [a.result(timeout=10) for a in answers]
    assert got == [now.ask(model, ids, q) for q in QUESTIONS]  # type: ignore[arg-type]
    assert threads and all(name.startswith("math") for name in threads)
    # the logits were kept: asked again, nothing waits for a pass
    again = later.ask_later(model, ids, QUESTIONS[0], lambda task: task())  # type: ignore[arg-type]
    assert again.result(timeout=0) == got[0] and not engine.waiting


def test_errors_and_failed_passes_reach_the_asker() -> None:
    model, engine = FakeWeights(), HeldEngine()
    wheels = Wheels(engine, "float32", 1 << 20)
    ids = model.encode_prompt("The cat sat")
    empty = WheelQuestion("other", 1.0, 0.0, draw=0.5)  # threshold 0: no Other wedge
    answer = wheels.ask_later(model, ids, empty, lambda task: task())  # type: ignore[arg-type]
    engine.finish()
    with pytest.raises(EmptyOtherError):
        answer.result(timeout=1)
    failing = wheels.ask_later(model, ids + [3], QUESTIONS[0], lambda task: task())  # type: ignore[arg-type]
    engine.waiting[0][2].set_exception(RuntimeError("the pass failed"))
    with pytest.raises(RuntimeError, match="the pass failed"):
        failing.result(timeout=1)
    assert wheels.cache.get(("fake", "float32", tuple(ids + [3]))) is None  # nothing kept
