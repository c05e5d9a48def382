"""Classes, nicknames, rounds and guesses on SQLite or PostgreSQL.

Each write is one transaction that appends events and updates the read models beside
them, after locking the row that decides whether it may happen (PostgreSQL ``FOR
UPDATE``; on SQLite ``BEGIN IMMEDIATE`` has locked the database): a join locks its class
(open?), a guess its round (still open?), a class change its class row (still at the
version decided on?). The UNIQUE keys stay the backstop; an IntegrityError becomes a
:class:`VersionConflict` and the service decides again on fresh state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from tokenwheel.domain.classes import class_stream
from tokenwheel.domain.errors import (
    ClassNotFound,
    ClassNotOpen,
    NicknameTaken,
    RoundNotFound,
    RoundNotOpen,
    VersionConflict,
)
from tokenwheel.domain.events import Event
from tokenwheel.domain.rules import CLASS_CLOSED, CLASS_OPEN, ROUND_OPEN
from tokenwheel.domain.session import SessionSummary

from .class_records import (
    ClassPage,
    ClassRecord,
    GuessRecord,
    Member,
    NicknameClaim,
    RoundRecord,
)
from .database import write_connection
from .records import IdempotencyRecord, check_append, check_batch, record_from_summary
from .sql import insert_events, read_record, write_record
from .tables import (
    class_index,
    events,
    guess_index,
    idempotency_keys,
    nickname_claims,
    round_index,
    session_index,
)


class SqlClassStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------ writes

    def append_class(
        self,
        new_events: Sequence[Event],
        expected_version: int,
        record: ClassRecord,
        rounds: Sequence[RoundRecord] = (),
    ) -> None:
        """Append to a class stream (0 = a new class) and write its row and the rows of
        the ``rounds`` the events touched. A code already taken is a VersionConflict."""
        if not new_events:
            return
        check_batch(new_events, expected_version)
        stream = new_events[0].session_id
        try:
            with write_connection(self.engine) as conn, conn.begin():
                previous = self._class(conn, record.class_code, lock=True)
                found = 0 if previous is None else previous.version
                if found != expected_version:
                    raise VersionConflict(stream, expected_version, found or None)
                if previous is None:
                    conn.execute(class_index.insert().values(**asdict(record)))
                else:
                    conn.execute(
                        class_index.update()
                        .where(class_index.c.class_code == record.class_code)
                        .values(**asdict(record))
                    )
                for r in rounds:
                    updated = conn.execute(
                        round_index.update()
                        .where(round_index.c.round_id == r.round_id)
                        .values(**asdict(r))
                    )
                    if not updated.rowcount:
                        conn.execute(round_index.insert().values(**asdict(r)))
                # last: the round rows are locked before the event order's lock
                # (insert_events), which a guess takes after locking its round
                insert_events(conn, new_events, record.class_code)
        except IntegrityError as exc:
            raise VersionConflict(stream, expected_version, None) from exc

    def join(
        self,
        new_events: Sequence[Event],
        summary: SessionSummary,
        claim: NicknameClaim,
        idempotency: IdempotencyRecord | None = None,
    ) -> None:
        """Create a session in an open class under a nickname no one in it has."""
        check_batch(new_events, 0)
        session_id = new_events[0].session_id
        try:
            with write_connection(self.engine) as conn, conn.begin():
                joined = self._class(conn, claim.class_code, lock=True)
                if joined is None:
                    raise ClassNotFound("No class with this code.")
                if joined.status != CLASS_OPEN:
                    raise ClassNotOpen("This class is closed: ask your teacher.")
                taken = conn.execute(
                    sa.select(nickname_claims.c.session_id).where(
                        nickname_claims.c.class_code == claim.class_code,
                        nickname_claims.c.nickname_key == claim.nickname_key,
                    )
                ).first()
                if taken is not None:
                    raise NicknameTaken(
                        "Someone in this class already uses this nickname: choose another."
                    )
                check_append(session_id, 0, read_record(conn, session_id, lock=True))
                insert_events(conn, new_events, claim.class_code)
                record = record_from_summary(summary, new_events[-1].occurred_at, None)
                write_record(conn, record, insert=True)
                conn.execute(nickname_claims.insert().values(**asdict(claim)))
                conn.execute(
                    class_index.update()
                    .where(class_index.c.class_code == claim.class_code)
                    .values(last_activity=claim.claimed_at)
                )
                if idempotency is not None:
                    conn.execute(idempotency_keys.insert().values(**asdict(idempotency)))
        except IntegrityError as exc:
            raise VersionConflict(session_id, 0, None) from exc

    def append_guess(
        self,
        new_events: Sequence[Event],
        expected_version: int,
        summary: SessionSummary,
        guess: GuessRecord,
    ) -> None:
        """Append a student's GuessMade if its round is still open when this commits (a
        reveal locks the round row too, so no guess lands after a reveal)."""
        check_batch(new_events, expected_version)
        session_id = new_events[0].session_id
        try:
            with write_connection(self.engine) as conn, conn.begin():
                status = conn.execute(
                    sa.select(round_index.c.status)
                    .where(round_index.c.round_id == guess.round_id)
                    .with_for_update()
                ).scalar()
                if status is None:
                    raise RoundNotFound("No such round in this class.")
                if status != ROUND_OPEN:
                    raise RoundNotOpen("This round has been revealed: guesses are closed.")
                previous = read_record(conn, session_id, lock=True)
                check_append(session_id, expected_version, previous)
                insert_events(conn, new_events, summary.class_code)
                record = record_from_summary(summary, new_events[-1].occurred_at, previous)
                write_record(conn, record, insert=False)
                conn.execute(guess_index.insert().values(**asdict(guess)))
        except IntegrityError as exc:
            raise VersionConflict(session_id, expected_version, None) from exc

    def purge_classes(self, closed_before: datetime, idle_before: datetime) -> int:
        """Delete classes closed (and untouched) since ``closed_before``, or open and
        untouched since ``idle_before``: their stream, rounds, guesses and nicknames."""
        c = class_index.c
        doomed_where = sa.or_(
            sa.and_(c.status == CLASS_CLOSED, c.last_activity <= closed_before),
            c.last_activity <= idle_before,
        )
        with write_connection(self.engine) as conn, conn.begin():
            codes = list(
                conn.execute(sa.select(c.class_code).where(doomed_where).with_for_update())
                .scalars()
                .all()
            )
            if not codes:
                return 0
            streams = [class_stream(code) for code in codes]
            conn.execute(events.delete().where(events.c.session_id.in_(streams)))
            conn.execute(guess_index.delete().where(guess_index.c.class_code.in_(codes)))
            conn.execute(round_index.delete().where(round_index.c.class_code.in_(codes)))
            conn.execute(nickname_claims.delete().where(nickname_claims.c.class_code.in_(codes)))
            conn.execute(class_index.delete().where(c.class_code.in_(codes)))
            return len(codes)

    # ------------------------------------------------------------ reads

    @staticmethod
    def _class(conn: sa.Connection, class_code: str, lock: bool = False) -> ClassRecord | None:
        query = sa.select(class_index).where(class_index.c.class_code == class_code)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        return ClassRecord(**row._asdict()) if row else None

    def get_class(self, class_code: str) -> ClassRecord | None:
        with self.engine.connect() as conn:
            return self._class(conn, class_code)

    def code_in_use(self, class_code: str) -> bool:
        """Whether any class or session (an old free-text code) has this code."""
        with self.engine.connect() as conn:
            if self._class(conn, class_code) is not None:
                return True
            query = sa.select(session_index.c.session_id).where(
                session_index.c.class_code == class_code
            )
            return conn.execute(query.limit(1)).first() is not None

    def list_classes(self, status: str | None, limit: int, offset: int) -> ClassPage:
        conditions = [] if status is None else [class_index.c.status == status]
        page = (
            sa.select(class_index)
            .where(*conditions)
            .order_by(class_index.c.created_at.desc(), class_index.c.class_code)
            .offset(offset)
            .limit(limit)
        )
        count = sa.select(sa.func.count()).select_from(class_index).where(*conditions)
        with self.engine.connect() as conn:
            rows = conn.execute(page).all()
            total = conn.execute(count).scalar_one()
        return ClassPage([ClassRecord(**row._asdict()) for row in rows], total)

    def members(self, class_code: str) -> list[Member]:
        c = nickname_claims.c
        query = (
            sa.select(c.session_id, c.nickname, c.claimed_at.label("joined_at"))
            .where(c.class_code == class_code)
            .order_by(c.claimed_at, c.session_id)
        )
        with self.engine.connect() as conn:
            return [Member(**row._asdict()) for row in conn.execute(query)]

    def get_round(self, round_id: str) -> RoundRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(round_index).where(round_index.c.round_id == round_id)
            ).first()
        return RoundRecord(**row._asdict()) if row else None

    def list_rounds(self, class_code: str) -> list[RoundRecord]:
        query = (
            sa.select(round_index)
            .where(round_index.c.class_code == class_code)
            .order_by(round_index.c.started_at, round_index.c.round_id)
        )
        with self.engine.connect() as conn:
            return [RoundRecord(**row._asdict()) for row in conn.execute(query)]

    def guesses(self, round_id: str) -> list[tuple[GuessRecord, str | None]]:
        """The round's guesses, oldest first, each with its student's nickname (None
        once the nickname's session is gone)."""
        g, n = guess_index.c, nickname_claims.c
        query = (
            sa.select(guess_index, n.nickname)
            .join(
                nickname_claims,
                sa.and_(n.session_id == g.session_id, n.class_code == g.class_code),
                isouter=True,
            )
            .where(g.round_id == round_id)
            .order_by(g.made_at, g.session_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for row in rows:
            values = row._asdict()
            nickname = values.pop("nickname")
            out.append((GuessRecord(**values), nickname))
        return out
