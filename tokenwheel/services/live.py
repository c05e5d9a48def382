"""A class, live: each student's prompt, append, undo and guess as it is stored, for the
teacher's grid and the projector.

Everything sent is read from the event table by global id (``ClassFeed``), whichever
process or host wrote it; this process's memory holds only each reader's cursor and the
states it has already rebuilt from the table. A reader starts either from a snapshot of
the class (its active sessions as of event id N; then every event after N) or, resuming,
from the id the client last saw (SSE ``Last-Event-ID``).

Each event carries the student's card as it is after the event (text, last token and its
probability...), so a client can draw any event on its own, even one of a student it had
not seen. Tokens are described from the loaded model when there is one and from their
recorded text otherwise: a live feed never loads a model.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tokenwheel.domain import session as domain
from tokenwheel.domain.errors import ModelUnavailable, UnknownModel
from tokenwheel.domain.events import Event, TokenAppended, Undone, payload_of
from tokenwheel.domain.rules import (
    ACTIVE,
    LIVE_BATCH,
    LIVE_MAX_STUDENTS,
    check_class_code,
)
from tokenwheel.domain.session import GeneratedToken, SessionState
from tokenwheel.inference.tokens import TokenInfo
from tokenwheel.settings import Settings
from tokenwheel.store.records import EventFilter, EventRow, SessionQuery

from .clock import utcnow
from .gateway import ModelGateway
from .ports import ClassFeed, Clock, EventStore, LanguageModels, Wakeups
from .teaching import preview_head, preview_tail
from .views import SessionViews, recorded_info

log = logging.getLogger(__name__)

# The SSE event name of each event type. ``GuessMade`` and a nickname in
# ``SessionCreated`` come with teacher-opened classes; an event type not named here is
# not sent (the cursor still moves past it).
KINDS = {
    "SessionCreated": "join",
    "SessionForked": "join",
    "SetPrompt": "prompt",
    "TokenAppended": "append",
    "Undone": "undo",
    "GuessMade": "guess",
    "SessionDeleted": "delete",
}
CACHED_STATES = 2 * LIVE_MAX_STUDENTS  # per reader; a state pushed out is read again


@dataclass(frozen=True)
class LiveToken:
    """A token as a card shows it: its recorded facts and how it is displayed."""

    token_id: int
    token_text: str
    info: TokenInfo
    probability: float
    rank: int
    category: str
    selection: str


@dataclass(frozen=True)
class StudentCard:
    """One student in the grid, right after the event that produced it. ``prompt`` is
    cut to its first and ``text`` to its last ``LIST_TEXT_CHARS`` characters."""

    session_id: str
    nickname: str | None
    model_name: str
    version: int
    updated_at: datetime
    prompt: str | None
    text: str
    token_count: int
    last_token: LiveToken | None
    deleted: bool


@dataclass(frozen=True)
class LiveEvent:
    """One stored event, for the stream: ``id`` is ``events.id``; ``token`` is the token
    appended (append) or removed (undo); ``facts`` the payload of a guess."""

    id: int
    kind: str
    occurred_at: datetime
    card: StudentCard
    token: LiveToken | None = None
    facts: dict[str, Any] | None = None


@dataclass(frozen=True)
class ClassSnapshot:
    """The class's active sessions as of event ``last_event_id`` (at most
    ``LIVE_MAX_STUDENTS``, the newest; ``more`` says some were left out)."""

    last_event_id: int
    cards: list[StudentCard]
    more: bool


def nickname_of(first: Event) -> str | None:
    """The nickname a student gave when joining (``SessionCreated.nickname``, stored by
    teacher-opened classes), or None."""
    nickname = getattr(first, "nickname", None)
    return nickname if isinstance(nickname, str) and nickname else None


class LiveFeeds:
    """The use case: open a reader on a class."""

    def __init__(
        self,
        store: EventStore,
        feed: ClassFeed,
        wakeups: Wakeups,
        models: LanguageModels,
        settings: Settings,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.feed = feed
        self.wakeups = wakeups
        self.models = ModelGateway(models)
        self.views = SessionViews(self.models)
        self.settings = settings
        self.clock = clock

    def open(self, class_code: str, last_event_id: int | None) -> LiveReader:
        """A reader after ``last_event_id``; with None, after a snapshot taken now
        (:meth:`LiveReader.snapshot` must be read first)."""
        check_class_code(class_code)
        return LiveReader(self, class_code, last_event_id)

    def describe(self, model_name: str, token: GeneratedToken) -> LiveToken:
        info = recorded_info(token.token_text)
        if self.models.loaded(model_name):
            # unloaded meanwhile: the recorded text describes it
            with suppress(ModelUnavailable, UnknownModel):
                info = self.models.token_info(model_name, token.token_id)
        return LiveToken(
            token_id=token.token_id,
            token_text=token.token_text,
            info=info,
            probability=token.probability,
            rank=token.rank,
            category=token.category,
            selection=token.selection,
        )

    def card(self, state: SessionState, nickname: str | None) -> StudentCard:
        last = state.generated[-1] if state.generated else None
        return StudentCard(
            session_id=state.session_id,
            nickname=nickname,
            model_name=state.model_name,
            version=state.version,
            updated_at=state.updated_at,
            prompt=None if state.prompt is None else preview_head(state.prompt),
            text=preview_tail(self.views.text_if_loaded(state)),
            token_count=len(state.generated),
            last_token=None if last is None else self.describe(state.model_name, last),
            deleted=state.deleted,
        )


class LiveReader:
    """One stream's cursor over a class, and the states it has rebuilt."""

    def __init__(self, feeds: LiveFeeds, class_code: str, last_event_id: int | None) -> None:
        self.feeds = feeds
        self.class_code = class_code
        self.cursor = last_event_id or 0
        self.needs_snapshot = last_event_id is None
        self._states: OrderedDict[str, tuple[SessionState, str | None]] = OrderedDict()

    def snapshot(self) -> ClassSnapshot:
        """The class now, and the cursor set just after it. The latest id is read before
        the sessions are listed: a session that joins in between has all its events
        after that id and arrives through the feed."""
        feeds = self.feeds
        top = feeds.feed.latest_event_id()
        idle_before = feeds.clock() - timedelta(seconds=feeds.settings.session_ttl)
        page = feeds.store.list_sessions(
            SessionQuery(
                idle_before=idle_before,
                class_code=self.class_code,
                status=ACTIVE,
                limit=LIVE_MAX_STUDENTS,
            )
        )
        ids = [r.session_id for r in page.records]
        streams: dict[str, list[Event]] = {sid: [] for sid in ids}
        if ids:
            rows = feeds.store.event_rows(EventFilter(session_ids=tuple(ids), up_to_id=top))
            for row in rows:
                streams[row.event.session_id].append(row.event)
        cards = []
        for sid in ids:
            events = sorted(streams[sid], key=lambda e: e.version)
            state = domain.replay(events) if events else None
            if state is None:
                continue  # joined after the snapshot's id: the feed brings it
            nickname = nickname_of(events[0])
            self._remember(state, nickname)
            cards.append(feeds.card(state, nickname))
        self.cursor = top
        self.needs_snapshot = False
        return ClassSnapshot(last_event_id=top, cards=cards, more=page.total > len(ids))

    def next_events(self, timeout: float) -> list[LiveEvent]:
        """The class's next events after the cursor, waiting up to ``timeout`` seconds
        for some (an empty list when none came)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.feeds.wakeups.generation(self.class_code)
            found = self._read()
            left = deadline - time.monotonic()
            if found or left <= 0:
                return found
            self.feeds.wakeups.wait(self.class_code, seen, left)

    def _read(self) -> list[LiveEvent]:
        top = self.feeds.feed.latest_event_id()
        rows = self.feeds.feed.class_events(self.class_code, self.cursor, top, LIVE_BATCH)
        # a full batch may have more behind it; otherwise every id up to top is read
        self.cursor = rows[-1].id if len(rows) == LIVE_BATCH else max(self.cursor, top)
        return [event for event in (self._live(row) for row in rows) if event is not None]

    def _live(self, row: EventRow) -> LiveEvent | None:
        event = row.event
        kind = KINDS.get(event.type)
        if kind is None:
            return None
        try:
            before, nickname = self._before(event)
            after = domain.apply(before, event)
        except ValueError as exc:  # a stream this version cannot replay: skip it
            log.warning("live feed skips event %s: %s", row.id, exc)
            self._states.pop(event.session_id, None)
            return None
        if before is None:
            nickname = nickname_of(event)
        self._remember(after, nickname)
        feeds = self.feeds
        token: LiveToken | None = None
        if isinstance(event, TokenAppended) and after.generated:
            token = feeds.describe(after.model_name, after.generated[-1])
        elif isinstance(event, Undone) and before is not None and before.generated:
            token = feeds.describe(before.model_name, before.generated[-1])
        return LiveEvent(
            id=row.id,
            kind=kind,
            occurred_at=event.occurred_at,
            card=feeds.card(after, nickname),
            token=token,
            facts=payload_of(event) if kind == "guess" else None,
        )

    def _before(self, event: Event) -> tuple[SessionState | None, str | None]:
        """The session's state just before ``event``: remembered, or rebuilt from the
        table (a student first seen, or pushed out of the cache)."""
        known = self._states.get(event.session_id)
        if known is not None and known[0].version == event.version - 1:
            return known
        if event.version <= 1:
            return None, None
        events = self.feeds.store.load(event.session_id, up_to_version=event.version - 1)
        state = domain.replay(events)
        return state, nickname_of(events[0]) if events else None

    def _remember(self, state: SessionState, nickname: str | None) -> None:
        self._states[state.session_id] = (state, nickname)
        self._states.move_to_end(state.session_id)
        while len(self._states) > CACHED_STATES:
            self._states.popitem(last=False)
