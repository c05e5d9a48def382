"""The event store on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tokenwheel.domain.classes import CLASS_STREAM_PREFIX, class_stream, is_class_stream
from tokenwheel.domain.errors import VersionConflict
from tokenwheel.domain.events import Event, event_from_record, payload_of
from tokenwheel.domain.session import SessionSummary

from .database import write_connection
from .ordering import announce_append
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
from .tables import events, guess_index, idempotency_keys, nickname_claims, session_index


class SqlEventStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------ writes

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
        try:
            with write_connection(self.engine) as conn, conn.begin():
                # The index row first, locked (PostgreSQL; SQLite's BEGIN IMMEDIATE has
                # locked the database): the purge locks it too before deleting, so an
                # append and a purge of one session never interleave.
                previous = read_record(conn, session_id, lock=True)
                check_append(session_id, expected_version, previous)
                # ids in commit order, and a wake-up for live feeds (ordering.py)
                insert_events(conn, new_events, summary.class_code)
                record = record_from_summary(summary, new_events[-1].occurred_at, previous)
                write_record(conn, record, insert=previous is None)
                if idempotency is not None:
                    conn.execute(idempotency_keys.insert().values(**asdict(idempotency)))
        except IntegrityError as exc:
            # The unique (session_id, version) index caught a writer that read the same
            # version we did and committed first (PostgreSQL, READ COMMITTED), or the
            # same idempotency key was stored by a request that raced this one.
            raise VersionConflict(session_id, expected_version, None) from exc

    def touch(self, session_id: str, now: datetime) -> None:
        with write_connection(self.engine) as conn, conn.begin():
            conn.execute(
                session_index.update()
                .where(
                    session_index.c.session_id == session_id,
                    session_index.c.status == ACTIVE,
                    session_index.c.last_accessed < now,
                )
                .values(last_accessed=now)
            )

    def expire_idle(self, now: datetime, ttl_seconds: float) -> int:
        cutoff = now - timedelta(seconds=ttl_seconds)
        with write_connection(self.engine) as conn, conn.begin():
            result = conn.execute(
                session_index.update()
                .where(session_index.c.status == ACTIVE, session_index.c.last_accessed < cutoff)
                .values(status=EXPIRED, expired_at=now)
            )
            return result.rowcount or 0

    def purge(self, cutoff: datetime, batch_size: int = 500) -> int:
        """Each batch deletes events and index rows in one transaction, so a purge that
        dies halfway leaves whole sessions or none, and the next run finishes the rest."""
        purged = 0
        while True:
            with write_connection(self.engine) as conn, conn.begin():
                ids = (
                    conn.execute(
                        sa.select(session_index.c.session_id)
                        .where(
                            session_index.c.status.in_((EXPIRED, DELETED)),
                            session_index.c.expired_at <= cutoff,
                        )
                        .limit(batch_size)
                        .with_for_update()  # an append to one of them waits, then refuses
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    return purged
                conn.execute(events.delete().where(events.c.session_id.in_(ids)))
                conn.execute(
                    idempotency_keys.delete().where(idempotency_keys.c.session_id.in_(ids))
                )
                # a purged student's nickname and guesses go with the session
                conn.execute(nickname_claims.delete().where(nickname_claims.c.session_id.in_(ids)))
                conn.execute(guess_index.delete().where(guess_index.c.session_id.in_(ids)))
                conn.execute(session_index.delete().where(session_index.c.session_id.in_(ids)))
                purged += len(ids)

    def purge_idempotency(self, cutoff: datetime) -> int:
        with write_connection(self.engine) as conn, conn.begin():
            result = conn.execute(
                idempotency_keys.delete().where(idempotency_keys.c.created_at < cutoff)
            )
            return result.rowcount or 0

    def rebuild_record(self, summary: SessionSummary, last_accessed: datetime) -> None:
        with write_connection(self.engine) as conn, conn.begin():
            previous = read_record(conn, summary.session_id)
            record = record_from_summary(summary, last_accessed, previous)
            write_record(conn, record, insert=previous is None)

    # ------------------------------------------------------------ reads

    def load(
        self, session_id: str, up_to_version: int | None = None, after_version: int = 0
    ) -> list[Event]:
        query = sa.select(events).where(events.c.session_id == session_id)
        if after_version:
            query = query.where(events.c.version > after_version)
        if up_to_version is not None:
            query = query.where(events.c.version <= up_to_version)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(events.c.version)).all()
        return [event_from_row(row) for row in rows]

    def get_record(self, session_id: str) -> SessionRecord | None:
        with self.engine.connect() as conn:
            return read_record(conn, session_id)

    def get_idempotency(self, session_id: str, key: str) -> IdempotencyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(idempotency_keys).where(
                    idempotency_keys.c.session_id == session_id,
                    idempotency_keys.c.idempotency_key == key,
                )
            ).first()
        return IdempotencyRecord(**row._asdict()) if row else None

    def drop_idempotency(self, session_id: str, key: str) -> None:
        with write_connection(self.engine) as conn, conn.begin():
            conn.execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.session_id == session_id,
                    idempotency_keys.c.idempotency_key == key,
                )
            )

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def session_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            query = sa.select(events.c.session_id).distinct()
            # a class's stream is not a session (domain/classes.py)
            query = query.where(~events.c.session_id.startswith(CLASS_STREAM_PREFIX))
            return list(conn.execute(query).scalars())

    def list_sessions(self, query: SessionQuery) -> SessionPage:
        t = session_index.c
        conditions: list[sa.ColumnElement[bool]] = []
        if query.class_code is not None:
            conditions.append(t.class_code == query.class_code)
        if query.model_name is not None:
            conditions.append(t.model_name == query.model_name)
        if query.created_after is not None:
            conditions.append(t.created_at >= query.created_after)
        if query.created_before is not None:
            conditions.append(t.created_at < query.created_before)
        idle = sa.and_(t.status == ACTIVE, t.last_accessed < query.idle_before)
        if query.status == ACTIVE:
            conditions.append(sa.and_(t.status == ACTIVE, t.last_accessed >= query.idle_before))
        elif query.status == EXPIRED:
            conditions.append(sa.or_(t.status == EXPIRED, idle))
        elif query.status is not None:
            conditions.append(t.status == query.status)
        page = (
            sa.select(session_index)
            .where(*conditions)
            .order_by(t.created_at.desc(), t.session_id.desc())
            .offset(query.offset)
            .limit(query.limit)
        )
        count = sa.select(sa.func.count()).select_from(session_index).where(*conditions)
        with self.engine.connect() as conn:
            rows = conn.execute(page).all()
            total = conn.execute(count).scalar_one()
        return SessionPage(records=[SessionRecord(**row._asdict()) for row in rows], total=total)

    def event_rows(self, where: EventFilter) -> Iterator[EventRow]:
        """Streams (``yield_per``): an export of the whole table never sits in memory."""
        query = sa.select(events, session_index.c.class_code, session_index.c.model_name).join(
            session_index, session_index.c.session_id == events.c.session_id, isouter=True
        )
        if where.session_id is not None:
            query = query.where(events.c.session_id == where.session_id)
        if where.session_ids is not None:
            query = query.where(events.c.session_id.in_(where.session_ids))
        if where.class_code is not None:
            query = query.where(
                sa.or_(
                    session_index.c.class_code == where.class_code,
                    events.c.session_id == class_stream(where.class_code),
                )
            )
        if where.since is not None:
            query = query.where(events.c.occurred_at >= where.since)
        if where.up_to_id is not None:
            query = query.where(events.c.id <= where.up_to_id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=500).execute(query.order_by(events.c.id))
            for row in result:
                class_code = row.class_code
                if class_code is None and is_class_stream(row.session_id):
                    class_code = row.session_id[len(CLASS_STREAM_PREFIX) :]
                yield EventRow(
                    id=row.id,
                    event=event_from_row(row),
                    class_code=class_code,
                    model_name=row.model_name,
                )


def insert_events(conn: sa.Connection, new_events: Sequence[Event], class_code: str | None) -> None:
    """Insert ``new_events``, as the last writes of their transaction that can wait on
    another: ids are handed out in commit order and ``class_code``'s live readers are
    woken (``ordering.announce_append``: on PostgreSQL a lock held until commit, so
    every other row lock of the transaction must be taken before)."""
    announce_append(conn, class_code)
    conn.execute(
        events.insert(),
        [
            {
                "session_id": e.session_id,
                "version": e.version,
                "type": e.type,
                "schema_version": e.SCHEMA_VERSION,
                "payload": payload_of(e),
                "occurred_at": e.occurred_at,
            }
            for e in new_events
        ],
    )


def write_record(conn: sa.Connection, record: SessionRecord, insert: bool) -> None:
    values = asdict(record)
    if insert:
        conn.execute(session_index.insert().values(**values))
    else:
        conn.execute(
            session_index.update()
            .where(session_index.c.session_id == record.session_id)
            .values(**values)
        )


def read_record(conn: sa.Connection, session_id: str, lock: bool = False) -> SessionRecord | None:
    query = sa.select(session_index).where(session_index.c.session_id == session_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return SessionRecord(**row._asdict()) if row else None


def event_from_row(row: sa.Row) -> Event:  # type: ignore[type-arg]
    return event_from_record(
        row.type,
        row.schema_version,
        row.payload,
        session_id=row.session_id,
        version=row.version,
        occurred_at=row.occurred_at,
    )
