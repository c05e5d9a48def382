"""Decisions and replay for every event and rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokenwheel.domain import session as d
from tokenwheel.domain.errors import (
    GenerationLimitReached,
    InvalidCommand,
    NothingToUndo,
    PromptNotSet,
    SessionNotFound,
)
from tokenwheel.domain.events import (
    EVENT_TYPES,
    SessionCreated,
    SetPrompt,
    TokenAppended,
    Undone,
    UnknownEventType,
    event_from_record,
    payload_of,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SID = "00000000-0000-4000-8000-000000000001"


def choice(token_id: int = 7, text: str = " mat", p: float = 0.2, **kw: object) -> d.TokenFacts:
    base = dict(
        token_id=token_id,
        token_text=text,
        probability=p,
        log_probability=-1.6,
        category="above_threshold",
        sampled_from_other=False,
        selection="explicit",
        threshold=0.01,
        temperature=1.0,
        rank=1,
    )
    base.update(kw)
    return d.TokenFacts(**base)  # type: ignore[arg-type]


def run(state: d.SessionState | None, events: list) -> d.SessionState:  # type: ignore[type-arg]
    for e in events:
        state = d.apply(state, e)
    assert state is not None
    return state


@pytest.fixture
def created() -> d.SessionState:
    return run(None, d.create_session(SID, "fake", T0, class_code="7b", seed=3))


@pytest.fixture
def prompted(created: d.SessionState) -> d.SessionState:
    return run(created, d.set_prompt(created, "The cat", (1, 3), T0 + timedelta(seconds=1)))


def test_create_numbers_the_first_event_one(created: d.SessionState) -> None:
    assert created.version == 1
    assert created.model_name == "fake" and created.class_code == "7b" and created.seed == 3
    assert created.prompt is None and created.generated == ()


def test_set_prompt_records_verbatim_prompt_and_ids(prompted: d.SessionState) -> None:
    assert prompted.version == 2
    assert prompted.prompt == "The cat"
    assert prompted.token_ids == (1, 3)


INVISIBLE = [
    "\u200b",  # zero-width space
    "\u200c\u200d",  # zero-width non-joiner, joiner
    "\ufeff",  # byte order mark
    "\u2060 \u00a0\u3000",  # word joiner, no-break space, ideographic space
    "\u00ad\u200e\u202e",  # soft hyphen, direction marks
    "\x00\x7f\x85",  # control characters
    "\u2028\u2029",  # line and paragraph separators
]


@pytest.mark.parametrize("bad", ["", "   ", "\n\t", None, 5, *INVISIBLE])
def test_set_prompt_refuses_blank_or_non_string(created: d.SessionState, bad: object) -> None:
    with pytest.raises(InvalidCommand):
        d.set_prompt(created, bad, (1,), T0)  # type: ignore[arg-type]


@pytest.mark.parametrize("fine", ["a\u200b", "\u200bx", "a\x00b", ".", "\u3164x", "\U0001f600"])
def test_a_prompt_with_one_visible_character_is_not_blank(
    created: d.SessionState, fine: str
) -> None:
    assert d.set_prompt(created, fine, (1,), T0)[0].prompt == fine


def test_set_prompt_refuses_zero_tokens(created: d.SessionState) -> None:
    with pytest.raises(InvalidCommand):
        d.set_prompt(created, "x", (), T0)


def test_append_before_prompt_is_refused(created: d.SessionState) -> None:
    with pytest.raises(PromptNotSet):
        d.append_token(created, choice(), T0, max_generated=10)


def test_append_then_set_prompt_resets_generated(prompted: d.SessionState) -> None:
    s = run(prompted, d.append_token(prompted, choice(), T0, 10))
    s = run(s, d.append_token(s, choice(8, " dog"), T0, 10))
    assert s.generated_ids == (7, 8)
    s = run(s, d.set_prompt(s, "The dog", (1, 7), T0))
    assert s.generated == () and s.prompt == "The dog" and s.version == 5


def test_undo_pops_last_and_never_the_prompt(prompted: d.SessionState) -> None:
    s = run(prompted, d.append_token(prompted, choice(), T0, 10))
    s = run(s, d.append_token(s, choice(8, " dog"), T0, 10))
    events = d.undo(s, T0)
    assert isinstance(events[0], Undone)
    assert events[0].token_id == 8 and events[0].undone_version == 4
    s = run(s, events)
    s = run(s, d.undo(s, T0))
    assert s.generated == () and s.token_ids == (1, 3) and s.undo_count == 2
    with pytest.raises(NothingToUndo):
        d.undo(s, T0)


def test_generation_limit(prompted: d.SessionState) -> None:
    s = run(prompted, d.append_token(prompted, choice(), T0, 1))
    with pytest.raises(GenerationLimitReached):
        d.append_token(s, choice(), T0, 1)


def test_deleted_sessions_refuse_every_command(prompted: d.SessionState) -> None:
    s = run(prompted, d.delete_session(prompted, T0))
    assert s.deleted and s.deleted_at == T0
    for command in (
        lambda: d.set_prompt(s, "x", (1,), T0),
        lambda: d.append_token(s, choice(), T0, 10),
        lambda: d.undo(s, T0),
        lambda: d.delete_session(s, T0),
    ):
        with pytest.raises(SessionNotFound):
            command()


def test_other_choice_is_recorded_without_resampling(prompted: d.SessionState) -> None:
    c = choice(
        9,
        ".",
        0.001,
        category="other",
        sampled_from_other=True,
        selection="other",
        rank=40,
        other_total_probability=0.5,
        other_token_count=10,
        selected_token_rank=3,
    )
    [event] = d.append_token(prompted, c, T0, 10)
    assert isinstance(event, TokenAppended)
    s = d.apply(prompted, event)
    token = s.generated[-1]
    assert (token.token_id, token.sampled_from_other, token.selected_token_rank) == (9, True, 3)
    assert token.selected_at == T0 and token.version == 3


def test_apply_rejects_out_of_order_versions(prompted: d.SessionState) -> None:
    [event] = d.append_token(prompted, choice(), T0, 10)
    with pytest.raises(ValueError):
        d.apply(run(prompted, [event]), event)
    with pytest.raises(ValueError):
        d.apply(None, event)


def test_replay_of_stored_records_equals_live_state(prompted: d.SessionState) -> None:
    events = d.create_session(SID, "fake", T0)
    s = run(None, events)
    for make in (
        lambda s: d.set_prompt(s, "The cat", (1, 3), T0),
        lambda s: d.append_token(s, choice(), T0, 10),
        lambda s: d.append_token(
            s,
            choice(
                9,
                ".",
                category="other",
                sampled_from_other=True,
                selection="other",
                selected_token_rank=2,
                other_total_probability=0.3,
                other_token_count=5,
            ),
            T0,
            10,
        ),
        lambda s: d.undo(s, T0),
        lambda s: d.delete_session(s, T0),
    ):
        new = make(s)
        events += new
        s = run(s, new)
    # through the stored form (type, schema version, JSON payload) and back
    rebuilt = [
        event_from_record(
            e.type,
            e.SCHEMA_VERSION,
            payload_of(e),
            session_id=e.session_id,
            version=e.version,
            occurred_at=e.occurred_at,
        )
        for e in events
    ]
    assert rebuilt == events
    assert d.replay(rebuilt) == s


def test_payload_shapes_match_design() -> None:
    assert set(EVENT_TYPES) == {
        "SessionCreated",
        "SetPrompt",
        "TokenAppended",
        "Undone",
        "SessionDeleted",
        "SessionForked",
        "GuessMade",
        "ClassOpened",
        "ClassClosed",
        "ClassReopened",
        "RoundStarted",
        "RoundRevealed",
    }
    p = payload_of(
        SetPrompt(session_id=SID, version=2, occurred_at=T0, prompt="a", token_ids=(1, 2))
    )
    assert p == {"prompt": "a", "token_ids": [1, 2]}
    p = payload_of(SessionCreated(session_id=SID, version=1, occurred_at=T0, model_name="m"))
    assert p == {"model_name": "m", "class_code": None, "seed": None, "nickname": None}


def test_unknown_or_newer_events_are_refused() -> None:
    with pytest.raises(UnknownEventType):
        event_from_record("Nope", 1, {}, session_id=SID, version=1, occurred_at=T0)
    with pytest.raises(UnknownEventType):
        event_from_record(
            "Undone",
            99,
            {"token_id": 1, "undone_version": 2},
            session_id=SID,
            version=1,
            occurred_at=T0,
        )


def test_summary_counts(prompted: d.SessionState) -> None:
    s = run(prompted, d.append_token(prompted, choice(), T0, 10))
    s = run(s, d.append_token(s, choice(), T0, 10))
    s = run(s, d.undo(s, T0))
    summary = d.summarize(s)
    assert (summary.version, summary.generated_count, summary.undo_count) == (5, 1, 1)
