"""Electing one purge runner among several server processes.

APScheduler's job stores cannot be shared between processes, so every worker schedules
the purge and only the one holding this lock runs it. PostgreSQL: a session-level advisory
lock. SQLite: a file lock beside the database file (every process shares that file).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from filelock import FileLock, Timeout

PURGE_LOCK_KEY = 0x746F6B77  # "tokw"


@contextmanager
def purge_lock(engine: sa.Engine) -> Iterator[bool]:
    """Yield True if this process won the lock; never waits."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            won = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": PURGE_LOCK_KEY})
            acquired = bool(won.scalar_one())
            conn.commit()
            try:
                yield acquired
            finally:
                if acquired:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": PURGE_LOCK_KEY})
                    conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True  # one process owns an in-memory database
        return
    lock = FileLock(str(Path(database).with_suffix(".purge.lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
