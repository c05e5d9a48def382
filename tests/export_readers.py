"""Reading Token Wheel's exports back into events: the tests hold every export to
giving back exactly the events stored (``tokenwheel/exports.py`` writes them)."""

from __future__ import annotations

import csv
import io
import json
import re
import typing
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from typing import Any

from tokenwheel.domain.events import EVENT_TYPES, Event, event_from_record

_ENVELOPE_FIELDS = {"session_id", "version", "occurred_at"}
_QUOTED_FORMULA = re.compile(r"^'+[=+\-@\t\r]")


def text_from_spreadsheet(text: str) -> str:
    """The inverse of :func:`spreadsheet_text`: drop the apostrophe it added."""
    return text[1:] if _QUOTED_FORMULA.match(text) else text


def events_from_json(records: Iterable[dict[str, Any]]) -> list[Event]:
    """Events from :func:`export_record` objects (a parsed JSON export or JSONL lines)."""
    return [
        event_from_record(
            r["type"],
            r["schema_version"],
            r["payload"],
            session_id=r["session_id"],
            version=r["version"],
            occurred_at=datetime.fromisoformat(r["occurred_at"]),
        )
        for r in records
    ]


def _parse_cell(text: str, annotation: Any) -> Any:
    args = typing.get_args(annotation)
    optional = type(None) in args
    if optional:
        if text == "":
            return None
        annotation = next(a for a in args if a is not type(None))
    origin = typing.get_origin(annotation) or annotation
    if origin is bool:
        return text == "true"
    if origin in (int, float):
        return origin(text)
    if origin in (tuple, list):
        return json.loads(text)
    return text_from_spreadsheet(text)


def events_from_csv(text: str) -> list[Event]:
    """Events from a CSV export: each row's cells typed by its event type's fields."""
    events = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        cls = EVENT_TYPES[row["type"]]
        hints = typing.get_type_hints(cls)
        payload = {
            f.name: _parse_cell(row[f.name], hints[f.name])
            for f in fields(cls)
            if f.name not in _ENVELOPE_FIELDS
        }
        events.append(
            event_from_record(
                row["type"],
                int(row["schema_version"]),
                payload,
                session_id=row["session_id"],
                version=int(row["version"]),
                occurred_at=datetime.fromisoformat(row["occurred_at"]),
            )
        )
    return events
