"""Text with U+0000 (NUL) works on both databases as it did on SQLite: PostgreSQL cannot
hold it in JSONB or text ("unsupported Unicode escape sequence" was a 500), so the store
encodes it at its edge. On the fake model; tests/models/test_byte_tokens.py appends every
byte token of the real models on PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from tests import export_readers
from tests.api.conftest import Student
from tests.api.test_query_bounds import AUTH, app  # noqa: F401 - the app on both databases
from tokenwheel.store.database import make_engine
from tokenwheel.store.sql import SqlEventStore


def test_a_prompt_with_nul_is_stored_replayed_and_exported(app: Flask) -> None:  # noqa: F811
    client = app.test_client()
    student = Student(client)
    prompt = "The\x00 cat \x00"
    assert student.prompt(prompt)["current_text"] == prompt
    student.append(token_id=4)
    assert student.state()["initial_prompt"] == prompt
    teacher_url = f"/api/teacher/sessions/{student.id}"
    detail = client.get(teacher_url, headers=AUTH).json
    assert detail["timeline"][1]["payload"]["prompt"] == prompt
    engine = make_engine(str(app.extensions["tokenwheel.settings"].database_url))
    try:
        stored = SqlEventStore(engine).load(student.id)
    finally:
        engine.dispose()
    assert stored[1].prompt == prompt  # type: ignore[attr-defined]
    csv_text = client.get(f"{teacher_url}/export?format=csv", headers=AUTH).get_data(as_text=True)
    assert export_readers.events_from_csv(csv_text) == stored
    as_json = client.get(f"{teacher_url}/export?format=json", headers=AUTH).json
    assert export_readers.events_from_json(as_json) == stored


def test_a_filter_with_nul_finds_nothing(app: Flask) -> None:  # noqa: F811
    Student(app.test_client())
    for query in ("model=a%00b", "model=%00", "model=%EF%B7%90x"):
        r = app.test_client().get(f"/api/teacher/sessions?{query}", headers=AUTH)
        assert r.status_code == 200, r.json
        assert r.json["sessions"] == [] and r.json["total"] == 0
    with app.extensions["tokenwheel.engine"].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 1
