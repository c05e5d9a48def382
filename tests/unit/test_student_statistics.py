"""Each student's numbers in the class statistics (issue 15, item 5), on sessions built by
hand and checked against sums done by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.streams import T0, A, B, C, D, E, F, build, extend, sid, token
from tokenwheel.domain import session as d
from tokenwheel.domain.events import Event
from tokenwheel.domain.statistics import class_statistics, student_statistics


def joined(n: int, nickname: str | None, *steps: object, minutes: float = 0) -> list[Event]:
    """A session that joined class c1 with ``nickname``, ``minutes`` after T0."""
    start = T0 + timedelta(minutes=minutes)
    created = d.create_session(sid(n), "m", start, class_code="c1", nickname=nickname)
    return extend(created, *steps, start=start)


def states(*streams: list[Event]) -> list[d.SessionState]:
    replayed = [d.replay(s) for s in streams]
    assert all(s is not None for s in replayed)
    return [s for s in replayed if s is not None]


def test_each_student_by_hand() -> None:
    streams = [
        # the current text is D, E, F: B undone, A and C cleared by the new prompt
        joined(1, "Ana", "The cat", A, B, None, C, "The dog", D, E, F, minutes=1),
        joined(2, "Bo", "The cat", A, token(3, 0.2, 2), minutes=2),
        joined(3, "Cy", "The cat", minutes=3),  # no token yet
    ]
    ana, bo, cy = class_statistics("c1", streams).students
    assert (ana.session_id, ana.nickname, ana.tokens_generated) == (sid(1), "Ana", 3)
    assert ana.average_probability == pytest.approx((0.4 + 0.05 + 0.3) / 3)
    assert (ana.other_count, ana.other_rate) == (1, pytest.approx(1 / 3))  # E from Other
    assert (bo.nickname, bo.tokens_generated, bo.other_count, bo.other_rate) == ("Bo", 2, 0, 0)
    assert bo.average_probability == pytest.approx((0.5 + 0.2) / 2)
    assert (cy.nickname, cy.tokens_generated, cy.other_count) == ("Cy", 0, 0)
    assert cy.average_probability is None and cy.other_rate is None


def test_students_come_in_the_order_they_joined_whatever_the_order_of_the_streams() -> None:
    late = joined(1, "Zed", "The cat", A, minutes=5)
    early = joined(2, "Ann", "The cat", B, minutes=1)
    same_time = joined(3, "Bea", "The cat", C, minutes=1)
    students = student_statistics(states(late, same_time, early))
    assert [s.nickname for s in students] == ["Ann", "Bea", "Zed"]
    assert [s.session_id for s in students] == [sid(2), sid(3), sid(1)]


def test_a_session_of_an_old_free_text_code_has_no_nickname() -> None:
    (student,) = class_statistics("c1", [build(1, "The cat", C)]).students
    assert student.nickname is None
    # C was picked from the Other wedge's list: Other, though not sampled there
    assert (student.tokens_generated, student.other_count, student.other_rate) == (1, 1, 1.0)
    assert student.average_probability == C.probability


def test_the_students_agree_with_the_pooled_text() -> None:
    """Weighted by their token counts, the students' numbers are the class's."""
    streams = [
        joined(1, "Ana", "The cat", A, B, D),
        joined(2, "Bo", "The cat", E, F),
        joined(3, "Cy", "The dog"),
    ]
    stats = class_statistics("c1", streams)
    tokens = sum(s.tokens_generated for s in stats.students)
    assert tokens == stats.text.tokens_generated == 5
    assert sum(s.other_count for s in stats.students) == stats.text.other_count
    pooled = sum(
        s.average_probability * s.tokens_generated
        for s in stats.students
        if s.average_probability is not None
    )
    assert stats.text.average_probability == pytest.approx(pooled / tokens)


def test_a_class_nobody_joined_has_no_students() -> None:
    assert class_statistics("c1", []).students == ()
