"""Forward passes in the inference process: same numbers, same errors, no orphans.

The server runs its model thread in a child process (tokenwheel/inference/process.py);
these tests hold that process to the in-process engine's behaviour, and check what
happens when it dies or its server does. They use the small GPT-2-architecture model of
tests/models/conftest.py, which loads in a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from flask.testing import FlaskClient

from tests.api.conftest import Student, make_app
from tests.conftest import MODEL_CACHE
from tests.models.conftest import TINY, tiny_spec
from tests.threads import at_once
from tokenwheel.inference import distribution as dist
from tokenwheel.inference.model import LoadedModel
from tokenwheel.inference.process import ProcessEngine
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.inference.types import (
    NO_RULES,
    EmptyOtherError,
    InferenceOptions,
    ModelUnavailableError,
    OverloadedError,
    SamplingRules,
)
from tokenwheel.inference.wheels import one_torch_thread
from tokenwheel.settings import Settings


def options(folder: Path, **kw: object) -> InferenceOptions:
    return InferenceOptions(
        cache_dir=str(MODEL_CACHE),
        offline=True,
        extra_models=(tiny_spec(folder),),
        inference_process=True,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def remote(tiny_gpt2_folder: Path):  # type: ignore[no-untyped-def]
    registry = ModelRegistry(options(tiny_gpt2_folder))
    yield registry
    registry.shutdown()


def child_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status  # a zombie has exited


def test_the_server_keeps_no_weights_and_gets_the_same_logits(
    remote: ModelRegistry, tiny_gpt2_folder: Path
) -> None:
    model = remote.get(TINY)
    assert isinstance(remote.engine, ProcessEngine) and model.model is None
    assert model._texts is not None  # decoded at load, not under the first spins
    local = ModelRegistry(
        InferenceOptions(
            cache_dir=str(MODEL_CACHE), offline=True, extra_models=(tiny_spec(tiny_gpt2_folder),)
        )
    )
    try:
        reference = local.get(TINY)
        assert (model.vocabulary_size, model.max_context, model.parameter_bytes) == (
            reference.vocabulary_size,
            reference.max_context,
            reference.parameter_bytes,
        )
        for ids in ([5, 6, 7], [5, 6, 7, 8], [5, 6, 9], list(range(40, 90))):
            got = remote.logits(TINY, ids)
            assert got.dtype == torch.float32 and got.shape == (model.vocabulary_size,)
            assert torch.allclose(got, reference.logits(ids), atol=1e-4), ids
        stats = remote.engine.stats()
        assert stats["forward_passes"] >= 4 and stats["kv_caches"][TINY]["entries"] >= 1
    finally:
        local.shutdown()


def waited_for(condition: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_prefetches_cross_the_pipe_and_land_in_the_childs_cache(remote: ModelRegistry) -> None:
    remote.get(TINY)
    engine = remote.engine
    assert isinstance(engine, ProcessEngine)
    remote.prefetch(TINY, [5, 6, 7], "s0")
    assert waited_for(lambda: engine.stats()["prefetches_landed"] == 1)
    passes = remote.forward_passes
    remote.distribution(TINY, [5, 6, 7], 0.7, 0.01, 5)
    assert remote.forward_passes == passes  # the prefetch's logits, not a new pass
    # more sessions than may wait: each is run or dropped unrun, and nothing is left
    # waiting in this process (a prefetch is never answered)
    for n in range(100):
        remote.prefetch(TINY, [5, 6, 20 + n], f"s{n + 1}")
    assert waited_for(
        lambda: (lambda s: s["prefetches"] + s["prefetches_dropped"] == 101)(engine.stats())
    )
    assert engine.stats()["prefetches_started"] == 101 and not engine._pending


def test_wheels_are_built_in_the_child_with_the_numbers_built_here(remote: ModelRegistry) -> None:
    """What the child answers is what the same functions give in this process on the
    logits it sends (with one torch thread, as the server built wheels before and the
    child builds them now: float64 sums split over two threads add in another order):
    every number equal, not just close."""
    model = remote.get(TINY)
    with one_torch_thread():
        rules = SamplingRules(top_k=40, top_p=0.9, min_p=0.01)
        for ids in ([5, 6, 7], list(range(40, 90))):
            logits = remote.logits(TINY, ids)
            for temperature, threshold, r in ((1.0, 0.01, NO_RULES), (0.6, 0.002, rules)):
                here = dist.Prepared(logits, temperature)
                wheel = remote.distribution(TINY, ids, temperature, threshold, 7, r)
                assert wheel == dist.build_distribution(here, threshold, 7, model.token_info, r)
                top = int(logits.argmax())
                assert remote.score(TINY, ids, top, temperature, threshold, r) == dist.score_token(
                    here, top, threshold, model.token_text, r
                )
                for draw in (0.0, 0.37, 0.999):
                    landing = remote.land_on_wheel(TINY, ids, temperature, threshold, draw, r)
                    assert landing == dist.land_on_wheel(here, threshold, draw, r)
                    other = remote.other_token(TINY, ids, temperature, threshold, draw, r)
                    assert other == dist.other_token_for_draw(here, threshold, draw, r)


def test_a_wheel_of_every_token_is_built_here_from_the_logits(
    remote: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threshold 0: 49,152 wedges weigh more than the logits, so those cross the pipe."""
    model = remote.get(TINY)
    engine = remote.engine
    assert isinstance(engine, ProcessEngine)
    fetched: list[tuple[int, ...]] = []
    fetch = engine.logits

    def logits(m: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
        fetched.append(tuple(ids))
        return fetch(m, ids)

    monkeypatch.setattr(engine, "logits", logits)
    wheel = remote.distribution(TINY, [5, 6, 7], 1.0, 0.0, 3)
    assert len(wheel.above_threshold_tokens) == model.vocabulary_size
    assert fetched == [(5, 6, 7)]
    with one_torch_thread():
        here = dist.Prepared(fetch(model, [5, 6, 7]), 1.0)
        assert wheel == dist.build_distribution(here, 0.0, 3, model.token_info)
    fetched.clear()
    remote.distribution(TINY, [5, 6, 7], 1.0, 0.01, 3)
    assert fetched == []  # a wheel of a few wedges comes back built


def test_the_childs_wheel_errors_are_the_same_errors_here(remote: ModelRegistry) -> None:
    remote.get(TINY)
    with pytest.raises(EmptyOtherError):  # threshold 0: every token has its own wedge
        remote.other_token(TINY, [5, 6, 7], 1.0, 0.0, 0.5)
    assert remote.distribution(TINY, [5, 6, 7], 1.0, 0.01, 3).vocabulary_size > 0


def test_a_text_is_scored_in_the_inference_process_as_in_this_one(
    remote: ModelRegistry, tiny_gpt2_folder: Path
) -> None:
    """Only the numbers cross the pipe, and they are the in-process engine's."""
    local = ModelRegistry(
        InferenceOptions(
            cache_dir=str(MODEL_CACHE), offline=True, extra_models=(tiny_spec(tiny_gpt2_folder),)
        )
    )
    try:
        ids = list(range(40, 110))
        there = remote.score_text(TINY, ids, 5)
        here = local.score_text(TINY, ids, 5)
        assert len(there) == len(here) == len(ids) and not there[0].scored
        for a, b in zip(there, here, strict=True):
            assert (a.token.token_id, a.scored) == (b.token.token_id, b.scored)
            assert abs(a.token.probability - b.token.probability) <= 1e-6
            assert a.token.display_text == b.token.display_text
            assert len(a.alternatives) == len(b.alternatives)
    finally:
        local.shutdown()


def test_a_session_end_to_end_through_the_inference_process(
    remote: ModelRegistry, settings: Settings
) -> None:
    client: FlaskClient = make_app(settings, remote).test_client()
    student = Student(client, TINY)
    student.prompt("cat cat cat")
    # random weights: a flat wheel, so everything is in Other at threshold 1
    top = student.probs(threshold=1.0)["other_category"]["sample_tokens"][0]
    picked = student.append(token_id=top["token_id"], threshold=1.0)["appended_token"]
    assert picked["probability"] == top["probability"] and picked["rank"] == 1
    student.append(category="other")
    student.undo()
    assert student.probs(threshold=1.0)["version"] == 5


def test_a_full_queue_in_the_child_is_503_here(tiny_gpt2_folder: Path) -> None:
    registry = ModelRegistry(options(tiny_gpt2_folder, max_queue=1, batch_wait=0.0))
    try:
        registry.get(TINY)
        errors: list[BaseException] = []
        results: list[torch.Tensor] = []

        def ask(n: int) -> None:
            try:
                results.append(registry.engine.logits(registry.get(TINY), list(range(n, n + 300))))
            except OverloadedError as exc:
                errors.append(exc)

        at_once(24, ask, timeout=120)
        assert errors and results and len(errors) + len(results) == 24
        assert "busy" in str(errors[0])
    finally:
        registry.shutdown()


def test_a_dead_child_fails_its_waiting_requests_and_the_next_one_starts_a_new_child(
    remote: ModelRegistry,
) -> None:
    model = remote.get(TINY)
    engine = remote.engine
    first = engine.pid
    assert first is not None
    os.kill(first, signal.SIGSTOP)  # hung: a request now waits for it
    outcome: list[BaseException | torch.Tensor] = []

    def ask() -> None:
        try:
            outcome.append(engine.logits(model, list(range(1, 30))))
        except ModelUnavailableError as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=ask)
    waiting.start()
    time.sleep(0.5)
    assert not outcome  # still waiting
    os.kill(first, signal.SIGKILL)
    waiting.join(timeout=10)
    assert not waiting.is_alive(), "a request hung on a dead inference process"
    [failed] = outcome
    assert isinstance(failed, ModelUnavailableError) and "stopped" in str(failed)
    # the next request starts a new child, which loads the model again by itself
    logits = engine.logits(model, [1, 2, 3])
    assert logits.shape == (model.vocabulary_size,)
    assert engine.pid != first and engine.restarts == 1


CHILD_OF_A_KILLED_SERVER = """
import sys
from pathlib import Path
from tests.models.conftest import tiny_spec
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.inference.types import InferenceOptions
registry = ModelRegistry(InferenceOptions(cache_dir=sys.argv[2], offline=True,
    extra_models=(tiny_spec(Path(sys.argv[1])),), inference_process=True))
registry.get("gpt2-tiny")
print(registry.engine.pid, flush=True)
sys.stdin.read()  # wait to be killed
"""


def test_the_child_never_outlives_its_server(tiny_gpt2_folder: Path) -> None:
    """A server killed with SIGKILL runs no clean-up: its inference process must notice
    the closed pipe and exit by itself."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD_OF_A_KILLED_SERVER, str(tiny_gpt2_folder), str(MODEL_CACHE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ) as server:
        try:
            assert server.stdout is not None
            child = int(server.stdout.readline())
            assert child_alive(child)
            server.kill()
            server.wait(timeout=10)
            deadline = time.monotonic() + 20
            while child_alive(child) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not child_alive(child)
        finally:
            if server.poll() is None:
                server.kill()
