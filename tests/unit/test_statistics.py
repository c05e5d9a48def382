"""Statistics and the timeline on hand-built sessions, checked against sums done by hand."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

from tests.streams import T0, A, B, C, D, E, F, build, sid, token
from tokenwheel.domain import session as d
from tokenwheel.domain.errors import InvalidCommand
from tokenwheel.domain.events import Event
from tokenwheel.domain.statistics import (
    class_statistics,
    session_statistics,
    text_statistics,
    timeline,
)


@pytest.fixture
def session() -> list[Event]:
    # v1 created, v2 prompt, v3 A, v4 B, v5 undo B, v6 C, v7 reset, v8 D, v9 E, v10 F
    return build(1, "The cat", A, B, None, C, "The dog", D, E, F)


def test_session_statistics_by_hand(session: list[Event]) -> None:
    stats = session_statistics(session)
    # the current text is D, E, F (A and C were cleared by the reset, B undone)
    assert (stats.prompt, stats.prompt_count, stats.tokens_appended, stats.undo_count) == (
        "The dog",
        2,
        6,
        1,
    )
    # Other was chosen three times (B undone, C cleared, E kept); one of them is in the text
    assert stats.other_picks == 3
    text = stats.text
    assert text.tokens_generated == 3
    assert text.average_probability == pytest.approx((0.4 + 0.05 + 0.3) / 3)
    assert (text.other_count, text.other_sampled_count) == (1, 1)
    assert text.other_rate == pytest.approx(1 / 3)
    assert text.log_probability == pytest.approx(math.log(0.4 * 0.05 * 0.3))
    assert text.perplexity == pytest.approx((0.4 * 0.05 * 0.3) ** (-1 / 3))
    assert (text.top_choice_count, text.top_choice_rate) == (2, pytest.approx(2 / 3))
    assert (stats.session_id, stats.model_name, stats.class_code) == (sid(1), "m", "c1")


def test_statistics_of_an_empty_text_are_null_not_zero_division() -> None:
    stats = session_statistics(build(1, "The cat", A, None))
    text = stats.text
    assert text.tokens_generated == 0 and stats.tokens_appended == 1 and stats.undo_count == 1
    assert text.average_probability is None and text.perplexity is None
    assert text.other_rate is None and text.top_choice_rate is None
    assert text.log_probability == 0.0
    assert text_statistics([]).tokens_generated == 0


def test_explicit_pick_from_other_counts_as_other_but_not_sampled() -> None:
    text = session_statistics(build(1, "The cat", C)).text
    assert (text.other_count, text.other_sampled_count, text.top_choice_count) == (1, 0, 0)


def test_timeline_marks_undone_and_cleared_tokens(session: list[Event]) -> None:
    entries = timeline(session)
    assert [e.version for e in entries] == list(range(1, 11))
    assert [e.type for e in entries] == [
        "SessionCreated",
        "SetPrompt",
        "TokenAppended",
        "TokenAppended",
        "Undone",
        "TokenAppended",
        "SetPrompt",
        "TokenAppended",
        "TokenAppended",
        "TokenAppended",
    ]
    undone = {e.version: e.undone for e in entries if e.type == "TokenAppended"}
    in_text = {e.version: e.in_final_text for e in entries if e.type == "TokenAppended"}
    assert undone == {3: False, 4: True, 6: False, 8: False, 9: False, 10: False}
    assert in_text == {3: False, 4: False, 6: False, 8: True, 9: True, 10: True}
    assert entries[0].undone is None and entries[4].in_final_text is None
    assert entries[3].payload["probability"] == 0.1 and entries[3].payload["selection"] == "other"
    assert entries[4].payload == {"token_id": 11, "undone_version": 4}
    assert entries[6].payload["prompt"] == "The dog"
    assert entries[9].occurred_at == T0 + timedelta(seconds=9)


def test_class_statistics_by_hand() -> None:
    sat, ran = token(3, 0.5, 1), token(8, 0.2, 2)
    streams = [
        build(1, "The cat", sat, F),
        build(2, "The cat", ran),
        build(3, "The cat", B, None, sat),  # undid an Other token, then chose " sat"
        build(4, "The cat", token(3, 0.7, 1, temperature=0.5)),  # another wheel: alone
        build(5, "The dog", sat),  # alone with its prompt
        build(6, "The cat"),  # no token yet
        build(7, "The cat", ran, model="other-model"),  # another model: alone
    ]
    stats = class_statistics("c1", streams)
    assert stats.session_count == 7
    assert (stats.prompt_count, stats.tokens_appended, stats.undo_count) == (7, 8, 1)
    # pooled over the current texts: sat, F, ran, sat, sat@0.5, sat, ran
    probabilities = [0.5, 0.3, 0.2, 0.5, 0.7, 0.5, 0.2]
    text = stats.text
    assert text.tokens_generated == 7
    assert text.average_probability == pytest.approx(sum(probabilities) / 7)
    assert text.log_probability == pytest.approx(sum(math.log(p) for p in probabilities))
    assert text.perplexity == pytest.approx(math.prod(probabilities) ** (-1 / 7))
    assert text.top_choice_count == 5 and text.other_count == 0
    assert stats.other_picks == 1  # session 3 took B from Other, then undid it

    (group,) = stats.first_tokens  # only one wheel was shared by two or more sessions
    assert (group.model_name, group.prompt, group.temperature, group.session_count) == (
        "m",
        "The cat",
        1.0,
        3,
    )
    assert [(t.token_id, t.observed) for t in group.tokens] == [(3, 2), (8, 1)]
    assert [t.expected for t in group.tokens] == [pytest.approx(1.5), pytest.approx(0.6)]
    assert group.tokens[0].probability == 0.5 and group.tokens[0].token_text == " t3"
    assert group.expected_unlisted == pytest.approx(0.9)


def test_class_statistics_of_sessions_without_tokens() -> None:
    stats = class_statistics("c1", [build(1), build(2, "The cat")])
    assert stats.session_count == 2 and stats.first_tokens == ()
    assert stats.text.tokens_generated == 0 and stats.text.perplexity is None


@pytest.mark.parametrize("code", ["7b", "Math-7_B", "x" * 32, "0"])
def test_valid_class_codes(code: str) -> None:
    state = d.replay(d.create_session(sid(1), "m", T0, class_code=code))
    assert state is not None and state.class_code == code


@pytest.mark.parametrize("code", ["", "x" * 33, "7 b", "7b\n", "é", "a/b", "a.b", 7])
def test_invalid_class_codes_are_refused(code: Any) -> None:
    with pytest.raises(InvalidCommand):
        d.create_session(sid(1), "m", T0, class_code=code)


def test_first_token_probability_is_the_recorded_value_not_a_rounded_mean() -> None:
    p = token(3, 0.1, 1)  # fsum([0.1] * 3) / 3 == 0.10000000000000002
    (group,) = class_statistics("c1", [build(n, "The cat", p) for n in range(3)]).first_tokens
    assert group.tokens[0].probability == 0.1
