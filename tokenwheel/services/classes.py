"""Classes a teacher opens, and students joining them with a nickname.

A class is its own event stream (``class:<code>``, domain/classes.py) with a row in
``class_index``. A student joins by creating a session with the class's code and a
nickname: the session's ``SessionCreated`` carries the nickname, and a claim row
(class, folded nickname) stored in the same transaction keeps it unique in the class.

Old free-text class codes keep working: a session created with a code that is not an
opened class's, and no nickname, files the session under that code as before. A
nickname needs an opened class that is open; an opened class's code needs a nickname.
Nicknames are personal data: never logged, shown to teachers only.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tokenwheel.domain import classes as domain
from tokenwheel.domain import session as sessions_domain
from tokenwheel.domain.classes import ClassState
from tokenwheel.domain.errors import (
    ClassNotFound,
    ClassNotOpen,
    InvalidCommand,
    VersionConflict,
)
from tokenwheel.domain.rules import (
    CLASS_CODE_ALPHABET,
    CLASS_CODE_LENGTH,
    CLASS_OPEN,
    CLASS_STATUSES,
    DEFAULT_PAGE_SIZE,
    check_nickname,
    check_page,
    check_seed,
    normalize_class_code,
)
from tokenwheel.settings import Settings
from tokenwheel.store.class_records import ClassRecord, Member, NicknameClaim, RoundRecord

from .class_repository import ClassRepository
from .clock import utcnow
from .gateway import ModelGateway
from .idempotency import IdempotencyKey, IdempotencyKeys
from .ports import ClassStore, Clock, EventStore, LanguageModels
from .repository import MAX_ATTEMPTS
from .results import Created
from .sessions import StudentSessions
from .views import SessionViews

log = logging.getLogger(__name__)

MAX_CODE_TRIES = 20  # a fresh code collides with one in use about once in 10^6 at 1,000


def new_class_code() -> str:
    return "".join(secrets.choice(CLASS_CODE_ALPHABET) for _ in range(CLASS_CODE_LENGTH))


@dataclass(frozen=True)
class ClassList:
    classes: list[ClassRecord]
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class ClassDetail:
    record: ClassRecord
    members: list[Member]  # nicknames: for teachers only
    rounds: list[RoundRecord]


class Classroom:
    def __init__(
        self,
        store: EventStore,
        classes: ClassStore,
        models: LanguageModels,
        settings: Settings,
        sessions: StudentSessions,
        clock: Clock = utcnow,
        codes: Callable[[], str] = new_class_code,
    ) -> None:
        self.store = store
        self.classes = classes
        self.settings = settings
        self.clock = clock
        self.codes = codes
        self.sessions = sessions
        self.models = ModelGateway(models)
        self.views = SessionViews(self.models)
        self.repository = ClassRepository(store, classes, clock)
        self.keys = IdempotencyKeys(store, clock, settings.idempotency_window)

    # ------------------------------------------------------------ teachers

    def open_class(self, name: object) -> ClassRecord:
        """A new class with a fresh code no class or session uses."""
        for _ in range(MAX_CODE_TRIES):
            code = self.codes()
            if self.classes.code_in_use(code):
                continue
            new_events = domain.open_class(code, name, self.clock())
            for attempt in self.repository.attempts(code):
                with attempt:
                    self.repository.save(None, new_events)
                    return self._record(code)
                break  # the code was taken by a racing open: draw another
        raise VersionConflict("", 0, None, "Could not find a free class code; try again.")

    def list_classes(
        self, status: str | None = None, page: int = 1, page_size: int = DEFAULT_PAGE_SIZE
    ) -> ClassList:
        check_page(page, page_size)
        if status is not None and status not in CLASS_STATUSES:
            raise InvalidCommand(f"status must be one of {', '.join(CLASS_STATUSES)}.")
        found = self.classes.list_classes(status, page_size, (page - 1) * page_size)
        return ClassList(found.records, found.total, page, page_size)

    def class_detail(self, raw_code: str) -> ClassDetail:
        state = self.repository.load(raw_code)
        return ClassDetail(
            record=self._record(state.class_code),
            members=self.classes.members(state.class_code),
            rounds=self.classes.list_rounds(state.class_code),
        )

    def close_class(self, raw_code: str) -> ClassRecord:
        return self._change(raw_code, domain.close_class)

    def reopen_class(self, raw_code: str) -> ClassRecord:
        return self._change(raw_code, domain.reopen_class)

    def _change(self, raw_code: str, decide: Callable[..., list]) -> ClassRecord:  # type: ignore[type-arg]
        # close and reopen differ only in the decision; both are safe to retry
        for attempt in self.repository.attempts(raw_code):
            with attempt:
                before = self.repository.load(raw_code)
                after = self.repository.save(before, decide(before, self.clock()))
                return self._record(after.class_code)
        raise AssertionError("attempts() raises when it runs out")

    def _record(self, code: str) -> ClassRecord:
        record = self.classes.get_class(code)
        assert record is not None, "a saved class has its row"
        return record

    # ------------------------------------------------------------ students

    def create_session(
        self,
        model_name: str | None = None,
        class_code: str | None = None,
        nickname: object = None,
        seed: int | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Created:
        """A student's new session: joined to an opened class under a nickname, or (no
        nickname, no opened class of that code) as before issue 15."""
        opened = self._opened(class_code)
        if nickname is None and opened is None:
            return self.sessions.create_session(model_name, class_code, seed, idempotency)
        if nickname is None:
            assert opened is not None
            if opened.status != CLASS_OPEN:
                raise ClassNotOpen("This class is closed: ask your teacher.")
            raise InvalidCommand("This class needs a nickname: send one with the class_code.")
        if class_code is None:
            raise InvalidCommand("A nickname needs the class_code of a class to join.")
        return self._join(model_name, class_code, nickname, seed, idempotency)

    def _opened(self, class_code: str | None) -> ClassState | None:
        if class_code is None or normalize_class_code(class_code) is None:
            return None
        code = normalize_class_code(class_code)
        assert code is not None
        return domain.replay(self.store.load(domain.class_stream(code)))

    def _join(
        self,
        model_name: str | None,
        raw_code: str,
        raw_nickname: object,
        seed: int | None,
        idempotency: IdempotencyKey | None,
    ) -> Created:
        nickname, key = check_nickname(raw_nickname)
        check_seed(seed)
        code = normalize_class_code(raw_code)
        if code is None:
            raise ClassNotFound("No class with this code: check it with your teacher.")
        if model_name is None:
            model_name, _ = self.models.default_model()
        self.models.require(model_name)
        for _ in range(MAX_ATTEMPTS):
            applied = self.keys.applied(idempotency)
            if applied is not None:
                first = self.sessions.repository.state_at(applied.session_id, applied.version)
                return Created(self.views.view(first), repeated=True)
            session_id = str(uuid.uuid4())
            now = self.clock()
            new_events = sessions_domain.create_session(
                session_id, model_name, now, code, seed, nickname
            )
            state = sessions_domain.apply(None, new_events[0])
            claim = NicknameClaim(code, key, nickname, session_id, now)
            record = self.keys.record(idempotency, session_id, version=1)
            try:
                self.classes.join(new_events, sessions_domain.summarize(state), claim, record)
            except VersionConflict:
                continue  # a racing request with the same Idempotency-Key: look again
            # never the nickname: it is personal data (docs/operations.md)
            log.info("session %s… joined a class on %s", session_id[:8], model_name)
            return Created(self.views.view(state))
        raise VersionConflict("", 0, None, "Could not join the class; try again.")
