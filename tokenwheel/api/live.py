"""The live view: ``GET /api/teacher/classes/{code}/live``, a Server-Sent Events stream
of a class's events (docs/api.md "Live view").

The stream is read from the database (``tokenwheel.services.live``), so it shows what
every server process and host stores. Each open stream holds one of the worker's
threads: streams are capped per process (503 + Retry-After past the cap) and each ends
by itself after ``TOKENWHEEL_LIVE_STREAM_DURATION``; a client reconnects with
``Last-Event-ID`` and misses nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, cast

from flask import Response, current_app, request

from tokenwheel.domain.errors import InvalidCommand, Overloaded
from tokenwheel.domain.rules import LIVE_HEARTBEAT_SECONDS, LIVE_RETRY_MS, MAX_EVENT_ID
from tokenwheel.services import LiveFeeds
from tokenwheel.services.live import ClassSnapshot, LiveEvent, LiveReader, LiveToken, StudentCard

from . import schemas as s
from .bodies import display
from .teacher import blp, teacher_only

log = logging.getLogger(__name__)

STREAMS_FULL_RETRY_AFTER = 10  # seconds

KINDS_SENT = ["snapshot", "join", "prompt", "append", "undo", "guess", "delete"]
_TOKEN = {
    "type": ["object", "null"],
    "required": ["token_id", "token_text", "display_text", "probability", "rank"],
    "properties": {
        "token_id": {"type": "integer"},
        "token_text": {"type": "string"},
        "display_text": {"type": "string"},
        "partial_utf8": {"type": "boolean"},
        "special": {"type": "boolean"},
        "end_of_sequence": {"type": "boolean"},
        "probability": {"type": "number"},
        "rank": {"type": "integer"},
        "category": {"type": "string"},
        "selection": {"type": "string"},
    },
}
_CARD = {
    "type": "object",
    "required": ["session_id", "version", "text", "token_count", "last_token", "deleted"],
    "properties": {
        "session_id": {"type": "string"},
        "nickname": {"type": ["string", "null"]},
        "model_name": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        "updated_at": {"type": "string", "format": "date-time"},
        "prompt": {"type": ["string", "null"]},
        "text": {"type": "string"},
        "token_count": {"type": "integer", "minimum": 0},
        "last_token": _TOKEN,
        "deleted": {"type": "boolean"},
        "undone": _TOKEN,
        "guess": {"type": "object"},
    },
}
_SNAPSHOT = {
    "type": "object",
    "required": ["students", "more"],
    "properties": {"students": {"type": "array", "items": _CARD}, "more": {"type": "boolean"}},
}
# One SSE event as schemathesis and other tools read a stream: its fields, ``data`` JSON.
SSE_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": KINDS_SENT},
        "id": {"type": "string", "pattern": "^[0-9]{1,19}$"},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"oneOf": [_SNAPSHOT, _CARD]},
        },
    },
}
LIVE_DOC = {
    "responses": {
        "200": {
            "description": (
                "`text/event-stream`. First `retry:`; then, without `Last-Event-ID`, one "
                "`snapshot` event (the class's active sessions; its `id` is the event id it "
                "was taken at); then one event per stored event of the class, in the order "
                "written: `event:` is `join`, `prompt`, `append`, `undo`, `guess` or "
                "`delete`, `id:` the event's global id, `data:` compact JSON with the "
                "student's card after it. A comment line every 15 s; the stream ends by "
                "itself after a few minutes (reconnect with `Last-Event-ID`)."
            ),
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        }
    },
    "parameters": [
        {
            "in": "header",
            "name": "Last-Event-ID",
            "required": False,
            "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
            "description": "Resume after this event id (the last `id:` received).",
        }
    ],
}


class StreamSlots:
    """How many live streams this process may hold at once (each holds a thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._open -= 1


def parse_last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        raise InvalidCommand("Last-Event-ID must be an event id: a whole number, 0 or more.")
    number = int(value)
    if number > MAX_EVENT_ID:
        raise InvalidCommand(f"Last-Event-ID must be at most {MAX_EVENT_ID}.")
    return number


# ---------------------------------------------------------------- frames


def frame(kind: str, event_id: int, body: dict[str, Any]) -> str:
    """One SSE event. Compact JSON never holds a raw line break (JSON escapes them), so
    ``data:`` is one line."""
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n"


def token_body(token: LiveToken | None) -> dict[str, Any] | None:
    if token is None:
        return None
    return {
        "token_id": token.token_id,
        "token_text": token.token_text,
        **display(token.info),
        "probability": token.probability,
        "rank": token.rank,
        "category": token.category,
        "selection": token.selection,
    }


def card_body(card: StudentCard) -> dict[str, Any]:
    body = asdict(card)
    body["last_token"] = token_body(card.last_token)
    body["updated_at"] = card.updated_at.isoformat()
    return body


def event_body(event: LiveEvent) -> dict[str, Any]:
    """The card after the event (``updated_at`` is the event's time; after an append,
    ``last_token`` is the token appended), plus what an undo removed or a guess said."""
    body = card_body(event.card)
    if event.kind == "undo":
        body["undone"] = token_body(event.token)
    elif event.kind == "guess":
        body["guess"] = event.facts
    return body


def snapshot_body(snapshot: ClassSnapshot) -> dict[str, Any]:
    return {"students": [card_body(c) for c in snapshot.cards], "more": snapshot.more}


def stream(reader: LiveReader, duration: float) -> Iterator[str]:
    """The frames of one stream. The server closes it when a write fails (a client that
    left is noticed at the next heartbeat at the latest)."""
    try:
        yield f"retry: {LIVE_RETRY_MS}\n\n"
        if reader.needs_snapshot:
            snapshot = reader.snapshot()
            yield frame("snapshot", snapshot.last_event_id, snapshot_body(snapshot))
        end = time.monotonic() + duration
        beat = time.monotonic() + LIVE_HEARTBEAT_SECONDS
        while (now := time.monotonic()) < end:
            for event in reader.next_events(timeout=min(beat, end) - now):
                yield frame(event.kind, event.id, event_body(event))
            if time.monotonic() >= beat:
                yield ": keep-alive\n\n"
                beat = time.monotonic() + LIVE_HEARTBEAT_SECONDS
        yield ": this stream ends here; reconnect with Last-Event-ID\n\n"
    except Exception:
        # the answer's status was sent long ago: log, end the stream, the client retries
        log.exception("live stream of a class failed; it ends and the client reconnects")


# ---------------------------------------------------------------- the route


def live_feeds() -> LiveFeeds:
    return cast(LiveFeeds, current_app.extensions["tokenwheel.live"])


@blp.route("/classes/<class_code>/live", methods=["GET"])
@teacher_only
@blp.doc(**LIVE_DOC)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="A bad class code or Last-Event-ID.")
@blp.alt_response(
    503, schema=s.ApiErrorSchema, description="This server holds as many live streams as it may."
)
def live(class_code: str) -> Response:
    """Watch a class live

    A Server-Sent Events stream of the class's events as they are stored, whichever
    server wrote them: each student's joining, prompt, append, undo, guess and deletion,
    within a second. Without `Last-Event-ID` it starts with a `snapshot` of the class's
    active sessions; with it, it resumes right after that event. Each event's `data`
    holds the student's card after it (nickname, text, last token and its probability),
    so one event is enough to draw a student.
    """
    last_event_id = parse_last_event_id(request.headers.get("Last-Event-ID"))
    reader = live_feeds().open(class_code, last_event_id)
    slots: StreamSlots = current_app.extensions["tokenwheel.live_slots"]
    if not slots.take():
        raise Overloaded(
            f"This server already holds {slots.limit} live streams, the most it may "
            "(TOKENWHEEL_LIVE_MAX_STREAMS). Close a live view, or try again shortly.",
            retry_after=STREAMS_FULL_RETRY_AFTER,
        )
    duration = current_app.extensions["tokenwheel.settings"].live_stream_duration
    response = Response(stream(reader, duration), mimetype="text/event-stream")
    # the slot is freed when the server closes the answer, even one never iterated
    response.call_on_close(slots.release)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
