"""A chosen token's facts are one value object, copied generically everywhere: a new
field of TokenFacts reaches the event, its stored payload, the session's state and (once
the history schema names it) every answer, with no other change."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from tests.unit.test_domain import choice
from tokenwheel.api import bodies
from tokenwheel.api import schemas as s
from tokenwheel.domain import session as d
from tokenwheel.domain.events import (
    DERIVED_FACT_NAMES,
    FACT_NAMES,
    TokenAppended,
    TokenFacts,
    event_from_record,
    payload_of,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def facts() -> TokenFacts:
    """Every fact set, the optional ones included."""
    return choice(
        category="other",
        sampled_from_other=True,
        selection="other",
        threshold=0.3,
        temperature=0.7,
        rank=4,
        other_total_probability=0.5,
        other_token_count=9,
        selected_token_rank=2,
    )


def test_every_fact_travels_from_the_choice_to_the_event_the_payload_and_the_state() -> None:
    state = d.replay(d.create_session("s", "m", T0) + d.set_prompt(_state(), "a", (1,), T0))
    assert state is not None
    [event] = d.append_token(state, facts(), T0, 10)
    assert isinstance(event, TokenAppended)
    payload = payload_of(event)
    assert set(payload) == set(FACT_NAMES)
    again = event_from_record(
        "TokenAppended", 1, payload, session_id="s", version=event.version, occurred_at=T0
    )
    token = d.apply(state, again).generated[-1]
    for name in FACT_NAMES:
        assert getattr(event, name) == getattr(token, name) == getattr(facts(), name), name


def test_the_history_entry_is_the_schemas_fields_filled_from_the_token() -> None:
    """The API builds a history entry from TokenHistorySchema's field names, so the schema
    is the one place that decides which facts an answer shows."""
    history_fields = set(s.TokenHistorySchema().fields)
    shown_facts = history_fields - set(bodies.DISPLAY_FIELDS) - {"selected_at"}
    assert set(bodies.HISTORY_FACTS) == shown_facts
    assert shown_facts <= set(FACT_NAMES) | set(DERIVED_FACT_NAMES)
    for name in DERIVED_FACT_NAMES:
        assert isinstance(getattr(TokenFacts, name), property), name
    assert {f.name for f in fields(TokenFacts)} == set(FACT_NAMES)


def _state() -> d.SessionState:
    state = d.replay(d.create_session("s", "m", T0))
    assert state is not None
    return state
