"""Events as files: CSV (one row per event, payload flattened), JSON and JSON Lines.

The teacher API and ``tokenwheel export-events`` share these formats; the tests read them
back into the same events (``tests/export_readers.py``). Floats are written with
``repr``, so they read back exactly. CSV text cells are spreadsheet-safe: one that would
start a formula gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any

from tokenwheel.domain.events import EVENT_TYPES, payload_of
from tokenwheel.store.records import EventRow

CSV_TYPE = "text/csv; charset=utf-8"
JSON_TYPE = "application/json"

ENVELOPE_COLUMNS = (
    "event_id",
    "session_id",
    "class_code",
    "model_name",
    "version",
    "type",
    "schema_version",
    "occurred_at",
)
_ENVELOPE_FIELDS = {"session_id", "version", "occurred_at"}


def _payload_columns() -> tuple[str, ...]:
    """Every payload field of every event type, in declaration order, each once.
    SessionCreated's ``model_name`` and ``class_code`` share the envelope's columns."""
    seen: dict[str, None] = {}
    for cls in EVENT_TYPES.values():
        for f in fields(cls):
            if f.name not in _ENVELOPE_FIELDS and f.name not in ENVELOPE_COLUMNS:
                seen.setdefault(f.name, None)
    return tuple(seen)


PAYLOAD_COLUMNS = _payload_columns()
CSV_COLUMNS = ENVELOPE_COLUMNS + PAYLOAD_COLUMNS


def export_record(row: EventRow) -> dict[str, Any]:
    """One event as a JSON object: the table's columns, the session's class and model."""
    e = row.event
    return {
        "event_id": row.id,
        "session_id": e.session_id,
        "class_code": row.class_code,
        "model_name": row.model_name,
        "version": e.version,
        "type": e.type,
        "schema_version": e.SCHEMA_VERSION,
        "occurred_at": e.occurred_at.isoformat(),
        "payload": payload_of(e),
    }


def to_json(rows: Iterable[EventRow]) -> str:
    return json.dumps([export_record(r) for r in rows], ensure_ascii=False, indent=1)


def iter_jsonl(rows: Iterable[EventRow]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(export_record(row), ensure_ascii=False) + "\n"


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV
# injection"); a prompt is typed by a student and opened by a teacher.
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")


def spreadsheet_text(text: str) -> str:
    """Text that a spreadsheet shows as text: one more leading apostrophe when it would
    start a formula (after any apostrophes it already has), else unchanged."""
    return "'" + text if _FORMULA.match(text) else text


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # numbers are never formulas
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    if isinstance(value, str):
        return spreadsheet_text(value)
    return str(value)


def iter_csv(rows: Iterable[EventRow]) -> Iterator[str]:
    """The header, then one line per event; cells of fields an event lacks are empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for row in rows:
        record = export_record(row)
        payload = record.pop("payload")
        values = {**record, **payload}
        writer.writerow([_cell(values.get(column)) for column in CSV_COLUMNS])
        yield flush()


def to_csv(rows: Iterable[EventRow]) -> str:
    return "".join(iter_csv(rows))
