"""The service under concurrency: expected versions, idempotency keys, retries, locks."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakeModels
from tests.services import maintenance_of
from tests.threads import at_once
from tests.unit.test_domain import choice
from tokenwheel.domain import session as d
from tokenwheel.domain.errors import IdempotencyKeyReused, VersionConflict
from tokenwheel.domain.events import Event
from tokenwheel.domain.session import SessionSummary
from tokenwheel.services import AppendRequest, IdempotencyKey, StudentSessions
from tokenwheel.settings import Settings
from tokenwheel.store.memory import InMemoryEventStore
from tokenwheel.store.records import IdempotencyRecord

SETTINGS = Settings(scheduler_enabled=False, max_generated_tokens=10_000)


class RivalProcessStore(InMemoryEventStore):
    """Before each of the next ``rival_writes`` appends, "another process" appends a
    token to the same session first, as a second server would. Counts the version
    conflicts the store raised."""

    def __init__(self, rival_writes: int = 0) -> None:
        super().__init__()
        self.rival_writes = rival_writes
        self.conflicts = 0

    def append(
        self,
        new_events: Sequence[Event],
        expected_version: int,
        summary: SessionSummary,
        idempotency: IdempotencyRecord | None = None,
    ) -> None:
        if self.rival_writes > 0 and expected_version > 0:
            self.rival_writes -= 1
            state = d.replay(self.load(new_events[0].session_id))
            assert state is not None
            rival = d.append_token(state, choice(3), state.updated_at, 10_000)
            super().append(rival, state.version, d.summarize(d.apply(state, rival[0])))
        try:
            super().append(new_events, expected_version, summary, idempotency)
        except VersionConflict:
            self.conflicts += 1
            raise


def make_service(store: InMemoryEventStore | None = None) -> StudentSessions:
    return StudentSessions(
        store or InMemoryEventStore(), FakeModels(), SETTINGS, rng=random.Random(7)
    )


def prompted(service: StudentSessions) -> str:
    sid = service.create_session().session_id
    service.set_prompt(sid, "The cat")
    return sid


def key(name: str, request_hash: str = "h1") -> IdempotencyKey:
    return IdempotencyKey(key=name, method_path="POST /x", request_hash=request_hash)


def versions(service: StudentSessions, sid: str) -> list[int]:
    return [e.version for e in service.store.load(sid)]


def test_expected_version_applies_only_on_that_version() -> None:
    service = make_service()
    sid = prompted(service)  # version 2
    service.append_token(sid, AppendRequest(token_id=3), expected_version=2)
    with pytest.raises(VersionConflict) as caught:
        service.append_token(sid, AppendRequest(token_id=4), expected_version=2)
    assert caught.value.actual == 3 and "version 3" in caught.value.message
    with pytest.raises(VersionConflict):
        service.undo(sid, expected_version=1)
    with pytest.raises(VersionConflict):
        service.set_prompt(sid, "The dog", expected_version=9)
    with pytest.raises(VersionConflict):
        service.delete_session(sid, expected_version=2)
    assert versions(service, sid) == [1, 2, 3]  # nothing stored by the stale requests
    assert service.undo(sid, expected_version=3).view.state.version == 4
    assert service.delete_session(sid, expected_version=4).version == 5


def test_a_repeated_idempotency_key_answers_the_first_response_and_stores_once() -> None:
    service = make_service()
    sid = prompted(service)
    first = service.append_token(sid, AppendRequest(category="other"), idempotency=key("k1"))
    assert not first.repeated
    for _ in range(3):
        again = service.append_token(sid, AppendRequest(category="other"), idempotency=key("k1"))
        assert again.repeated
        # the sampled Other token is the first one, not a new draw: the whole result is
        assert again == replace(first, repeated=True)
    assert versions(service, sid) == [1, 2, 3]
    with pytest.raises(IdempotencyKeyReused):
        service.append_token(sid, AppendRequest(token_id=5), idempotency=key("k1", "h2"))
    # a new key is a new request; a key is scoped to its session
    service.append_token(sid, AppendRequest(token_id=5), idempotency=key("k2"))
    other = prompted(service)
    service.append_token(other, AppendRequest(token_id=5), idempotency=key("k1"))
    assert versions(service, sid) == [1, 2, 3, 4] and versions(service, other) == [1, 2, 3]


def test_a_replay_wins_over_a_stale_expected_version() -> None:
    """A client that retries after a lost response sends the version it had then: the
    retry must get the first response, not a 409."""
    service = make_service()
    sid = prompted(service)
    service.append_token(sid, AppendRequest(token_id=3), expected_version=2, idempotency=key("k"))
    again = service.append_token(
        sid, AppendRequest(token_id=3), expected_version=2, idempotency=key("k")
    )
    assert again.repeated and again.view.state.version == 3


def test_conflicts_with_another_process_are_retried() -> None:
    store = RivalProcessStore(rival_writes=0)
    service = make_service(store)
    sid = prompted(service)
    store.rival_writes = 3
    result = service.append_token(sid, AppendRequest(token_id=5))
    assert store.conflicts == 3 and store.rival_writes == 0
    assert result.view.state.generated_ids == (3, 3, 3, 5)
    assert versions(service, sid) == [1, 2, 3, 4, 5, 6]


def test_with_an_expected_version_a_rival_write_is_a_conflict() -> None:
    store = RivalProcessStore(rival_writes=0)
    service = make_service(store)
    sid = prompted(service)
    store.rival_writes = 1
    with pytest.raises(VersionConflict) as caught:
        service.append_token(sid, AppendRequest(token_id=5), expected_version=2)
    assert caught.value.actual == 3  # the rival's version, for the 409 body
    assert versions(service, sid) == [1, 2, 3]


def test_endless_conflicts_end_in_a_conflict_with_the_current_version() -> None:
    store = RivalProcessStore(rival_writes=0)
    service = make_service(store)
    sid = prompted(service)
    store.rival_writes = 10_000
    with pytest.raises(VersionConflict) as caught:
        service.append_token(sid, AppendRequest(token_id=5))
    current = versions(service, sid)[-1]
    assert caught.value.actual == current and "kept changing" in caught.value.message


def test_threads_in_one_process_take_turns_without_conflicts() -> None:
    store = RivalProcessStore()
    service = make_service(store)
    sid = prompted(service)
    errors: list[BaseException] = []

    def student(n: int) -> None:
        try:
            for i in range(3):  # the fake model's context holds 64 tokens
                service.append_token(sid, AppendRequest(token_id=1 + (n + i) % 15))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    at_once(16, student)
    assert not errors
    assert versions(service, sid) == list(range(1, 2 + 16 * 3 + 1))
    assert store.conflicts == 0
    assert service.repository._locks.get(sid) is None  # the lock table forgets idle sessions


NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def hour_window_service(clock: list[datetime]) -> StudentSessions:
    """Keys kept an hour; sessions live a week; time is ``clock[0]``."""
    return StudentSessions(
        InMemoryEventStore(),
        FakeModels(),
        SETTINGS.with_overrides(idempotency_window=3600, session_ttl=86400 * 7),
        clock=lambda: clock[0],
    )


def test_purge_drops_idempotency_keys_after_the_window() -> None:
    now = NOW
    clock = [now]
    service = hour_window_service(clock)
    sid = prompted(service)
    service.append_token(sid, AppendRequest(token_id=3), idempotency=key("k"))
    clock[0] = now + timedelta(minutes=59)
    maintenance_of(service).purge_expired()
    assert service.store.get_idempotency(sid, "k") is not None
    clock[0] = now + timedelta(minutes=61)
    maintenance_of(service).purge_expired()
    assert service.store.get_idempotency(sid, "k") is None
    service.append_token(sid, AppendRequest(token_id=3), idempotency=key("k"))  # a new request
    assert versions(service, sid) == [1, 2, 3, 4]


class BrokenStore(InMemoryEventStore):
    def ping(self) -> None:
        raise ConnectionError("secret-host:5432 refused")


def test_readiness_checks_the_database_and_the_default_model_without_loading_it() -> None:
    service = maintenance_of(make_service())
    first = service.readiness()
    assert not first.ready and first.default_model == "fake"
    assert first.checks["database"] == "ok" and "loading" in first.checks["model"]
    assert not service.models.loaded("fake")  # asking did not load it
    service.warm_up()
    assert service.readiness().ready
    broken = maintenance_of(StudentSessions(BrokenStore(), FakeModels(), SETTINGS))
    broken.warm_up()
    readiness = broken.readiness()
    assert not readiness.ready and readiness.checks["model"] == "ok"
    assert "secret-host" not in readiness.checks["database"]


def test_a_key_past_its_window_is_a_new_request() -> None:
    """Keys are dropped by the purge job; until it runs, a key older than the window must
    not answer for a new request (nor make it conflict forever)."""
    clock = [NOW]
    service = hour_window_service(clock)
    sid = prompted(service)
    service.append_token(sid, AppendRequest(token_id=3), idempotency=key("k"))
    assert service.append_token(sid, AppendRequest(token_id=3), idempotency=key("k")).repeated
    clock[0] = NOW + timedelta(minutes=61)  # no purge ran
    service.append_token(sid, AppendRequest(token_id=3), idempotency=key("k"))
    assert versions(service, sid) == [1, 2, 3, 4]
