"""A class a teacher opens: its state, decisions and replay.

A class is its own stream in the event table, ``class:<code>``: opened, closed,
reopened, and the guess-first rounds started and revealed in it. The students' guesses
are facts of the students' own sessions (``GuessMade``); the class stream holds only
what the teacher did. As in :mod:`.session`, decisions are plain functions
``(state, args) -> [new events]`` and :func:`apply` folds one event in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from .errors import ClassNotOpen, Conflict, InvalidCommand, RoundNotFound
from .events import (
    ClassClosed,
    ClassOpened,
    ClassReopened,
    Event,
    RoundRevealed,
    RoundStarted,
)
from .rules import (
    CLASS_CLOSED,
    CLASS_OPEN,
    ROUND_OPEN,
    ROUND_REVEALED,
    check_class_name,
    check_prompt,
)

CLASS_STREAM_PREFIX = "class:"


def class_stream(class_code: str) -> str:
    """The stream id of a class (fits the events table's 36 characters)."""
    return CLASS_STREAM_PREFIX + class_code


def is_class_stream(stream_id: str) -> bool:
    return stream_id.startswith(CLASS_STREAM_PREFIX)


@dataclass(frozen=True)
class Round:
    round_id: str
    prompt: str
    token_ids: tuple[int, ...]
    model_name: str
    temperature: float
    threshold: float
    started_at: datetime
    revealed_at: datetime | None = None

    @property
    def status(self) -> str:
        return ROUND_OPEN if self.revealed_at is None else ROUND_REVEALED


@dataclass(frozen=True)
class ClassState:
    class_code: str
    name: str
    status: str
    version: int
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    rounds: tuple[Round, ...] = ()  # in the order they were started

    @property
    def stream_id(self) -> str:
        return class_stream(self.class_code)

    @property
    def current_round(self) -> Round | None:
        """The round started last (open or revealed), the one students see."""
        return self.rounds[-1] if self.rounds else None

    def round(self, round_id: str) -> Round:
        for r in self.rounds:
            if r.round_id == round_id:
                return r
        raise RoundNotFound("No such round in this class.")


# ---------------------------------------------------------------- decisions


def open_class(class_code: str, name: object, now: datetime) -> list[Event]:
    return [
        ClassOpened(
            session_id=class_stream(class_code),
            version=1,
            occurred_at=now,
            class_code=class_code,
            name=check_class_name(name),
        )
    ]


def close_class(state: ClassState, now: datetime) -> list[Event]:
    """Closing a closed class changes nothing (no event): a retried close is safe."""
    if state.status == CLASS_CLOSED:
        return []
    return [ClassClosed(session_id=state.stream_id, version=state.version + 1, occurred_at=now)]


def reopen_class(state: ClassState, now: datetime) -> list[Event]:
    if state.status == CLASS_OPEN:
        return []
    return [ClassReopened(session_id=state.stream_id, version=state.version + 1, occurred_at=now)]


def require_open(state: ClassState) -> None:
    if state.status != CLASS_OPEN:
        raise ClassNotOpen("This class is closed. The teacher can reopen it.")


def start_round(
    state: ClassState,
    round_id: str,
    prompt: str,
    token_ids: tuple[int, ...],
    model_name: str,
    temperature: float,
    threshold: float,
    now: datetime,
) -> list[Event]:
    """One round at a time: the current round must be revealed first."""
    require_open(state)
    check_prompt(prompt)
    if not token_ids:
        raise InvalidCommand("Prompt produced no tokens for this model.")
    current = state.current_round
    if current is not None and current.status == ROUND_OPEN:
        raise Conflict("This class has a round open; reveal it before starting another.")
    return [
        RoundStarted(
            session_id=state.stream_id,
            version=state.version + 1,
            occurred_at=now,
            round_id=round_id,
            prompt=prompt,
            token_ids=tuple(token_ids),
            model_name=model_name,
            temperature=temperature,
            threshold=threshold,
        )
    ]


def reveal_round(state: ClassState, round_id: str, now: datetime) -> list[Event]:
    """Revealing a revealed round changes nothing: a retried reveal is safe. A closed
    class may still reveal the round it has open."""
    if state.round(round_id).status == ROUND_REVEALED:
        return []
    return [
        RoundRevealed(
            session_id=state.stream_id,
            version=state.version + 1,
            occurred_at=now,
            round_id=round_id,
        )
    ]


# ---------------------------------------------------------------- replay


def apply(state: ClassState | None, event: Event) -> ClassState:
    if isinstance(event, ClassOpened):
        if state is not None:
            raise ValueError("ClassOpened must be the first event of a class stream")
        return ClassState(
            class_code=event.class_code,
            name=event.name,
            status=CLASS_OPEN,
            version=event.version,
            opened_at=event.occurred_at,
            updated_at=event.occurred_at,
        )
    if state is None:
        raise ValueError(f"{event.type} before ClassOpened")
    if event.version != state.version + 1:
        raise ValueError(f"event version {event.version} follows {state.version}")
    state = replace(state, version=event.version, updated_at=event.occurred_at)
    match event:
        case ClassClosed():
            return replace(state, status=CLASS_CLOSED, closed_at=event.occurred_at)
        case ClassReopened():
            return replace(state, status=CLASS_OPEN, closed_at=None)
        case RoundStarted():
            new = Round(
                round_id=event.round_id,
                prompt=event.prompt,
                token_ids=event.token_ids,
                model_name=event.model_name,
                temperature=event.temperature,
                threshold=event.threshold,
                started_at=event.occurred_at,
            )
            return replace(state, rounds=state.rounds + (new,))
        case RoundRevealed():
            rounds = tuple(
                replace(r, revealed_at=event.occurred_at) if r.round_id == event.round_id else r
                for r in state.rounds
            )
            return replace(state, rounds=rounds)
    raise ValueError(f"unknown class event {event!r}")


def replay(events: Iterable[Event]) -> ClassState | None:
    state: ClassState | None = None
    for event in events:
        state = apply(state, event)
    return state
