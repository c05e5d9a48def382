"""Rows of the class read models (``class_index``, ``nickname_claims``, ``round_index``,
``guess_index``), as the store hands them back. Plain dataclasses: the services import
them without importing SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tokenwheel.domain.classes import ClassState, Round
from tokenwheel.domain.events import GuessMade


@dataclass(frozen=True)
class ClassRecord:
    class_code: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime  # the class stream's last event
    closed_at: datetime | None
    last_activity: datetime  # the last class event or join: what the purge looks at
    version: int


def class_record(state: ClassState, last_activity: datetime) -> ClassRecord:
    return ClassRecord(
        class_code=state.class_code,
        name=state.name,
        status=state.status,
        created_at=state.opened_at,
        updated_at=state.updated_at,
        closed_at=state.closed_at,
        last_activity=max(last_activity, state.updated_at),
        version=state.version,
    )


@dataclass(frozen=True)
class RoundRecord:
    round_id: str
    class_code: str
    prompt: str
    model_name: str
    temperature: float
    threshold: float
    status: str
    started_at: datetime
    revealed_at: datetime | None


def round_record(class_code: str, r: Round) -> RoundRecord:
    return RoundRecord(
        round_id=r.round_id,
        class_code=class_code,
        prompt=r.prompt,
        model_name=r.model_name,
        temperature=r.temperature,
        threshold=r.threshold,
        status=r.status,
        started_at=r.started_at,
        revealed_at=r.revealed_at,
    )


@dataclass(frozen=True)
class NicknameClaim:
    """``nickname_key`` is the folded nickname (``rules.check_nickname``): UNIQUE with
    the class code, so two racing joins cannot both take one nickname."""

    class_code: str
    nickname_key: str
    nickname: str
    session_id: str
    claimed_at: datetime


@dataclass(frozen=True)
class GuessRecord:
    round_id: str
    session_id: str
    class_code: str
    text: str
    token_ids: list[int]
    first_token_probability: float
    first_token_rank: int
    text_probability: float
    made_at: datetime


def guess_record(event: GuessMade, class_code: str) -> GuessRecord:
    return GuessRecord(
        round_id=event.round_id,
        session_id=event.session_id,
        class_code=class_code,
        text=event.text,
        token_ids=list(event.token_ids),
        first_token_probability=event.first_token_probability,
        first_token_rank=event.first_token_rank,
        text_probability=event.text_probability,
        made_at=event.occurred_at,
    )


@dataclass(frozen=True)
class Member:
    """A student who joined a class: the session and the nickname (teachers only)."""

    session_id: str
    nickname: str
    joined_at: datetime


@dataclass(frozen=True)
class ClassPage:
    records: list[ClassRecord]
    total: int
