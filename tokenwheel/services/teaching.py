"""The teacher's use cases: find sessions, read them, step through them, statistics,
exports.

Teachers see every session that has not been purged: active, expired (idle past the TTL)
and deleted by the student. Nothing here writes: reading an archived session is not a
student's request, so it never moves ``last_accessed`` or revives an expired session.
A purged session has no events and no index row left, so it is simply not found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tokenwheel import exports
from tokenwheel.domain import session as domain
from tokenwheel.domain.classes import class_stream
from tokenwheel.domain.errors import ClassNotFound, InvalidCommand, PromptNotSet, SessionNotFound
from tokenwheel.domain.events import Event, TokenAppended
from tokenwheel.domain.rules import (
    DEFAULT_PAGE_SIZE,
    LIST_TEXT_CHARS,
    check_class_code,
    check_export_format,
    check_page,
    check_status,
    check_wheel_settings,
)
from tokenwheel.domain.statistics import (
    ClassStatistics,
    SessionStatistics,
    TimelineEntry,
    class_statistics,
    session_statistics,
    timeline,
)
from tokenwheel.inference.tokens import TokenInfo
from tokenwheel.settings import Settings
from tokenwheel.store.records import (
    EventFilter,
    EventRow,
    SessionQuery,
    SessionRecord,
    effective_status,
)

from .clock import utcnow
from .gateway import ModelGateway
from .ports import Clock, EventStore, LanguageModels
from .repository import parse_session_id
from .results import DistributionResult
from .views import SessionView, SessionViews

GONE = "Session does not exist or has been purged."


@dataclass(frozen=True)
class SessionFilters:
    class_code: str | None = None
    model_name: str | None = None
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE


@dataclass(frozen=True)
class TextPreview:
    """What a session is about, for a list: its current prompt (None before one is set)
    cut to its first :data:`LIST_TEXT_CHARS` characters, and its current text cut to its
    last ones; a cut is marked with "…"."""

    prompt: str | None
    current_text: str


@dataclass(frozen=True)
class SessionList:
    sessions: list[SessionRecord]  # status is the effective status
    total: int
    page: int
    page_size: int
    previews: Mapping[str, TextPreview]  # by session id, one per listed session


@dataclass(frozen=True)
class SessionDetail:
    """``token_infos`` shows every token the timeline names, undone ones included."""

    record: SessionRecord
    view: SessionView
    timeline: list[TimelineEntry]
    token_infos: Mapping[int, TokenInfo]


@dataclass(frozen=True)
class SessionAt:
    """The session as it was right after event ``version``: ``event`` is what happened
    then, ``latest_version`` the last version there is (to step through)."""

    view: SessionView
    event: TimelineEntry
    latest_version: int
    token_infos: Mapping[int, TokenInfo]


@dataclass(frozen=True)
class WheelAt:
    """The next-token distribution of the session as it was right after a version: the
    wheel the student faced then, at the given settings."""

    session_at: SessionAt
    wheel: DistributionResult


@dataclass(frozen=True)
class ClassReport:
    """A class's statistics; ``token_infos[model]`` shows the first tokens chosen on it."""

    statistics: ClassStatistics
    token_infos: Mapping[str, Mapping[int, TokenInfo]]


@dataclass(frozen=True)
class Export:
    content: str
    content_type: str
    filename: str


