"""The live feed's reads: a class's events by their global id, after a cursor.

Appends keep ids in commit order (``ordering.py``), so a reader that has seen id N has
seen, or will never see, every id below N: ``id > cursor`` misses nothing.
"""

from __future__ import annotations

import sqlalchemy as sa

from tokenwheel.domain.events import EVENT_TYPES

from .records import EventRow
from .sql import event_from_row
from .tables import events, session_index


class SqlClassFeed:
    """Reads for live streams (``tokenwheel.services.ports.ClassFeed``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def latest_event_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)

    def class_events(
        self, class_code: str, after_id: int, up_to_id: int, limit: int
    ) -> list[EventRow]:
        """The class's events with ``after_id < id <= up_to_id``, in id order, at most
        ``limit``. Types this version does not know (a newer server's) are left out."""
        query = (
            sa.select(events, session_index.c.class_code, session_index.c.model_name)
            .join(session_index, session_index.c.session_id == events.c.session_id)
            .where(
                session_index.c.class_code == class_code,
                events.c.id > after_id,
                events.c.id <= up_to_id,
                events.c.type.in_(sorted(EVENT_TYPES)),
            )
            .order_by(events.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            EventRow(
                id=row.id,
                event=event_from_row(row),
                class_code=row.class_code,
                model_name=row.model_name,
            )
            for row in rows
        ]
