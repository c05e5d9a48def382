"""The lab's use cases on an in-memory store and the fake model: forks and many spins."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakeModels
from tests.services import maintenance_of
from tokenwheel.domain import session as d
from tokenwheel.domain.errors import InvalidCommand, PromptNotSet, SessionNotFound
from tokenwheel.domain.events import FACT_NAMES, SessionForked, event_from_record, payload_of
from tokenwheel.services import AppendRequest, IdempotencyKey, Lab, SpinRequest, StudentSessions
from tokenwheel.services.lab import wheel_counts
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
def sessions(clock: Clock) -> StudentSessions:
    settings = Settings(
        session_ttl=3600, retention=7200, max_generated_tokens=20, scheduler_enabled=False
    )
    return StudentSessions(
        InMemoryEventStore(), FakeModels(), settings, clock=clock, rng=random.Random(1)
    )


@pytest.fixture
def lab(sessions: StudentSessions, clock: Clock) -> Lab:
    return Lab(
        sessions.store, sessions.models.models, sessions.settings, clock=clock, rng=random.Random(2)
    )


def _story(sessions: StudentSessions, clock: Clock) -> str:
    """A session with a prompt, two spins, an Other sample, an undo and an append."""
    sid = sessions.create_session(class_code="lab-1", seed=7).session_id
    sessions.set_prompt(sid, "The cat")
    for _ in range(2):
        clock.advance(1)
        sessions.spin(sid, SpinRequest(threshold=0.05))
    sessions.append_token(sid, AppendRequest(category="other", threshold=0.05))
    sessions.undo(sid)
    sessions.append_token(sid, AppendRequest(token_id=3, temperature=0.7))
    return sid


def _tokens(state: d.SessionState) -> list[dict[str, object]]:
    return [
        {**{n: getattr(t, n) for n in FACT_NAMES}, "selected_at": t.selected_at}
        for t in state.generated
    ]


@pytest.mark.parametrize("at", [None, 1, 2, 3, 4, 5, 6, 7])
def test_a_fork_replays_to_the_parent_at_its_version_without_the_parent(
    sessions: StudentSessions, lab: Lab, clock: Clock, at: int | None
) -> None:
    parent_id = _story(sessions, clock)
    parent = sessions.get_session(parent_id).state
    assert parent.version == 7
    version = parent.version if at is None else at
    was = sessions.repository.state_at(parent_id, version)
    before = list(sessions.store.load(parent_id))

    forked = lab.fork(parent_id, at)

    fork = forked.state
    assert fork.session_id != parent_id and fork.version == 1
    assert (fork.forked_from_session_id, fork.forked_from_version) == (parent_id, version)
    assert (fork.model_name, fork.class_code, fork.seed) == ("fake", "lab-1", 7)
    assert (fork.prompt, fork.prompt_token_ids) == (was.prompt, was.prompt_token_ids)
    assert _tokens(fork) == _tokens(was)
    assert forked.view.current_text == sessions.views.view(was).current_text
    assert sessions.store.load(parent_id) == before  # the parent is unchanged
    events = sessions.store.load(fork.session_id)
    assert [type(e) for e in events] == [SessionForked]
    # the parent goes away (deleted, then purged); the fork, kept in use, replays alone
    sessions.delete_session(parent_id)
    for _ in range(4):
        clock.advance(3000)
        sessions.get_session(fork.session_id)
        maintenance_of(sessions).purge_expired()
    assert sessions.store.load(parent_id) == []
    stored = [
        event_from_record(
            e.type,
            1,
            json.loads(json.dumps(payload_of(e))),
            session_id=e.session_id,
            version=e.version,
            occurred_at=e.occurred_at,
        )
        for e in sessions.store.load(fork.session_id)
    ]
    replayed = d.replay(stored)
    assert replayed is not None and _tokens(replayed) == _tokens(was)
    assert replayed.token_ids == was.token_ids
    # and it goes on like any session
    if fork.prompt is None:
        sessions.set_prompt(fork.session_id, "A dog")
        fork = sessions.get_session(fork.session_id).state
    later = sessions.spin(fork.session_id, SpinRequest())
    assert later.view.state.version == fork.version + 1
    assert sessions.undo(fork.session_id).view.state.generated == fork.generated
    if fork.generated:
        assert sessions.undo(fork.session_id).view.state.generated == fork.generated[:-1]


def test_the_index_lists_a_fork_as_a_session(
    sessions: StudentSessions, lab: Lab, clock: Clock
) -> None:
    parent_id = _story(sessions, clock)
    fork = lab.fork(parent_id, 4).state
    record = sessions.store.get_record(fork.session_id)
    assert record is not None and record.version == 1 and record.class_code == "lab-1"
    assert record.generated_count == len(fork.generated) == 2


@pytest.mark.parametrize("version", [0, 8, -1, True, 1.5])
def test_a_fork_at_a_version_the_session_never_had_is_refused(
    sessions: StudentSessions, lab: Lab, clock: Clock, version: object
) -> None:
    parent_id = _story(sessions, clock)
    ids = set(sessions.store.session_ids())
    with pytest.raises(InvalidCommand):
        lab.fork(parent_id, version)  # type: ignore[arg-type]
    assert set(sessions.store.session_ids()) == ids


def test_no_fork_of_an_unknown_or_deleted_session(
    sessions: StudentSessions, lab: Lab, clock: Clock
) -> None:
    parent_id = _story(sessions, clock)
    sessions.delete_session(parent_id)
    ids = set(sessions.store.session_ids())
    for sid in (parent_id, "00000000-0000-0000-0000-000000000000", "junk"):
        with pytest.raises(SessionNotFound):
            lab.fork(sid)
    assert set(sessions.store.session_ids()) == ids


def test_a_retried_fork_with_its_key_makes_one_session(
    sessions: StudentSessions, lab: Lab, clock: Clock
) -> None:
    parent_id = _story(sessions, clock)
    key = IdempotencyKey("k1", "POST /fork", "hash", scope="create:client")
    first = lab.fork(parent_id, 3, idempotency=key)
    again = lab.fork(parent_id, 3, idempotency=key)
    assert again.repeated and again.session_id == first.session_id
    assert again.state == first.state
    assert len(sessions.store.session_ids()) == 2


# ---------------------------------------------------------------- many spins


def test_wheel_counts_follow_the_probabilities() -> None:
    head = [0.4, 0.25, 0.15, 0.1]
    other = 0.1
    n = 10_000
    counts = wheel_counts(head, other, n, seed=12345)
    assert sum(counts) == n and len(counts) == len(head) + 1
    for p, count in zip([*head, other], counts, strict=True):
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(count - n * p) <= 4 * sigma, (p, count)
    assert wheel_counts(head, other, n, seed=12345) == counts
    assert wheel_counts(head, other, n, seed=54321) != counts
    # no Other wedge: nothing lands there
    assert wheel_counts([0.5, 0.5], 0.0, 100, seed=1)[-1] == 0


def test_sample_counts_the_wheel_and_changes_nothing(
    sessions: StudentSessions, lab: Lab, clock: Clock
) -> None:
    sid = _story(sessions, clock)
    events = list(sessions.store.load(sid))
    wheel = sessions.next_token_probs(sid, threshold=0.05).distribution
    result = lab.sample(sid, 1000, seed=99, threshold=0.05)
    assert result.n == 1000 and result.seed == 99 and result.version == 7
    assert [t.token for t in result.tokens] == list(wheel.above_threshold_tokens)
    assert result.other_probability == wheel.other_category.total_probability
    assert sum(t.count for t in result.tokens) + result.other_count == 1000
    n = 1000
    for p, count in [(t.token.probability, t.count) for t in result.tokens] + [
        (result.other_probability, result.other_count)
    ]:
        assert abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p)) + 1e-9
    assert lab.sample(sid, 1000, seed=99, threshold=0.05) == result
    fresh = lab.sample(sid, 10)
    assert fresh.seed >= 0 and lab.sample(sid, 10, seed=fresh.seed) == fresh
    assert sessions.store.load(sid) == events
    assert sessions.get_session(sid).state.version == 7


@pytest.mark.parametrize("n", [0, 1001, -5, True, 2.0])
def test_sample_refuses_a_bad_n(
    sessions: StudentSessions, lab: Lab, clock: Clock, n: object
) -> None:
    sid = _story(sessions, clock)
    with pytest.raises(InvalidCommand):
        lab.sample(sid, n)  # type: ignore[arg-type]


def test_sample_needs_a_prompt_and_a_session(sessions: StudentSessions, lab: Lab) -> None:
    sid = sessions.create_session().session_id
    with pytest.raises(PromptNotSet):
        lab.sample(sid, 5)
    with pytest.raises(SessionNotFound):
        lab.sample("00000000-0000-0000-0000-000000000000", 5)
    with pytest.raises(InvalidCommand):
        lab.sample(sid, 5, seed=-1)


def test_the_forked_payload_is_as_documented(
    sessions: StudentSessions, lab: Lab, clock: Clock
) -> None:
    parent_id = _story(sessions, clock)
    fork = lab.fork(parent_id, 3)
    (event,) = sessions.store.load(fork.session_id)
    payload = payload_of(event)
    assert set(payload) == {
        "model_name",
        "class_code",
        "seed",
        "prompt",
        "token_ids",
        "generated",
        "parent_session_id",
        "parent_version",
    }
    assert (payload["parent_session_id"], payload["parent_version"]) == (parent_id, 3)
    (token,) = payload["generated"]
    assert set(token) == {*FACT_NAMES, "selected_at"}
    assert json.loads(json.dumps(payload)) == payload
