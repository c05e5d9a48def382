"""Every integer in a query string has a documented upper bound, and a number past it is
400, on SQLite and PostgreSQL alike: ``page=200000000000000000`` was an integer overflow
in SQLite and "bigint out of range" in PostgreSQL (500). On the fake model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.api.conftest import Student, make_app
from tests.api.teacher_client import TOKEN
from tests.api.test_errors import assert_error, event_count
from tests.conftest import MODEL_CACHE
from tests.fakes import FakeModels
from tokenwheel.domain import rules
from tokenwheel.settings import Settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    settings = Settings(
        instance_path=tmp_path,
        database_url=database_url,
        scheduler_enabled=False,
        offline=True,
        model_cache_dir=MODEL_CACHE,
        teacher_token=TOKEN,
    )
    app = make_app(settings, FakeModels())  # type: ignore[arg-type]
    yield app
    app.extensions["tokenwheel.engine"].dispose()


@pytest.fixture
def session_url(app: Flask) -> str:
    student = Student(app.test_client())
    student.prompt("The cat")
    student.append(token_id=4)
    return f"/api/teacher/sessions/{student.id}"


def get(app: Flask, url: str, **query: Any) -> Any:
    return app.test_client().get(url, query_string=query, headers=AUTH)


HUGE = ["200000000000000000", str(2**63), str(2**64), "9" * 30, "9" * 5000]


@pytest.mark.parametrize("page", [rules.MAX_PAGE + 1, *HUGE])
def test_a_page_past_the_last_possible_is_400(app: Flask, page: Any) -> None:
    body = assert_error(get(app, "/api/teacher/sessions", page=page), 400)
    assert "page" in body["message"]


def test_the_last_possible_page_is_an_empty_page(app: Flask, session_url: str) -> None:
    r = get(app, "/api/teacher/sessions", page=rules.MAX_PAGE, page_size=rules.MAX_PAGE_SIZE)
    assert r.status_code == 200, r.json
    assert r.json["sessions"] == [] and r.json["total"] == 1


@pytest.mark.parametrize("path", ["replay", "next-token-probs"])
@pytest.mark.parametrize("version", [rules.MAX_VERSION + 1, *HUGE])
def test_a_version_past_the_largest_is_400(
    app: Flask, session_url: str, path: str, version: Any
) -> None:
    before = event_count(app)
    body = assert_error(get(app, f"{session_url}/{path}", version=version), 400)
    assert "version" in body["message"]
    assert event_count(app) == before


@pytest.mark.parametrize("number", HUGE)
def test_the_other_integers_keep_their_bounds(app: Flask, session_url: str, number: str) -> None:
    student_url = session_url.replace("/teacher", "")
    assert_error(get(app, f"{student_url}/next-token-probs", other_top_k=number), 400)
    assert_error(get(app, f"{session_url}/next-token-probs", version=3, other_top_k=number), 400)
    assert_error(get(app, "/api/teacher/sessions", page_size=number), 400)


def test_every_integer_in_a_query_string_has_a_documented_maximum(app: Flask) -> None:
    spec = app.test_client().get("/api/openapi.json").json
    seen = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":  # the path's own (its path parameters)
                continue
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter["in"] == "query" and schema.get("type") == "integer":
                    seen.append((method, path, parameter["name"]))
                    assert "maximum" in schema, (method, path, parameter["name"])
    assert {name for _, _, name in seen} >= {"page", "page_size", "version", "other_top_k"}
