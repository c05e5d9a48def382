"""Loading and saving a class's stream, with retries after a lost race.

As :class:`~.repository.SessionRepository` does for sessions: :meth:`ClassRepository.load`
replays ``class:<code>``, :meth:`ClassRepository.save` appends with the version the
events were decided on (and writes the class's row and its rounds' rows in the same
transaction), and :meth:`ClassRepository.attempts` is the retry loop a use case runs in.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from types import TracebackType

from tokenwheel.domain import classes as domain
from tokenwheel.domain.classes import ClassState
from tokenwheel.domain.errors import ClassNotFound, VersionConflict
from tokenwheel.domain.events import Event, RoundRevealed, RoundStarted
from tokenwheel.domain.rules import normalize_class_code
from tokenwheel.store.class_records import class_record, round_record

from .ports import ClassStore, Clock, EventStore
from .repository import MAX_ATTEMPTS, MAX_RETRY_PAUSE, RETRY_PAUSE


class _Stale(Exception):
    """Another writer appended to the class stream first."""


class ClassAttempt:
    def __init__(self) -> None:
        self.lost_race = False

    def __enter__(self) -> ClassAttempt:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.lost_race = kind is _Stale
        return self.lost_race


def class_code_of(raw: str) -> str:
    """An opened class's code from a URL or a body (any case, spaces and dashes
    ignored); anything that cannot be one is a class that does not exist (404)."""
    code = normalize_class_code(raw) if isinstance(raw, str) else None
    if code is None:
        raise ClassNotFound("No class with this code.")
    return code


class ClassRepository:
    def __init__(self, store: EventStore, classes: ClassStore, clock: Clock) -> None:
        self.store = store
        self.classes = classes
        self.clock = clock

    def load(self, raw_code: str) -> ClassState:
        code = class_code_of(raw_code)
        state = domain.replay(self.store.load(domain.class_stream(code)))
        if state is None:
            raise ClassNotFound("No class with this code.")
        return state

    def save(self, before: ClassState | None, new_events: Sequence[Event]) -> ClassState:
        """Append ``new_events`` (none: nothing to do) and return the state after them.
        Losing a race ends the current attempt."""
        after = before
        for event in new_events:
            after = domain.apply(after, event)
        if after is None:
            raise ValueError("a new class needs its ClassOpened")
        if not new_events:
            return after
        touched = {e.round_id for e in new_events if isinstance(e, RoundStarted | RoundRevealed)}
        rounds = [round_record(after.class_code, r) for r in after.rounds if r.round_id in touched]
        try:
            self.classes.append_class(
                new_events,
                0 if before is None else before.version,
                class_record(after, self.clock()),
                rounds,
            )
        except VersionConflict as exc:
            raise _Stale from exc
        return after

    def attempts(self, what: str) -> Iterator[ClassAttempt]:
        for number in range(1, MAX_ATTEMPTS + 1):
            attempt = ClassAttempt()
            yield attempt
            if not attempt.lost_race:
                return
            time.sleep(random.uniform(0, min(MAX_RETRY_PAUSE, RETRY_PAUSE * 2 ** (number - 1))))
        raise VersionConflict(what, 0, None, "The class kept changing while this ran; try again.")
