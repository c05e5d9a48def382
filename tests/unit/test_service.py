"""The service on an in-memory store and a fake model: rules, replay, expiry, purge."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import VOCAB, FakeModels
from tests.services import maintenance_of
from tokenwheel.domain import session as d
from tokenwheel.domain.errors import (
    InvalidCommand,
    NothingToUndo,
    PromptNotSet,
    SessionNotFound,
    UnknownModel,
)
from tokenwheel.services import AppendRequest, StudentSessions
from tokenwheel.settings import Settings
from tokenwheel.store.memory import InMemoryEventStore


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock: Clock) -> StudentSessions:
    settings = Settings(
        session_ttl=3600,
        retention=86400,
        max_generated_tokens=5,
        max_prompt_chars=50,
        scheduler_enabled=False,
    )
    return StudentSessions(
        InMemoryEventStore(), FakeModels(), settings, clock=clock, rng=random.Random(1)
    )


def test_full_flow_and_replay(service: StudentSessions) -> None:
    view = service.create_session()
    sid = view.session_id
    assert view.state.model_name == "fake"
    result = service.set_prompt(sid, "The cat")
    assert result.token_count == 2 and result.view.current_text == "The cat"
    dist = service.next_token_probs(sid, threshold=0.05).distribution
    head = dist.above_threshold_tokens
    assert [t.probability for t in head] == sorted((t.probability for t in head), reverse=True)
    assert len(head) + dist.other_category.token_count == dist.vocabulary_size == len(VOCAB)
    assert math.isclose(
        dist.total_above_threshold_probability + dist.other_category.total_probability,
        1.0,
        rel_tol=1e-9,
    )
    chosen = head[0]
    appended = service.append_token(sid, AppendRequest(token_id=chosen.token_id, threshold=0.05))
    # the recorded probability is what the wheel showed at the same settings
    assert appended.token.probability == chosen.probability  # the number on the wheel
    assert appended.token.rank == 1 and appended.token.category == "above_threshold"
    assert appended.view.current_text == "The cat" + chosen.token_text
    other = service.append_token(sid, AppendRequest(category="other", threshold=0.05))
    assert other.token.sampled_from_other and other.token.category == "other"
    assert other.token.probability < 0.05 and other.token.selected_token_rank >= 1
    undone = service.undo(sid)
    assert undone.removed.token_id == other.token.token_id
    live = service.get_session(sid).state
    assert d.replay(service.store.load(sid)) == live
    assert live.generated_ids == (chosen.token_id,)


def test_undo_returns_the_same_distribution_without_a_forward_pass(
    service: StudentSessions,
) -> None:
    sid = service.create_session().session_id
    service.set_prompt(sid, "The cat")
    before = service.next_token_probs(sid).distribution
    service.append_token(sid, AppendRequest(token_text=" sat"))
    service.undo(sid)
    calls = service.models.models.fakes["fake"].calls  # type: ignore[attr-defined]
    after = service.next_token_probs(sid).distribution
    assert after == before
    assert service.models.models.fakes["fake"].calls == calls  # type: ignore[attr-defined]


def test_token_text_must_agree_with_token_id(service: StudentSessions) -> None:
    sid = service.create_session().session_id
    service.set_prompt(sid, "The cat")
    with pytest.raises(InvalidCommand):
        service.append_token(sid, AppendRequest(token_id=VOCAB.index(" dog"), token_text=" cat"))
    with pytest.raises(InvalidCommand):
        service.append_token(sid, AppendRequest(token_text=" nope"))
    with pytest.raises(InvalidCommand):
        service.append_token(sid, AppendRequest(token_id=len(VOCAB)))
    with pytest.raises(InvalidCommand):
        service.append_token(sid, AppendRequest(token_id=1, category="other"))
    with pytest.raises(InvalidCommand):
        service.append_token(sid, AppendRequest(category="nonsense"))
    assert service.store.load(sid)[-1].version == 2  # nothing stored


def test_errors_before_prompt_and_unknown_model(service: StudentSessions) -> None:
    sid = service.create_session().session_id
    with pytest.raises(PromptNotSet):
        service.next_token_probs(sid)
    with pytest.raises(PromptNotSet):
        service.append_token(sid, AppendRequest(token_id=1))
    with pytest.raises(NothingToUndo):
        service.undo(sid)
    with pytest.raises(UnknownModel):
        service.create_session("gpt-17")


@pytest.mark.parametrize(
    "sid",
    ["nope", "", "00000000-0000-0000-0000-00000000000Z", "{00000000-0000-4000-8000-000000000001}"],
)
def test_malformed_and_unknown_ids_are_not_found(service: StudentSessions, sid: str) -> None:
    with pytest.raises(SessionNotFound):
        service.get_session(sid)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(threshold=-0.1),
        dict(threshold=1.5),
        dict(threshold=float("nan")),
        dict(temperature=0),
        dict(temperature=float("inf")),
        dict(temperature=11),
        dict(other_top_k=101),
        dict(other_top_k=-1),
    ],
)
def test_sampling_parameters_are_bounded(service: StudentSessions, kwargs: dict) -> None:  # type: ignore[type-arg]
    sid = service.create_session().session_id
    service.set_prompt(sid, "The cat")
    with pytest.raises(InvalidCommand):
        service.next_token_probs(sid, **kwargs)


def test_limits(service: StudentSessions) -> None:
    sid = service.create_session().session_id
    with pytest.raises(InvalidCommand):
        service.set_prompt(sid, "x" * 51)
    service.set_prompt(sid, "The cat")
    for _ in range(5):
        service.append_token(sid, AppendRequest(token_text=" sat"))
    with pytest.raises(Exception, match="generated tokens"):
        service.append_token(sid, AppendRequest(token_text=" sat"))


def test_deleted_session_is_gone_for_students(service: StudentSessions) -> None:
    sid = service.create_session().session_id
    service.delete_session(sid)
    for call in (
        lambda: service.get_session(sid),
        lambda: service.set_prompt(sid, "a"),
        lambda: service.undo(sid),
        lambda: service.delete_session(sid),
    ):
        with pytest.raises(SessionNotFound):
            call()


def test_expiry_and_purge(service: StudentSessions, clock: Clock) -> None:
    idle = service.create_session().session_id
    busy = service.create_session().session_id
    clock.advance(3000)
    service.get_session(busy)  # last_accessed moves on reads
    clock.advance(700)
    with pytest.raises(SessionNotFound):
        service.get_session(idle)  # idle past the TTL, even before the job ran
    service.get_session(busy)
    assert maintenance_of(service).purge_expired() == (1, 0)
    assert service.store.get_record(idle).status == "expired"
    assert maintenance_of(service).purge_expired() == (0, 0)  # idempotent
    clock.advance(86400 + 1)
    # idle is purged (expired longer than the retention); busy has only now expired
    assert maintenance_of(service).purge_expired() == (1, 1)
    assert service.store.load(idle) == [] and service.store.get_record(idle) is None
    assert service.store.get_record(busy).status == "expired"
    clock.advance(86400 + 1)
    assert maintenance_of(service).purge_expired() == (0, 1)
    assert service.store.get_record(busy) is None


def test_retention_zero_purges_at_expiry(clock: Clock) -> None:
    settings = Settings(session_ttl=60, retention=0, scheduler_enabled=False)
    service = StudentSessions(InMemoryEventStore(), FakeModels(), settings, clock=clock)
    sid = service.create_session().session_id
    clock.advance(61)
    assert maintenance_of(service).purge_expired() == (1, 1)
    assert service.store.load(sid) == []


def test_last_accessed_moves_on_every_request(service: StudentSessions, clock: Clock) -> None:
    sid = service.create_session().session_id
    seen = []
    for call in (
        lambda: service.set_prompt(sid, "The cat"),
        lambda: service.get_session(sid),
        lambda: service.next_token_probs(sid),
        lambda: service.append_token(sid, AppendRequest(token_text=" sat")),
        lambda: service.undo(sid),
    ):
        clock.advance(5)
        call()
        seen.append(service.store.get_record(sid).last_accessed)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_rebuild_index_from_events(service: StudentSessions) -> None:
    sid = service.create_session().session_id
    service.set_prompt(sid, "The cat")
    service.append_token(sid, AppendRequest(token_text=" sat"))
    before = service.store.get_record(sid)
    service.store._records.clear()  # type: ignore[attr-defined]
    assert maintenance_of(service).rebuild_index() == 1
    after = service.store.get_record(sid)
    assert (after.version, after.generated_count, after.model_name) == (
        before.version,
        before.generated_count,
        before.model_name,
    )


class CountingStore(InMemoryEventStore):
    """Counts how many events each load returns: a replay reads the whole stream."""

    def __init__(self) -> None:
        super().__init__()
        self.events_read = 0

    def load(self, session_id, up_to_version=None, after_version=0):  # type: ignore[no-untyped-def]
        events = super().load(session_id, up_to_version, after_version)
        self.events_read += len(events)
        return events


def test_snapshots_read_only_new_events_and_catch_up_with_other_processes(
    clock: Clock,
) -> None:
    """Two services on one store are two server processes. Each keeps the sessions it
    served as snapshots: a request reads no events when nothing changed, only the new
    ones when the other process wrote, and always sees the latest state."""
    store = CountingStore()
    settings = Settings(session_ttl=3600, retention=86400, scheduler_enabled=False)
    here = StudentSessions(store, FakeModels(), settings, clock=clock, rng=random.Random(1))
    there = StudentSessions(store, FakeModels(), settings, clock=clock, rng=random.Random(2))
    sid = here.create_session().session_id
    here.set_prompt(sid, "The cat")
    for _ in range(4):
        here.append_token(sid, AppendRequest(token_text=" sat"))
    store.events_read = 0
    for _ in range(10):
        here.next_token_probs(sid)
        here.get_session(sid)
    assert store.events_read == 0  # all from the snapshot
    there.undo(sid)  # the other process replays the stream once (6 events) and writes
    there.append_token(sid, AppendRequest(token_text=" on"))
    assert store.events_read == 6
    store.events_read = 0
    view = here.get_session(sid)
    assert store.events_read == 2  # the Undone and the TokenAppended since version 6
    assert view.current_text == "The cat sat sat sat on" and view.state.version == 8
    assert view.state == d.replay(store.load(sid))
    here.undo(sid)
    assert there.get_session(sid).state == d.replay(store.load(sid))
    assert there.get_session(sid).current_text == "The cat sat sat sat"


class TouchCountingStore(InMemoryEventStore):
    def __init__(self) -> None:
        super().__init__()
        self.touches = 0

    def touch(self, session_id, now):  # type: ignore[no-untyped-def]
        self.touches += 1
        super().touch(session_id, now)


def test_rapid_reads_write_the_index_once_a_second(clock: Clock) -> None:
    """Every read answers with its own moment; the index row follows to the second, so a
    class's rapid reads do not each take the database's write lock."""
    store = TouchCountingStore()
    settings = Settings(session_ttl=3600, retention=86400, scheduler_enabled=False)
    service = StudentSessions(store, FakeModels(), settings, clock=clock)
    sid = service.create_session().session_id
    service.set_prompt(sid, "The cat")
    answers = []
    for _ in range(10):
        clock.advance(0.25)
        answers.append(service.next_token_probs(sid).view.last_accessed)
    assert answers == sorted(answers) and len(set(answers)) == 10
    assert store.touches == 2  # at +1.0 s and +2.0 s after the prompt was set
    record = store.get_record(sid)
    assert clock.now - record.last_accessed < timedelta(seconds=1)
