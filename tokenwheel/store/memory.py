"""An in-memory event store with the same contract, for fast unit tests."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from tokenwheel.domain.errors import VersionConflict
from tokenwheel.domain.events import Event
from tokenwheel.domain.session import SessionSummary

from .records import (
    ACTIVE,
    DELETED,
    EXPIRED,
    EventFilter,
    EventRow,
    IdempotencyRecord,
    SessionPage,
    SessionQuery,
    SessionRecord,
    check_append,
    check_batch,
    record_from_summary,
)


class InMemoryEventStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, list[Event]] = {}
        self._records: dict[str, SessionRecord] = {}
        self._ids: dict[tuple[str, int], int] = {}  # (session, version) -> global id
        self._next_id = itertools.count(1)
        self._keys: dict[tuple[str, str], IdempotencyRecord] = {}

    def append(
        self,
        new_events: Sequence[Event],
        expected_version: int,
        summary: SessionSummary,
        idempotency: IdempotencyRecord | None = None,
    ) -> None:
        if not new_events:
            return
        check_batch(new_events, expected_version)
        session_id = new_events[0].session_id
        with self._lock:
            previous = self._records.get(session_id)
            check_append(session_id, expected_version, previous)
            if idempotency is not None:
                key = (idempotency.session_id, idempotency.idempotency_key)
                if key in self._keys:
                    raise VersionConflict(session_id, expected_version, expected_version)
                self._keys[key] = idempotency
            self._streams[session_id] = self._streams.get(session_id, []) + list(new_events)
            for e in new_events:
                self._ids[(session_id, e.version)] = next(self._next_id)
            self._records[session_id] = record_from_summary(
                summary, new_events[-1].occurred_at, previous
            )

    def load(
        self, session_id: str, up_to_version: int | None = None, after_version: int = 0
    ) -> list[Event]:
        with self._lock:
            stream = list(self._streams.get(session_id, []))
        return [
            e
            for e in stream
            if e.version > after_version and (up_to_version is None or e.version <= up_to_version)
        ]

    def get_record(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            return self._records.get(session_id)

    def touch(self, session_id: str, now: datetime) -> None:
        with self._lock:
            record = self._records.get(session_id)
            if record and record.status == ACTIVE and record.last_accessed < now:
                self._records[session_id] = replace(record, last_accessed=now)

    def expire_idle(self, now: datetime, ttl_seconds: float) -> int:
        cutoff = now - timedelta(seconds=ttl_seconds)
        count = 0
        with self._lock:
            for sid, record in list(self._records.items()):
                if record.status == ACTIVE and record.last_accessed < cutoff:
                    self._records[sid] = replace(record, status=EXPIRED, expired_at=now)
                    count += 1
        return count

    def purge(self, cutoff: datetime, batch_size: int = 500) -> int:
        with self._lock:
            doomed = {
                sid
                for sid, r in self._records.items()
                if r.status in (EXPIRED, DELETED) and r.expired_at and r.expired_at <= cutoff
            }
            for sid in doomed:
                for e in self._streams.pop(sid, []):
                    self._ids.pop((sid, e.version), None)
                self._records.pop(sid, None)
            for key in [k for k in self._keys if k[0] in doomed]:
                del self._keys[key]
        return len(doomed)

    def get_idempotency(self, session_id: str, key: str) -> IdempotencyRecord | None:
        with self._lock:
            return self._keys.get((session_id, key))

    def drop_idempotency(self, session_id: str, key: str) -> None:
        with self._lock:
            self._keys.pop((session_id, key), None)

    def purge_idempotency(self, cutoff: datetime) -> int:
        with self._lock:
            doomed = [k for k, r in self._keys.items() if r.created_at < cutoff]
            for key in doomed:
                del self._keys[key]
        return len(doomed)

    def ping(self) -> None:
        return None

    def session_ids(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def rebuild_record(self, summary: SessionSummary, last_accessed: datetime) -> None:
        with self._lock:
            previous = self._records.get(summary.session_id)
            self._records[summary.session_id] = record_from_summary(
                summary, last_accessed, previous
            )

    def list_sessions(self, query: SessionQuery) -> SessionPage:
        with self._lock:
            matching = [r for r in self._records.values() if query.matches(r)]
        matching.sort(key=lambda r: (r.created_at, r.session_id), reverse=True)
        end = None if query.limit is None else query.offset + query.limit
        return SessionPage(records=matching[query.offset : end], total=len(matching))

    def event_rows(self, where: EventFilter) -> Iterator[EventRow]:
        with self._lock:
            rows: list[EventRow] = []
            for sid, stream in self._streams.items():
                record = self._records.get(sid)
                class_code = record.class_code if record else None
                if where.session_id is not None and sid != where.session_id:
                    continue
                if where.session_ids is not None and sid not in where.session_ids:
                    continue
                if where.class_code is not None and class_code != where.class_code:
                    continue
                rows.extend(
                    EventRow(
                        id=self._ids[(sid, e.version)],
                        event=e,
                        class_code=class_code,
                        model_name=record.model_name if record else None,
                    )
                    for e in stream
                    if (where.since is None or e.occurred_at >= where.since)
                    and (where.up_to_id is None or self._ids[(sid, e.version)] <= where.up_to_id)
                )
        return iter(sorted(rows, key=lambda row: row.id))

    # ------------------------------------------------------------ the live feed's reads

    def latest_event_id(self) -> int:
        with self._lock:
            return max(self._ids.values(), default=0)

    def class_events(
        self, class_code: str, after_id: int, up_to_id: int, limit: int
    ) -> list[EventRow]:
        rows = self.event_rows(EventFilter(class_code=class_code, up_to_id=up_to_id))
        return [row for row in rows if row.id > after_id][:limit]
