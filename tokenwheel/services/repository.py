"""Loading and saving sessions: the snapshot cache, the per-session lock, retries.

As eventsourcing splits it: :meth:`SessionRepository.load` owns snapshots and catch-up,
:meth:`SessionRepository.save` stores new events with the version they were decided on.
A conflict on save means another process wrote first; :meth:`attempts` is the retry
policy a use case loops over (commands decided by the server are always safe to decide
again). Within one process, writes to one session take turns (:meth:`lock`), so
conflicts come only from other processes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from cachetools import LRUCache

from tokenwheel.domain import session as domain
from tokenwheel.domain.errors import SessionNotFound, VersionConflict
from tokenwheel.domain.events import Event
from tokenwheel.domain.rules import ACTIVE
from tokenwheel.domain.session import SessionState
from tokenwheel.store.records import IdempotencyRecord, SessionRecord

from .ports import Clock, EventStore

log = logging.getLogger(__name__)

# A conflict means another process wrote first; each attempt wins about half the time
# against one busy rival, so 25 attempts make a 409 for a request without a version
# practically impossible, while a pause capped at 50 ms bounds the wait.
MAX_ATTEMPTS = 25
RETRY_PAUSE = 0.002  # seconds before the second attempt; doubles, jittered, capped
MAX_RETRY_PAUSE = 0.05
TOUCH_RESOLUTION = timedelta(seconds=1)
SNAPSHOTS = 1024  # sessions whose latest state is kept in memory


def parse_session_id(raw: str) -> str:
    """Session ids are canonical UUID strings; anything else is a session that does not
    exist (404), never a 500 or a database lookup with garbage."""
    try:
        parsed = uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        raise SessionNotFound("Session does not exist.") from None
    if str(parsed) != raw.lower():
        raise SessionNotFound("Session does not exist.")
    return str(parsed)


@dataclass(frozen=True)
class Loaded:
    """An active session's state and its index row."""

    state: SessionState
    record: SessionRecord


class _StaleState(Exception):
    """The store refused a save: another writer appended first."""


class Attempt:
    """One try of a use case: a save that lost a race ends the try quietly, and the
    loop in :meth:`SessionRepository.attempts` pauses and tries again."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.lost_race = False

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.lost_race = kind is _StaleState
        return self.lost_race


class _Lock:
    """A lock that can be weakly referenced (``threading.Lock`` cannot), so the table of
    per-session locks forgets a session once no request holds its lock."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


class SessionRepository:
    def __init__(
        self, store: EventStore, clock: Clock, session_ttl: float, snapshots: int = SNAPSHOTS
    ) -> None:
        self.store = store
        self.clock = clock
        self.session_ttl = timedelta(seconds=session_ttl)
        # The latest state of recently used sessions. Replaying a whole stream costs time
        # linear in its events; with the state at version v here, a request reads only
        # the events after v (usually none: the index row's version says so). A state
        # here is always the fold of a prefix of its stream.
        self._snapshots: LRUCache[str, SessionState] = LRUCache(maxsize=max(snapshots, 1))
        self._snapshots_on = snapshots > 0
        self._snapshot_lock = threading.Lock()
        self._locks: weakref.WeakValueDictionary[str, _Lock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

    # ------------------------------------------------------------ reading

    def load(self, session_id: str) -> Loaded:
        """An active session (404 for an unknown, expired, deleted or malformed id)."""
        session_id = parse_session_id(session_id)
        record = self.store.get_record(session_id)
        if record is None:
            raise SessionNotFound("Session does not exist.")
        if record.status != ACTIVE or self.clock() - record.last_accessed > self.session_ttl:
            raise SessionNotFound("Session does not exist or has expired.")
        state = self._state_at_least(session_id, record.version)
        if state is None or state.deleted:
            raise SessionNotFound("Session does not exist.")
        return Loaded(state, record)

    def _state_at_least(self, session_id: str, version: int) -> SessionState | None:
        """From the snapshot, caught up with the events since if another process wrote,
        else folded from the start. (A snapshot newer than ``version`` was saved here
        after the index row was read: it is the fold of committed events, so it stands.)"""
        with self._snapshot_lock:
            state = self._snapshots.get(session_id)
        if state is None:
            state = domain.replay(self.store.load(session_id))
        elif state.version < version:
            for event in self.store.load(session_id, after_version=state.version):
                state = domain.apply(state, event)
        if state is not None:
            self._keep(state)
        return state

    def state_at(self, session_id: str, version: int) -> SessionState:
        """The session as it was right after event ``version`` (whatever its status)."""
        state = domain.replay(self.store.load(session_id, up_to_version=version))
        if state is None or state.version != version:
            raise SessionNotFound("Session does not exist or has been purged.")
        return state

    def touch(self, record: SessionRecord) -> datetime:
        """A read moves ``last_accessed``. The index row is written only when it is a
        second or more behind (TOUCH_RESOLUTION): a class's rapid reads then cost no write
        transaction each (on SQLite every write takes the database's one write lock), and
        idle expiry stays exact to the second. The answer always carries this moment."""
        now = self.clock()
        if now - record.last_accessed >= TOUCH_RESOLUTION:
            self.store.touch(record.session_id, now)
        return now

    # ------------------------------------------------------------ writing

    @contextmanager
    def lock(self, session_id: str) -> Iterator[None]:
        """Writes to one session take turns within this process."""
        with self._locks_guard:
            holder = self._locks.get(session_id)
            if holder is None:
                holder = self._locks[session_id] = _Lock()
        with holder.lock:
            yield

    def attempts(self, session_id: str) -> Iterator[Attempt]:
        """Tries of one use case: the next one only after a save lost a race, with a
        short jittered pause; a 409 once the session kept changing for MAX_ATTEMPTS."""
        for number in range(1, MAX_ATTEMPTS + 1):
            attempt = Attempt(number)
            yield attempt
            if not attempt.lost_race:
                return
            log.info("version conflict on %s…, attempt %d", session_id[:8], number)
            pause = min(MAX_RETRY_PAUSE, RETRY_PAUSE * 2 ** (number - 1))
            time.sleep(random.uniform(0, pause))
        record = self.store.get_record(session_id) if session_id else None
        current = record.version if record is not None else 0
        raise VersionConflict(
            session_id,
            current,
            current if record is not None else None,
            "The session kept changing while this request ran; try again.",
        )

    def save(
        self,
        before: SessionState | None,
        new_events: Sequence[Event],
        idempotency: IdempotencyRecord | None = None,
    ) -> SessionState:
        """Append ``new_events`` decided on ``before`` (None: a new session) and return
        the state after them. Losing a race ends the current :class:`Attempt`."""
        after = before
        for event in new_events:
            after = domain.apply(after, event)
        assert after is not None, "a save appends at least one event"
        expected = before.version if before is not None else 0
        try:
            self.store.append(new_events, expected, domain.summarize(after), idempotency)
        except VersionConflict as exc:
            raise _StaleState from exc
        self._keep(after)
        return after

    def _keep(self, state: SessionState) -> None:
        """Keep ``state`` unless a newer version of the session is kept already."""
        if not self._snapshots_on:
            return
        with self._snapshot_lock:
            held = self._snapshots.get(state.session_id)
            if held is None or held.version <= state.version:
                self._snapshots[state.session_id] = state

    def forget(self, session_id: str) -> None:
        with self._snapshot_lock:
            self._snapshots.pop(session_id, None)