class Teaching:
    def __init__(
        self,
        store: EventStore,
        models: LanguageModels,
        settings: Settings,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.models = ModelGateway(models)
        self.views = SessionViews(self.models)
        self.settings = settings
        self.clock = clock

    # ------------------------------------------------------------ reading

    def list_sessions(self, filters: SessionFilters) -> SessionList:
        check_status(filters.status)
        check_page(filters.page, filters.page_size)
        check_class_code(filters.class_code)
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
            previews=self._previews([r.session_id for r in page.records]),
        )

    def session_detail(self, session_id: str) -> SessionDetail:
        record, events = self._events(session_id)
        return SessionDetail(
            record=record,
            view=self._view(events),
            timeline=timeline(events),
            token_infos=self._timeline_infos(record.model_name, events),
        )

    def session_at(self, session_id: str, version: int) -> SessionAt:
        """The session as it was right after event ``version`` (the teacher's step-through)."""
        record, events = self._events(session_id)
        latest = events[-1].version
        if not 1 <= version <= latest:
            raise InvalidCommand(f"version must be from 1 to {latest} for this session.")
        return SessionAt(
            view=self._view(events[:version]),
            event=timeline(events)[version - 1],
            latest_version=latest,
            token_infos=self._timeline_infos(record.model_name, events[:version]),
        )

    def wheel_at(
        self,
        session_id: str,
        version: int,
        threshold: float,
        temperature: float,
        other_top_k: int,
    ) -> WheelAt:
        """Ask the model again for the ids the session had at ``version``. Events store
        only the chosen token's facts; the model is deterministic, so the same ids at the
        same settings give the wheel the student saw (within float tolerance)."""
        check_wheel_settings(threshold, temperature, other_top_k)
        at = self.session_at(session_id, version)
        state = at.view.state
        if state.prompt is None:
            raise PromptNotSet(f"No prompt was set yet at version {version}.")
        self.models.check_room(state.model_name, state.token_ids)
        distribution = self.models.distribution(
            state.model_name, state.token_ids, temperature, threshold, other_top_k
        )
        return WheelAt(at, DistributionResult(view=at.view, distribution=distribution))

    # ------------------------------------------------------------ statistics

    def session_statistics(self, session_id: str) -> SessionStatistics:
        _, events = self._events(session_id)
        return session_statistics(events)

    def class_statistics(self, class_code: str) -> ClassReport:
        check_class_code(class_code)
        page = self.store.list_sessions(
            SessionQuery(idle_before=self._idle_before(), class_code=class_code)
        )
        streams = [s for s in (self.store.load(r.session_id) for r in page.records) if s]
        if not streams and not self.store.load(class_stream(class_code)):
            raise _no_class(class_code)  # an opened class nobody joined yet has empty numbers
        statistics = class_statistics(class_code, streams)
        recorded: dict[str, dict[int, str]] = {}
        for group in statistics.first_tokens:
            for token in group.tokens:
                recorded.setdefault(group.model_name, {})[token.token_id] = token.token_text
        infos = {model: self.views.infos(model, texts) for model, texts in recorded.items()}
        return ClassReport(statistics, infos)

    # ------------------------------------------------------------ exports

    def export_session(self, session_id: str, fmt: str) -> Export:
        check_export_format(fmt)
        record = self._record(session_id)
        rows = list(self.store.event_rows(EventFilter(session_id=record.session_id)))
        if not rows:
            raise SessionNotFound(GONE)
        return _export(rows, fmt, f"session-{record.session_id[:8]}")

    def export_class(self, class_code: str, fmt: str) -> Export:
        check_export_format(fmt)
        check_class_code(class_code)
        rows = list(self.store.event_rows(EventFilter(class_code=class_code)))
        if not rows:
            raise _no_class(class_code)
        return _export(rows, fmt, f"class-{class_code}")

    # ------------------------------------------------------------ helpers

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

    def _timeline_infos(self, model_name: str, events: list[Event]) -> Mapping[int, TokenInfo]:
        recorded: dict[int, str] = {}
        for event in events:
            if isinstance(event, TokenAppended):
                recorded.setdefault(event.token_id, event.token_text)
        return self.views.infos(model_name, recorded)

    def _previews(self, session_ids: list[str]) -> dict[str, TextPreview]:
        """The listed sessions' prompts and texts, replayed from their events, read in one
        query for the whole page."""
        if not session_ids:
            return {}
        streams: dict[str, list[Event]] = {sid: [] for sid in session_ids}
        for row in self.store.event_rows(EventFilter(session_ids=tuple(session_ids))):
            streams[row.event.session_id].append(row.event)
        previews = {}
        for sid, events in streams.items():
            state = domain.replay(sorted(events, key=lambda e: e.version))
            if state is None:
                previews[sid] = TextPreview(prompt=None, current_text="")
                continue
            previews[sid] = TextPreview(
                prompt=None if state.prompt is None else preview_head(state.prompt),
                current_text=preview_tail(self.views.text_if_loaded(state)),
            )
        return previews

    def _view(self, events: list[Event]) -> SessionView:
        state = domain.replay(events)
        assert state is not None
        return self.views.view(state)


def preview_head(text: str) -> str:
    return text if len(text) <= LIST_TEXT_CHARS else text[: LIST_TEXT_CHARS - 1] + "…"


def preview_tail(text: str) -> str:
    return text if len(text) <= LIST_TEXT_CHARS else "…" + text[-(LIST_TEXT_CHARS - 1) :]


def _no_class(class_code: str) -> ClassNotFound:
    return ClassNotFound(f"No sessions with class code {class_code!r} (or all purged).")


def _export(rows: list[EventRow], fmt: str, stem: str) -> Export:
    if fmt == "csv":
        return Export(exports.to_csv(rows), exports.CSV_TYPE, f"{stem}.csv")
    return Export(exports.to_json(rows), exports.JSON_TYPE, f"{stem}.json")
