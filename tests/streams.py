"""Sessions built by hand from domain decisions, for statistics, store and view tests."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenwheel.domain import session as d
from tokenwheel.domain.events import Event

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def sid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def token(
    token_id: int,
    p: float,
    rank: int,
    category: str = "above_threshold",
    selection: str = "explicit",
    temperature: float = 1.0,
) -> d.TokenFacts:
    other = category == "other"
    return d.TokenFacts(
        token_id=token_id,
        token_text=f" t{token_id}",
        probability=p,
        log_probability=math.log(p),
        category=category,
        sampled_from_other=selection == "other",
        selection=selection,
        threshold=0.1,
        temperature=temperature,
        rank=rank,
        # what a real wheel records for a token of its Other wedge
        other_total_probability=0.25 + p if other else None,
        other_token_count=49000 + rank if other else None,
        selected_token_rank=rank - 2 if other else None,
    )


def build(
    n: int,
    *steps: Any,
    model: str = "m",
    class_code: str | None = "c1",
    start_minutes: float = 0,
) -> list[Event]:
    """A stream from steps: a str sets the prompt, a TokenChoice appends, None undoes.
    It starts ``start_minutes`` after T0, one event a second."""
    start = T0 + timedelta(minutes=start_minutes)
    events: list[Event] = d.create_session(sid(n), model, start, class_code=class_code)
    return extend(events, *steps, start=start)


def extend(events: list[Event], *steps: Any, start: datetime = T0) -> list[Event]:
    """``events`` and the events of ``steps`` (as for :func:`build`), one a second after
    ``start``."""
    events = list(events)
    state = d.replay(events)
    assert state is not None
    for i, step in enumerate(steps, start=1):
        at = start + timedelta(seconds=i)
        if isinstance(step, str):
            new = d.set_prompt(state, step, (1, 2), at)
        elif step is None:
            new = d.undo(state, at)
        else:
            new = d.append_token(state, step, at, 100)
        state = d.apply(state, new[0])
        events += new
    return events


A = token(10, 0.5, 1)
B = token(11, 0.1, 3, "other", "other")
C = token(12, 0.2, 2, "other")  # picked from the Other list, not sampled
D = token(13, 0.4, 1)
E = token(14, 0.05, 9, "other", "other")
F = token(15, 0.3, 1)
