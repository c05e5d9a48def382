"""The class aggregate and a student's guess: decisions, replay, the stored form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tokenwheel.domain import classes as c
from tokenwheel.domain import session as d
from tokenwheel.domain.errors import (
    AlreadyGuessed,
    ClassNotOpen,
    Conflict,
    InvalidCommand,
    RoundNotFound,
)
from tokenwheel.domain.events import event_from_record, payload_of
from tokenwheel.domain.rules import check_nickname, normalize_class_code

T0 = datetime(2026, 12, 2, 9, tzinfo=UTC)
SID = "00000000-0000-4000-8000-000000000001"
SCORE = d.GuessScore(
    token_ids=(6, 15),
    first_token_probability=0.25,
    first_token_rank=2,
    text_probability=0.05,
    text_log_probability=-2.995732273553991,
)


def fold(state: c.ClassState | None, new: list) -> c.ClassState:  # type: ignore[type-arg]
    for e in new:
        state = c.apply(state, e)
    assert state is not None
    return state


def stored(events: list) -> list:  # type: ignore[type-arg]
    return [
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


def test_a_class_opens_closes_reopens_and_runs_rounds() -> None:
    events = c.open_class("K7P3XM", " 7b  Tuesday ", T0)
    state = fold(None, events)
    assert (state.stream_id, state.name, state.status) == ("class:K7P3XM", "7b Tuesday", "open")
    new = c.start_round(state, "r1", "The cat", (1, 3), "m", 1.0, 0.01, T0)
    events += new
    state = fold(state, new)
    with pytest.raises(Conflict):  # one open round at a time
        c.start_round(state, "r2", "The cat", (1, 3), "m", 1.0, 0.01, T0)
    new = c.reveal_round(state, "r1", T0)
    events += new
    state = fold(state, new)
    assert c.reveal_round(state, "r1", T0) == []  # a second reveal changes nothing
    with pytest.raises(RoundNotFound):
        c.reveal_round(state, "nope", T0)
    new = c.close_class(state, T0)
    events += new
    state = fold(state, new)
    assert c.close_class(state, T0) == []
    with pytest.raises(ClassNotOpen):
        c.start_round(state, "r2", "The cat", (1, 3), "m", 1.0, 0.01, T0)
    new = c.reopen_class(state, T0)
    events += new
    state = fold(state, new)
    assert state.status == "open" and state.current_round is not None
    assert state.current_round.status == "revealed" and state.version == 5
    assert c.replay(stored(events)) == state


def test_one_guess_per_round_by_a_student_with_a_nickname() -> None:
    created = d.create_session(SID, "m", T0, "K7P3XM", None, "Ana")
    state = d.replay(created)
    assert state is not None and state.nickname == "Ana"
    guessed = d.make_guess(state, "r1", "mats", SCORE, T0)
    after = d.apply(state, guessed[0])
    assert after.guessed_rounds == ("r1",) and guessed[0].single_token is False  # type: ignore[attr-defined]
    with pytest.raises(AlreadyGuessed):
        d.make_guess(after, "r1", "mat", SCORE, T0)
    assert d.make_guess(after, "r2", "mat", SCORE, T0)
    assert d.replay(stored([*created, *guessed])) == after
    anonymous = d.replay(d.create_session(SID, "m", T0, "K7P3XM"))
    assert anonymous is not None
    with pytest.raises(InvalidCommand):
        d.make_guess(anonymous, "r1", "mat", SCORE, T0)
    with pytest.raises(InvalidCommand):
        d.create_session(SID, "m", T0, None, None, "Ana")


@pytest.mark.parametrize(
    ("typed", "code"),
    [("k7p3xm", "K7P3XM"), ("K7P-3XM", "K7P3XM"), (" k7p 3xm ", "K7P3XM"), ("7b", None),
     ("K7P3X0", None), ("K7P3XI", None), ("K7P3XMM", None)],
)  # fmt: skip
def test_class_codes_typed_by_students(typed: str, code: str | None) -> None:
    assert normalize_class_code(typed) == code


def test_nicknames_fold_case_and_width() -> None:
    assert check_nickname("  Ana   B ") == ("Ana B", "ana b")
    assert check_nickname("ＡＮＡ")[1] == check_nickname("ana")[1]
    for bad in ("", "  ", "x" * 25, "a\x07", "a\u200b", None):
        with pytest.raises(InvalidCommand):
            check_nickname(bad)
