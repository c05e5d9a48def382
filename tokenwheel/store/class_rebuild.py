"""Rebuilding the class read models from the event log (``tokenwheel rebuild-index``).

``class_index``, ``round_index``, ``nickname_claims`` and ``guess_index`` are written in
the transaction of the events they follow (:mod:`tokenwheel.store.classes`); this writes
them again from the events, a class at a time, for an operator who lost or doubts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import sqlalchemy as sa

from tokenwheel.domain.classes import CLASS_STREAM_PREFIX

from .class_records import ClassRecord, GuessRecord, NicknameClaim, RoundRecord
from .classes import SqlClassStore
from .database import write_connection
from .tables import class_index, events, guess_index, nickname_claims, round_index


class SqlClassRebuild:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def class_codes(self) -> list[str]:
        """The code of every class with a stream in the event log."""
        query = (
            sa.select(events.c.session_id)
            .where(events.c.session_id.startswith(CLASS_STREAM_PREFIX))
            .distinct()
        )
        with self.engine.connect() as conn:
            streams = conn.execute(query).scalars().all()
        return sorted(stream[len(CLASS_STREAM_PREFIX) :] for stream in streams)

    def rebuild_class(
        self,
        record: ClassRecord,
        rounds: Sequence[RoundRecord],
        claims: Sequence[NicknameClaim],
        guesses: Sequence[GuessRecord],
    ) -> None:
        """Write a class's read models again from its events (``tokenwheel
        rebuild-index``), in one transaction: its row, its rounds, its nicknames and its
        guesses replace whatever was there. ``last_activity`` never moves back."""
        with write_connection(self.engine) as conn, conn.begin():
            previous = SqlClassStore._class(conn, record.class_code, lock=True)
            if previous is not None:
                last = max(previous.last_activity, record.last_activity)
                record = ClassRecord(**{**asdict(record), "last_activity": last})
                conn.execute(
                    class_index.delete().where(class_index.c.class_code == record.class_code)
                )
            for table in (guess_index, round_index, nickname_claims):
                conn.execute(table.delete().where(table.c.class_code == record.class_code))
            conn.execute(class_index.insert().values(**asdict(record)))
            for rows, table in ((rounds, round_index), (claims, nickname_claims)):
                for row in rows:
                    conn.execute(table.insert().values(**asdict(row)))
            for guess in guesses:
                conn.execute(guess_index.insert().values(**asdict(guess)))
