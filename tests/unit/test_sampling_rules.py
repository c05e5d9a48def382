"""Sampling rules through the service, on the fake model: what is recorded, what is
refused, and events that replay to the same state, old ones included."""

from __future__ import annotations

import random

import pytest

from tests.fakes import FakeModels
from tests.unit.test_service import Clock
from tokenwheel.domain import session as d
from tokenwheel.domain.errors import InvalidCommand
from tokenwheel.domain.events import TokenAppended, event_from_record, payload_of
from tokenwheel.inference.types import SamplingRules
from tokenwheel.services import AppendRequest, SpinRequest, StudentSessions
from tokenwheel.settings import Settings
from tokenwheel.store.memory import InMemoryEventStore

RULES = SamplingRules(top_k=3, top_p=0.9, min_p=0.05)


@pytest.fixture
def service() -> StudentSessions:
    settings = Settings(session_ttl=3600, max_generated_tokens=50, scheduler_enabled=False)
    return StudentSessions(
        InMemoryEventStore(), FakeModels(), settings, clock=Clock(), rng=random.Random(3)
    )


def prompted(service: StudentSessions) -> str:
    sid = service.create_session(seed=7).session_id
    service.set_prompt(sid, "The cat")
    return sid


def test_spins_and_other_draws_record_the_rules_and_land_on_kept_tokens(
    service: StudentSessions,
) -> None:
    sid = prompted(service)
    for _ in range(20):
        state = service.get_session(sid).state
        wheel = service.next_token_probs(sid, 0.0, 1.0, 0, RULES).distribution
        kept = {t.token_id: t for t in wheel.above_threshold_tokens if t.kept}
        result = service.spin(sid, SpinRequest(threshold=0.0, rules=RULES))
        token = result.token
        assert token.token_id in kept
        assert (token.top_k, token.top_p, token.min_p) == (3, 0.9, 0.05)
        assert token.sampling_probability == kept[token.token_id].sampling_probability
        assert service.get_session(sid).state.version == state.version + 1


def test_with_the_rules_off_the_sampling_probability_is_the_probability(
    service: StudentSessions,
) -> None:
    sid = prompted(service)
    token = service.spin(sid, SpinRequest()).token
    assert (token.top_k, token.top_p, token.min_p) == (0, 1.0, 0.0)
    assert token.sampling_probability == token.probability


@pytest.mark.parametrize(
    "rules",
    [
        SamplingRules(top_p=0.0),
        SamplingRules(top_k=-1),
        SamplingRules(min_p=1.0),
        SamplingRules(top_p=1.5),
        SamplingRules(min_p=-0.1),
        SamplingRules(top_p=float("nan")),
    ],
    ids=str,
)
def test_bad_rules_are_refused_and_nothing_is_stored(
    service: StudentSessions, rules: SamplingRules
) -> None:
    sid = prompted(service)
    version = service.get_session(sid).state.version
    with pytest.raises(InvalidCommand):
        service.next_token_probs(sid, rules=rules)
    with pytest.raises(InvalidCommand):
        service.spin(sid, SpinRequest(rules=rules))
    with pytest.raises(InvalidCommand):
        service.append_token(sid, AppendRequest(category="other", rules=rules))
    with pytest.raises(InvalidCommand):
        service.append_token(sid, AppendRequest(token_id=1, rules=rules))
    assert service.get_session(sid).state.version == version


def test_events_with_the_rules_replay_to_the_same_state(service: StudentSessions) -> None:
    sid = prompted(service)
    service.spin(sid, SpinRequest(threshold=0.0, rules=RULES))
    wide = SamplingRules(top_k=30, min_p=0.001)
    service.append_token(sid, AppendRequest(category="other", threshold=0.05, rules=wide))
    state = service.get_session(sid).state
    events = service.store.load(sid)
    stored = [
        event_from_record(
            e.type,
            1,
            payload_of(e),
            session_id=e.session_id,
            version=e.version,
            occurred_at=e.occurred_at,
        )
        for e in events
    ]
    assert stored == list(events)
    assert d.replay(stored) == state
    appended = [e for e in stored if isinstance(e, TokenAppended)]
    assert [(e.top_k, e.top_p, e.min_p) for e in appended] == [(3, 0.9, 0.05), (30, 1.0, 0.001)]


def test_old_events_without_the_rule_fields_read_back_with_the_rules_off(
    service: StudentSessions,
) -> None:
    sid = prompted(service)
    service.spin(sid, SpinRequest())
    [event] = [e for e in service.store.load(sid) if isinstance(e, TokenAppended)]
    old = {
        k: v
        for k, v in payload_of(event).items()
        if k not in ("top_k", "top_p", "min_p", "sampling_probability")
    }
    again = event_from_record(
        "TokenAppended",
        1,
        old,
        session_id=sid,
        version=event.version,
        occurred_at=event.occurred_at,
    )
    assert isinstance(again, TokenAppended)
    assert (again.top_k, again.top_p, again.min_p, again.sampling_probability) == (
        0,
        1.0,
        0.0,
        None,
    )
    assert (again.token_id, again.probability) == (event.token_id, event.probability)
