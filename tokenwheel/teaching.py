"""The teacher's use cases: find sessions, read and replay them, statistics, exports.

Teachers see every session that has not been purged: active, expired (idle past the TTL)
and deleted by the student. Nothing here writes: reading an archived session is not a
student's request, so it never moves ``last_accessed`` or revives an expired session.
A purged session has no events and no index row left, so it is simply not found.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from tokenwheel import exports
from tokenwheel.domain import session as domain
from tokenwheel.domain.errors import (
    ClassNotFound,
    InvalidCommand,
    ModelUnavailable,
    PromptNotSet,
    SessionNotFound,
    UnknownModel,
)
from tokenwheel.domain.events import Event
from tokenwheel.domain.session import SessionState
from tokenwheel.domain.statistics import (
    ClassStatistics,
    SessionStatistics,
    TimelineEntry,
    class_statistics,
    session_statistics,
    timeline,
)
from tokenwheel.inference.tokens import TokenInfo, visible
from tokenwheel.service import (
    DistributionResult,
    DomainModels,
    LanguageModels,
    SessionView,
    check_context,
    check_sampling,
    parse_session_id,
    utcnow,
)
from tokenwheel.settings import Settings
from tokenwheel.store.records import (
    STATUSES,
    EventFilter,
    EventRow,
    EventStore,
    SessionQuery,
    SessionRecord,
    effective_status,
)

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 200
GONE = "Session does not exist or has been purged."


@dataclass(frozen=True)
class SessionFilters:
    class_code: str | None = None
    model_name: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    page: int = 1
    page_size: int = 50


@dataclass(frozen=True)
class SessionList:
    sessions: list[SessionRecord]  # status is the effective status
    total: int
    page: int
    page_size: int


@dataclass(frozen=True)
class SessionDetail:
    record: SessionRecord
    view: SessionView
    timeline: list[TimelineEntry]


@dataclass(frozen=True)
class ReplayedSession:
    """The session as it was right after event ``version``: ``event`` is what happened
    then, ``latest_version`` the last version there is (to step through)."""

    view: SessionView
    event: TimelineEntry
    latest_version: int


@dataclass(frozen=True)
class ReplayedDistribution:
    """The next-token distribution of the session as it was right after ``version``: the
    wheel the student faced then, at the given settings."""

    replayed: ReplayedSession
    wheel: DistributionResult


@dataclass(frozen=True)
class Export:
    content: str
    content_type: str
    filename: str


class TeachingService:
    def __init__(
        self,
        store: EventStore,
        models: LanguageModels,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.models: Any = DomainModels(models)
        self.settings = settings
        self.clock = clock

    # ------------------------------------------------------------ reading

    def _idle_before(self) -> datetime:
        return self.clock() - timedelta(seconds=self.settings.session_ttl)

    def _record(self, session_id: str) -> SessionRecord:
        record = self.store.get_record(parse_session_id(session_id))
        if record is None:
            raise SessionNotFound(GONE)
        return replace(record, status=effective_status(record, self._idle_before()))

    def _events(self, session_id: str) -> tuple[SessionRecord, list[Event]]:
        record = self._record(session_id)
        events = self.store.load(record.session_id)
        if not events:
            raise SessionNotFound(GONE)
        return record, events

    def _text(self, state: SessionState) -> str:
        """What the student saw: the prompt + the generated ids decoded together. If the
        model cannot load here any more, the token texts joined (a character split
        across tokens then shows as U+FFFD)."""
        if state.prompt is None:
            return ""
        try:
            return state.prompt + self.models.decode(state.model_name, state.generated_ids)
        except (ModelUnavailable, UnknownModel) as exc:
            log.warning("decoding with token texts: %s", exc.message)
            return state.prompt + "".join(t.token_text for t in state.generated)

    def _infos(self, state: SessionState) -> dict[int, TokenInfo]:
        """How each generated token is shown; from the stored text when the model cannot
        load here any more."""
        try:
            return {
                i: self.models.token_info(state.model_name, i) for i in set(state.generated_ids)
            }
        except (ModelUnavailable, UnknownModel) as exc:
            log.warning("describing tokens from their stored text: %s", exc.message)
            return {
                t.token_id: TokenInfo(
                    t.token_text, visible(t.token_text), "\ufffd" in t.token_text, False, False
                )
                for t in state.generated
            }

    def _view(self, events: list[Event]) -> SessionView:
        state = domain.replay(events)
        assert state is not None
        return SessionView(
            state=state,
            current_text=self._text(state),
            last_accessed=state.updated_at,
            token_infos=self._infos(state),
        )

    def list_sessions(self, filters: SessionFilters) -> SessionList:
        if filters.status is not None and filters.status not in STATUSES:
            raise InvalidCommand(f"status must be one of {', '.join(STATUSES)}.")
        if filters.page < 1 or not 1 <= filters.page_size <= MAX_PAGE_SIZE:
            raise InvalidCommand(f"page must be >= 1 and page_size from 1 to {MAX_PAGE_SIZE}.")
        domain.check_class_code(filters.class_code)
        idle_before = self._idle_before()
        page = self.store.list_sessions(
            SessionQuery(
                idle_before=idle_before,
                class_code=filters.class_code,
                model_name=filters.model_name,
                status=filters.status,
                created_after=filters.created_after,
                created_before=filters.created_before,
                limit=filters.page_size,
                offset=(filters.page - 1) * filters.page_size,
            )
        )
        return SessionList(
            sessions=[replace(r, status=effective_status(r, idle_before)) for r in page.records],
            total=page.total,
            page=filters.page,
            page_size=filters.page_size,
        )

    def session_detail(self, session_id: str) -> SessionDetail:
        record, events = self._events(session_id)
        return SessionDetail(record=record, view=self._view(events), timeline=timeline(events))

    def replay(self, session_id: str, version: int) -> ReplayedSession:
        _, events = self._events(session_id)
        latest = events[-1].version
        if not 1 <= version <= latest:
            raise InvalidCommand(f"version must be from 1 to {latest} for this session.")
        return ReplayedSession(
            view=self._view(events[:version]),
            event=timeline(events)[version - 1],
            latest_version=latest,
        )

    def next_token_probs(
        self,
        session_id: str,
        version: int,
        threshold: float,
        temperature: float,
        other_top_k: int,
    ) -> ReplayedDistribution:
        """Ask the model again for the ids the session had at ``version``. Events store
        only the chosen token's facts; the model is deterministic, so the same ids at the
        same settings give the wheel the student saw (within float tolerance)."""
        check_sampling(threshold, temperature, other_top_k)
        replayed = self.replay(session_id, version)
        state = replayed.view.state
        if state.prompt is None:
            raise PromptNotSet(f"No prompt was set yet at version {version}.")
        check_context(self.models, state)
        distribution = self.models.distribution(
            state.model_name, state.token_ids, temperature, threshold, other_top_k
        )
        return ReplayedDistribution(
            replayed=replayed,
            wheel=DistributionResult(view=replayed.view, distribution=distribution),
        )

    # ------------------------------------------------------------ statistics

    def session_statistics(self, session_id: str) -> SessionStatistics:
        _, events = self._events(session_id)
        return session_statistics(events)

    def _class_streams(self, class_code: str) -> list[list[Event]]:
        domain.check_class_code(class_code)
        page = self.store.list_sessions(
            SessionQuery(idle_before=self._idle_before(), class_code=class_code)
        )
        streams = [s for s in (self.store.load(r.session_id) for r in page.records) if s]
        if not streams:
            raise _no_class(class_code)
        return streams

    def class_statistics(self, class_code: str) -> ClassStatistics:
        return class_statistics(class_code, self._class_streams(class_code))

    # ------------------------------------------------------------ exports

    def export_session(self, session_id: str, fmt: str) -> Export:
        record = self._record(session_id)
        rows = list(self.store.event_rows(EventFilter(session_id=record.session_id)))
        if not rows:
            raise SessionNotFound(GONE)
        return _export(rows, fmt, f"session-{record.session_id[:8]}")

    def export_class(self, class_code: str, fmt: str) -> Export:
        domain.check_class_code(class_code)
        rows = list(self.store.event_rows(EventFilter(class_code=class_code)))
        if not rows:
            raise _no_class(class_code)
        return _export(rows, fmt, f"class-{class_code}")


def _no_class(class_code: str) -> ClassNotFound:
    return ClassNotFound(f"No sessions with class code {class_code!r} (or all purged).")


def _export(rows: Iterable[EventRow], fmt: str, stem: str) -> Export:
    if fmt == "csv":
        return Export(exports.to_csv(rows), exports.CSV_TYPE, f"{stem}.csv")
    if fmt == "json":
        return Export(exports.to_json(rows), exports.JSON_TYPE, f"{stem}.json")
    raise InvalidCommand(f"format must be one of {', '.join(exports.FORMATS)}.")
