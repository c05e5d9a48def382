"""The analyst views return the same rows as the teacher API, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.api.teacher_client import Teacher, build_lesson, teacher_app
from tests.integration.test_views import OTHER_IN_CLASS
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.settings import Settings


@pytest.fixture
def app(settings: Settings, registry: ModelRegistry, database_url: str) -> Iterator[Flask]:
    app = teacher_app(settings, registry, database_url=database_url)
    yield app
    app.extensions["tokenwheel.engine"].dispose()  # before the test schema is dropped


def query(app: Flask, sql: str, **params: Any) -> list[dict[str, Any]]:
    with app.extensions["tokenwheel.engine"].connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def test_views_equal_the_api(app: Flask) -> None:
    client = app.test_client()
    teacher = Teacher(client)
    lessons = [build_lesson(client), build_lesson(client, "8c", "Hello")]
    for lesson in lessons:
        sid = lesson.student.id
        timeline = teacher.json(f"/sessions/{sid}")["timeline"]
        api_tokens = [e for e in timeline if e["type"] == "TokenAppended"]
        rows = query(
            app, "SELECT * FROM token_events WHERE session_id = :sid ORDER BY version", sid=sid
        )
        assert [r["version"] for r in rows] == [e["version"] for e in api_tokens]
        for row, entry in zip(rows, api_tokens, strict=True):
            payload = entry["payload"]
            for key, value in payload.items():
                expected = int(value) if isinstance(value, bool) else value
                assert row[key] == expected, key
            assert row["undone"] == int(entry["undone"])
            assert row["in_text"] == int(entry["in_final_text"])

        (summary,) = query(app, "SELECT * FROM session_summaries WHERE session_id = :sid", sid=sid)
        stats = teacher.json(f"/sessions/{sid}/statistics")
        (listed,) = [
            s
            for s in teacher.json("/sessions", class_code=stats["class_code"])["sessions"]
            if s["session_id"] == sid
        ]
        for key in ("class_code", "model_name", "prompt", "prompt_count", "tokens_appended"):
            assert summary[key] == stats[key], key
        for key in ("undo_count", "tokens_generated", "other_count", "other_sampled_count"):
            assert summary[key] == stats[key], key
        assert summary["top_choice_count"] == stats["top_choice_count"]
        assert math.isclose(summary["average_probability"], stats["average_probability"])
        assert math.isclose(summary["log_probability"], stats["log_probability"])
        assert summary["status"] == listed["status"] == "active"
        assert summary["event_count"] == listed["version"] == 8

    # "how often did students pick Other in class 7b", straight from docs/events.md
    (row,) = query(app, OTHER_IN_CLASS)
    timeline = teacher.json(f"/sessions/{lessons[0].student.id}")["timeline"]
    picked = [e["payload"]["category"] for e in timeline if e["type"] == "TokenAppended"]
    assert (row["picks"], row["other_picks"]) == (len(picked), picked.count("other"))
