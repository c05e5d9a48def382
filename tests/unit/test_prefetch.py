"""The service asks for the next wheel as soon as a session moves on (issue 16, item 1).

The fake model side computes a prefetch at once (it has no model thread); the engine's
low priority, dropping and bounds are tested in ``tests/inference/test_prefetch.py``."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests.fakes import FakeModels
from tokenwheel.services import AppendRequest, StudentSessions
from tokenwheel.services.idempotency import IdempotencyKey
from tokenwheel.services.results import SpinRequest
from tokenwheel.settings import Settings
from tokenwheel.store.memory import InMemoryEventStore


def service_with(models: FakeModels, prefetch: bool = True) -> StudentSessions:
    settings = Settings(scheduler_enabled=False, prefetch=prefetch)
    return StudentSessions(InMemoryEventStore(), models, settings, rng=random.Random(1))


def at_a_wheel(service: StudentSessions) -> str:
    session_id = service.create_session().session_id
    service.set_prompt(session_id, "The cat")
    service.next_token_probs(session_id)
    return session_id


CHANGES: dict[str, Callable[[StudentSessions, str], object]] = {
    "pick": lambda s, sid: s.append_token(sid, AppendRequest(category="other")),
    "spin": lambda s, sid: s.spin(sid, SpinRequest(seed=3)),
    "undo": lambda s, sid: s.undo(sid),
    "set-prompt": lambda s, sid: s.set_prompt(sid, "The dog ran"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_prefetches_the_next_wheel_so_it_costs_no_forward_pass(change: str) -> None:
    models = FakeModels()
    service = service_with(models)
    session_id = at_a_wheel(service)
    if change == "undo":
        service.append_token(session_id, AppendRequest(category="other"))
    models.prefetches.clear()
    CHANGES[change](service, session_id)
    state = service.get_session(session_id).state
    assert models.prefetches == [("fake", state.token_ids, session_id)]
    passes = models.forward_passes
    service.next_token_probs(session_id, threshold=0.2, temperature=0.7)
    assert models.forward_passes == passes  # a cache hit, whatever the wheel's settings


def test_without_prefetch_the_next_wheel_is_a_forward_pass() -> None:
    models = FakeModels()
    service = service_with(models, prefetch=False)
    session_id = at_a_wheel(service)
    service.append_token(session_id, AppendRequest(category="other"))
    service.spin(session_id, SpinRequest(seed=3))
    service.undo(session_id)
    service.set_prompt(session_id, "The dog ran")
    assert models.prefetches == []
    passes = models.forward_passes
    service.next_token_probs(session_id)
    assert models.forward_passes == passes + 1


def test_a_repeated_request_does_not_prefetch_again() -> None:
    """An Idempotency-Key's retry changes nothing: the session did not move on."""
    models = FakeModels()
    service = service_with(models)
    session_id = at_a_wheel(service)
    key = IdempotencyKey("key-1", "POST append", "other")
    service.append_token(session_id, AppendRequest(category="other"), idempotency=key)
    again = service.append_token(session_id, AppendRequest(category="other"), idempotency=key)
    assert again.repeated and len(models.prefetches) == 2  # set-prompt's and the append's


def test_a_prefetch_that_fails_never_fails_the_change() -> None:
    models = FakeModels()
    service = service_with(models)
    session_id = at_a_wheel(service)
    models.prefetch_error = RuntimeError("the model thread is gone")
    appended = service.append_token(session_id, AppendRequest(category="other"))
    assert appended.view.state.version == 3
    assert service.next_token_probs(session_id).distribution.vocabulary_size > 0


def test_the_setting_reads_tokenwheel_prefetch() -> None:
    assert Settings.from_env({}).prefetch is True
    assert Settings.from_env({"TOKENWHEEL_PREFETCH": "0"}).prefetch is False
    assert Settings.from_env({"TOKENWHEEL_PREFETCH": "on"}).prefetch is True
