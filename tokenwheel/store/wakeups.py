"""When a live feed should look at the event table again.

Readers never take events from here: a wake-up only says "read now". On SQLite there is
nothing to listen to, so a reader polls every :attr:`PollingWakeups.interval` seconds.
On PostgreSQL one thread per process ``LISTEN``\\s on the channel every append notifies
(``ordering.py``) and wakes the readers of the notified class at once; readers still
look every :attr:`PgNotifyWakeups.fallback` seconds, so a lost connection or a missed
notification delays an event by at most that much. The listener thread starts with the
first reader, not before (a server with no teacher watching never opens the connection).
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa

from .ordering import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

MAX_CLASSES = 10_000  # wake-up counters kept; past it they start again (a spurious wake-up)


class PollingWakeups:
    """SQLite (and the in-memory store): look again every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def generation(self, class_code: str) -> int:
        return 0

    def wait(self, class_code: str, seen: int, timeout: float) -> int:
        time.sleep(max(0.0, min(timeout, self.interval)))
        return 0

    def close(self) -> None:
        return None


class PgNotifyWakeups:
    """PostgreSQL: a notification for a class wakes that class's readers at once."""

    RECONNECT_DELAY = 1.0

    def __init__(self, engine: sa.Engine, fallback: float) -> None:
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self.fallback = fallback
        self._cond = threading.Condition()
        self._counts: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.listening = threading.Event()  # set while LISTEN is in force (tests wait on it)

    def generation(self, class_code: str) -> int:
        self._start()
        with self._cond:
            return self._counts.get(class_code, 0)

    def wait(self, class_code: str, seen: int, timeout: float) -> int:
        """Until the class is notified after ``seen`` (a :meth:`generation`), or
        ``min(timeout, fallback)`` seconds pass; the class's generation now."""
        self._start()
        with self._cond:
            self._cond.wait_for(
                lambda: self._counts.get(class_code, 0) != seen,
                timeout=max(0.0, min(timeout, self.fallback)),
            )
            return self._counts.get(class_code, 0)

    def close(self) -> None:
        self._stop.set()

    def _start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._listen, name="tokenwheel-live-listener", daemon=True
            )
            self._thread.start()

    def _wake(self, class_codes: list[str] | None) -> None:
        """Wake the readers of ``class_codes`` (None: every reader)."""
        with self._cond:
            if class_codes is None or len(self._counts) > MAX_CLASSES:
                self._counts = {code: n + 1 for code, n in self._counts.items()}
                if len(self._counts) > MAX_CLASSES:
                    self._counts.clear()
            for code in class_codes or ():
                self._counts[code] = self._counts.get(code, 0) + 1
            self._cond.notify_all()

    def _listen(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening.set()
                    self._wake(None)  # whatever came while we were not listening
                    while not self._stop.is_set():
                        # each notification wakes its readers as it arrives; the timeout
                        # only lets the loop see a close()
                        for note in conn.notifies(timeout=1.0):
                            self._wake([note.payload])
            except psycopg.Error as exc:
                log.warning("live feed listener lost its connection (%s); polling meanwhile", exc)
            finally:
                self.listening.clear()
            self._stop.wait(self.RECONNECT_DELAY)
