"""What the store hands back besides events (the interface every store keeps is
``tokenwheel.services.ports.EventStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenwheel.domain.errors import SessionNotFound, VersionConflict
from tokenwheel.domain.events import Event
from tokenwheel.domain.rules import ACTIVE, DELETED, EXPIRED, STATUSES
from tokenwheel.domain.session import SessionSummary

__all__ = ["ACTIVE", "DELETED", "EXPIRED", "STATUSES"]


@dataclass(frozen=True)
class SessionRecord:
    """A row of ``session_index``."""

    session_id: str
    model_name: str
    class_code: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    last_accessed: datetime
    expired_at: datetime | None
    version: int
    generated_count: int
    undo_count: int


def effective_status(record: SessionRecord, idle_before: datetime) -> str:
    """The status a reader should see: an active session idle since before
    ``idle_before`` (now minus the TTL) is expired even if the purge job has not marked
    it yet (students already get 404 for it)."""
    if record.status == ACTIVE and record.last_accessed < idle_before:
        return EXPIRED
    return record.status


@dataclass(frozen=True)
class SessionQuery:
    """Filters for listing sessions, newest first. ``created_after`` is inclusive,
    ``created_before`` exclusive; ``status`` is the effective status."""

    idle_before: datetime
    class_code: str | None = None
    model_name: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int | None = None
    offset: int = 0

    def matches(self, record: SessionRecord) -> bool:
        return (
            (self.class_code is None or record.class_code == self.class_code)
            and (self.model_name is None or record.model_name == self.model_name)
            and (self.status is None or effective_status(record, self.idle_before) == self.status)
            and (self.created_after is None or record.created_at >= self.created_after)
            and (self.created_before is None or record.created_at < self.created_before)
        )


@dataclass(frozen=True)
class SessionPage:
    records: list[SessionRecord]
    total: int  # matching sessions on all pages


@dataclass(frozen=True)
class EventFilter:
    """Which events to read: all of them, or one session's, some sessions', one class's,
    since a time; up to a global id (a live feed's snapshot, inclusive)."""

    session_id: str | None = None
    session_ids: tuple[str, ...] | None = None
    class_code: str | None = None
    since: datetime | None = None
    up_to_id: int | None = None


@dataclass(frozen=True)
class EventRow:
    """An event as stored, with its global ``id`` (the order of writing) and its session's
    class and model, for exports."""

    id: int
    event: Event
    class_code: str | None
    model_name: str | None


@dataclass(frozen=True)
class IdempotencyRecord:
    """A row of ``idempotency_keys``: where a request that carried an ``Idempotency-Key``
    left its session (``result_session_id`` at ``result_version``), plus a ``receipt`` of
    what the events do not hold (a spin's draw). It is written in the transaction that
    appends the request's events, so a retry finds both or neither and can never store
    a second event. ``session_id`` is the key's scope: the session, or ``create:...``."""

    session_id: str
    idempotency_key: str
    method_path: str
    request_hash: str
    result_session_id: str
    result_version: int
    receipt: dict[str, Any]
    created_at: datetime


def record_from_summary(
    summary: SessionSummary, last_accessed: datetime, previous: SessionRecord | None
) -> SessionRecord:
    """The index row after an append described by ``summary``."""
    expired_at: datetime | None
    if summary.deleted_at is not None:
        status, expired_at = DELETED, summary.deleted_at
    elif previous is not None and previous.status != ACTIVE:
        status, expired_at = previous.status, previous.expired_at
    else:
        status, expired_at = ACTIVE, None
    return SessionRecord(
        session_id=summary.session_id,
        model_name=summary.model_name,
        class_code=summary.class_code,
        status=status,
        created_at=summary.created_at,
        updated_at=summary.updated_at,
        last_accessed=last_accessed,
        expired_at=expired_at,
        version=summary.version,
        generated_count=summary.generated_count,
        undo_count=summary.undo_count,
    )


def check_append(session_id: str, expected_version: int, previous: SessionRecord | None) -> None:
    """Whether an append decided at ``expected_version`` may go ahead, judged by the
    session's index row (read under the append's lock). A new stream needs no row yet;
    any other append needs its session active (the purge job may have expired or deleted
    it since the service looked) and still at ``expected_version``. Every append rewrites
    the row in its own transaction, so the row's version is the stream's; the unique
    (session_id, version) index of the events stays the backstop."""
    if expected_version == 0:
        if previous is not None:
            raise VersionConflict(session_id, 0, previous.version)
    elif previous is None or previous.status != ACTIVE:
        raise SessionNotFound("Session does not exist or has expired.")
    elif previous.version != expected_version:
        raise VersionConflict(session_id, expected_version, previous.version)


def check_batch(new_events: Sequence[Event], expected_version: int) -> None:
    """A batch continues its stream without gaps or repeats, all in one stream."""
    versions = [e.version for e in new_events]
    if versions != list(range(expected_version + 1, expected_version + 1 + len(versions))):
        raise ValueError(f"event versions {versions} do not follow version {expected_version}")
    if len({e.session_id for e in new_events}) != 1:
        raise ValueError("one append writes to one session")
