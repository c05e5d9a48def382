"""The facts a session is made of.

Events are written once and never updated. Each carries its envelope (stream, version,
time) and a payload; :func:`payload_of` and :func:`event_from_record` are the only
translation between the two, so the stored JSON is exactly the fields below.
Version-1 payloads are documented for analysts in ``docs/events.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Event:
    session_id: str
    version: int
    occurred_at: datetime

    SCHEMA_VERSION: ClassVar[int] = 1

    @property
    def type(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, kw_only=True)
class SessionCreated(Event):
    """``nickname``: the name a student joined an opened class with (teachers only see
    it); None for sessions made without one (and for every session before issue 15)."""

    model_name: str
    class_code: str | None = None
    seed: int | None = None
    nickname: str | None = None


@dataclass(frozen=True, kw_only=True)
class SetPrompt(Event):
    """The student typed a prompt. ``token_ids`` are what the model sees, kept so replay
    never needs the tokenizer. The card names this event; analysts query it by name."""

    prompt: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class TokenFacts:
    """What is known of a chosen token at the moment it is chosen: the one value object
    shared by the service's choice, the ``TokenAppended`` event, and the token in a
    session's state and history. A new fact is a new field here (plus its line in the
    API's history schema and in docs/events.md); every other place copies the fields
    generically (:func:`facts_of`)."""

    token_id: int
    token_text: str
    probability: float
    log_probability: float
    category: str  # "above_threshold" | "other"
    sampled_from_other: bool
    selection: str  # "explicit" | "other" | "spin"
    threshold: float
    temperature: float
    rank: int
    other_total_probability: float | None = None
    other_token_count: int | None = None
    selected_token_rank: int | None = None
    # The sampling rules when it was chosen (off in events from before the rules) and its
    # probability renormalized over the tokens they kept (null before the rules).
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    sampling_probability: float | None = None

    @property
    def surprisal_bits(self) -> float:
        """-log2 of the recorded probability, from the recorded natural log-probability
        (a token with no chance was recorded at the floor, so this stays finite). Derived,
        not stored: old events have it too."""
        return -self.log_probability / math.log(2.0)


FACT_NAMES = tuple(f.name for f in fields(TokenFacts))
# Worked out from the stored facts (properties of TokenFacts), never stored themselves.
DERIVED_FACT_NAMES = ("surprisal_bits",)


def facts_of(value: TokenFacts) -> dict[str, Any]:
    """The token facts of ``value`` (a TokenFacts or any subclass) as keyword arguments."""
    return {name: getattr(value, name) for name in FACT_NAMES}


@dataclass(frozen=True, kw_only=True)
class TokenAppended(Event, TokenFacts):
    """A token joined the text. For the Other wedge this stores the token that was
    sampled, so replay never samples again."""


@dataclass(frozen=True, kw_only=True)
class Undone(Event):
    token_id: int
    undone_version: int


@dataclass(frozen=True, kw_only=True)
class SessionDeleted(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class SessionForked(Event):
    """A new session copied from another as it was at ``parent_version``: the new
    stream's first event (instead of SessionCreated). It carries everything replay needs,
    so the fork outlives its parent: the prompt, its ids, and each generated token's
    facts (the :class:`TokenFacts` fields plus ``selected_at``, an ISO 8601 string)."""

    model_name: str
    class_code: str | None = None
    seed: int | None = None
    prompt: str | None = None
    token_ids: tuple[int, ...] = ()
    generated: tuple[dict[str, Any], ...] = ()
    parent_session_id: str
    parent_version: int


@dataclass(frozen=True, kw_only=True)
class GuessMade(Event):
    """A student's guess of the next word in a round, in the student's session stream,
    scored when it was made so replay never asks the model. ``token_ids`` are what was
    scored (the text with a leading space when it starts with a letter or digit and the
    prompt ends without one); the probabilities are at the round's temperature."""

    round_id: str
    text: str
    token_ids: tuple[int, ...]
    first_token_probability: float
    first_token_rank: int
    text_probability: float  # the product of each token's probability, in turn
    text_log_probability: float
    single_token: bool


# ---------------------------------------------------------------- a class's stream
# A class a teacher opened is its own stream, ``class:<code>`` (domain/classes.py).


@dataclass(frozen=True, kw_only=True)
class ClassOpened(Event):
    class_code: str
    name: str


@dataclass(frozen=True, kw_only=True)
class ClassClosed(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class ClassReopened(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class RoundStarted(Event):
    """A guess-first round: the class guesses the word after ``prompt`` on
    ``model_name`` at ``temperature``; ``threshold`` shapes the revealed wheel."""

    round_id: str
    prompt: str
    token_ids: tuple[int, ...]
    model_name: str
    temperature: float
    threshold: float


@dataclass(frozen=True, kw_only=True)
class RoundRevealed(Event):
    round_id: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        SessionCreated,
        SetPrompt,
        TokenAppended,
        Undone,
        SessionDeleted,
        SessionForked,
        GuessMade,
        ClassOpened,
        ClassClosed,
        ClassReopened,
        RoundStarted,
        RoundRevealed,
    )
}
_WITH_TOKEN_IDS = frozenset({"SetPrompt", "SessionForked", "GuessMade", "RoundStarted"})
_ENVELOPE = frozenset({"session_id", "version", "occurred_at"})


class UnknownEventType(ValueError):
    pass


def payload_of(event: Event) -> dict[str, Any]:
    """The JSON payload stored for ``event`` (tuples become lists)."""
    payload: dict[str, Any] = {}
    for f in fields(event):
        if f.name in _ENVELOPE:
            continue
        value = getattr(event, f.name)
        payload[f.name] = list(value) if isinstance(value, tuple) else value
    return payload


def event_from_record(
    type_name: str,
    schema_version: int,
    payload: dict[str, Any],
    *,
    session_id: str,
    version: int,
    occurred_at: datetime,
) -> Event:
    """Rebuild an event from a stored row, upcasting older payload versions."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEventType(type_name)
    payload = _upcast(cls, schema_version, dict(payload))
    if type_name in _WITH_TOKEN_IDS:
        payload["token_ids"] = tuple(payload["token_ids"])
    if cls is SessionForked:
        payload["generated"] = tuple(dict(token) for token in payload["generated"])
    known = {f.name for f in fields(cls)} - _ENVELOPE
    return cls(
        session_id=session_id,
        version=version,
        occurred_at=occurred_at,
        **{k: v for k, v in payload.items() if k in known},
    )


def _upcast(cls: type[Event], schema_version: int, payload: dict[str, Any]) -> dict[str, Any]:
    # Version 1 is the only version so far. A later version adds a branch here that turns
    # an old payload into the new shape; stored rows are never rewritten.
    if schema_version > cls.SCHEMA_VERSION:
        raise UnknownEventType(f"{cls.__name__} schema version {schema_version} is newer than ours")
    return payload
