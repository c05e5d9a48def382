"""Electing one purge runner among several server processes.

APScheduler's job stores cannot be shared between processes, so every worker schedules
the purge; only the leader (``Leadership``) runs it, and never two runs at once
(``purge_lock``, which ``tokenwheel purge`` by hand takes too). PostgreSQL: session-level
advisory locks. SQLite: file locks beside the database file (every process shares it).
"""

from __future__ import annotations

import threading
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


PURGE_LEADER_KEY = 0x746F6B6C  # "tokl"


class Leadership:
    """Which single process, of all those sharing a database, runs a periodic job.

    ``purge_lock`` keeps two runs from overlapping, but it is released after each run, so
    N processes that each schedule the job every interval would run it N times per
    interval between them. The leader instead keeps its lock for as long as it lives:
    on PostgreSQL a session-level advisory lock on a connection this object keeps open
    (its own key, so ``tokenwheel purge`` by hand still takes ``purge_lock`` alone); with
    SQLite a file lock beside the database file. Either is released by the server or
    the operating system when the process dies, even by SIGKILL, and the next process
    that asks takes the lead. ``held()`` asks each time: it checks that the connection
    still answers (a lost connection loses the lock with it) and otherwise tries to win.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._conn: sa.Connection | None = None
        self._file: FileLock | None = None
        self._guard = threading.Lock()

    def held(self) -> bool:
        with self._guard:
            if self.engine.dialect.name == "postgresql":
                return self._still_held() or self._take()
            return self._hold_file()

    def release(self) -> None:
        with self._guard:
            if self._conn is not None:
                self._conn.close()  # the advisory lock goes with its session
                self._conn = None
            if self._file is not None:
                self._file.release()
                self._file = None

    def _still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.exec_driver_sql("SELECT 1")
            return True
        except sa.exc.DBAPIError:  # the connection is gone, and the lock with it
            self._conn.invalidate()
            self._conn.close()
            self._conn = None
            return False

    def _take(self) -> bool:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            won = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": PURGE_LEADER_KEY}
            ).scalar_one()
        except BaseException:
            conn.close()
            raise
        if won:
            self._conn = conn  # kept out of the pool: closing it would give up the lead
            return True
        conn.close()
        return False

    def _hold_file(self) -> bool:
        if self._file is not None:
            return True
        database = self.engine.url.database
        if not database or database == ":memory:":
            return True  # one process owns an in-memory database
        # not thread-local: the scheduler asks from whichever of its threads runs the job
        lock = FileLock(str(Path(database).with_suffix(".purge-leader.lock")), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        self._file = lock
        return True
