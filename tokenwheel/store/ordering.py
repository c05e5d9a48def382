"""What an append does so that live feeds, which read the event log by its global id,
never skip an event (``feed.py`` has the reads).

A feed reader keeps a cursor (the last ``events.id`` it sent) and asks for the events
after it. That is only safe if an id becomes visible after every smaller id that will
ever be committed. SQLite gives this for free: ``BEGIN IMMEDIATE`` lets one writer at a
time take ids and commit. PostgreSQL takes sequence values outside transactions, so two
appends could commit out of order (a reader passing id 11 while id 10's transaction is
still open would never see 10): every append takes one transaction-level advisory lock
before it inserts events and holds it until it commits. Any code that inserts into
``events`` must call :func:`announce_append` in its transaction first.

The append also sends ``NOTIFY tokenwheel_events`` with the class code (delivered at
commit, never for a rolled-back append): a listener wakes the readers of that class,
which then read from the table. The payload only says whom to wake; what a reader sends
always comes from the table.
"""

from __future__ import annotations

import sqlalchemy as sa

EVENT_ORDER_LOCK_KEY = 0x746F6B65  # "toke"
NOTIFY_CHANNEL = "tokenwheel_events"


def announce_append(conn: sa.Connection, class_code: str | None) -> None:
    """Inside an append's transaction, before its events are inserted: on PostgreSQL, wait
    for earlier appends to commit (ids in commit order) and notify the class's readers at
    commit. On SQLite the write lock already orders ids, and readers poll."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENT_ORDER_LOCK_KEY})
    conn.execute(
        sa.text("SELECT pg_notify(:channel, :payload)"),
        {"channel": NOTIFY_CHANNEL, "payload": class_code or ""},
    )
