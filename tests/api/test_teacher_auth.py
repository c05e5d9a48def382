"""Every teacher endpoint, taken from the OpenAPI spec, refuses without the right token.

On the fake model: who may call what does not depend on the model's numbers."""

from __future__ import annotations

import hmac
import re
import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Student, make_app
from tests.api.teacher_client import TOKEN, teacher_app
from tests.fakes import FakeModels
from tokenwheel.settings import Settings

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture
def fake_app(settings: Settings) -> Flask:
    """The fake-model app of tests/api/conftest.py, with the teacher API enabled."""
    return teacher_app(settings, FakeModels())  # type: ignore[arg-type]


def teacher_operations(client: FlaskClient, session_id: str) -> list[tuple[str, str]]:
    """(method, concrete URL) for every operation under /api/teacher in the spec."""
    spec = client.get("/api/openapi.json").json
    params = {"session_id": session_id, "class_code": "7b", "round_id": str(uuid.uuid4())}
    operations = []
    for path, item in spec["paths"].items():
        if not path.startswith("/api/teacher"):
            continue
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            assert operation.get("security") == [{"teacherToken": []}], (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            names = re.findall(r"\{(\w+)\}", path)
            assert set(names) <= set(params), f"a new path parameter in {path}: teach this test"
            operations.append((method, re.sub(r"\{(\w+)\}", lambda m: params[m[1]], path)))
    return operations


@pytest.fixture
def operations(fake_client: FlaskClient) -> list[tuple[str, str]]:
    student = Student(fake_client, class_code="7b")
    student.prompt("The cat")  # words the fake model knows
    ops = teacher_operations(fake_client, student.id)
    assert len(ops) >= 7  # list, detail, replay, statistics, exports, class statistics
    return ops


def call(client: FlaskClient, method: str, url: str, authorization: str | None) -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    return client.open(url, method=method.upper(), headers=headers)


REFUSED = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Bearer wrong-token",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
    f"Basic {TOKEN}",
    TOKEN,
    f"Bearer {TOKEN.upper()}",
]


@pytest.mark.parametrize("authorization", REFUSED, ids=repr)
def test_missing_or_wrong_token_is_401(
    fake_client: FlaskClient, operations: list[tuple[str, str]], authorization: str | None
) -> None:
    for method, url in operations:
        r = call(fake_client, method, url, authorization)
        assert r.status_code == 401, (method, url, r.status_code)
        assert r.headers["WWW-Authenticate"].lower().startswith("bearer")
        assert r.json["error"] and "Authorization: Bearer" in r.json["message"]


def test_disabled_teacher_api_is_403_with_how_to_enable_it(
    settings: Settings, operations: list[tuple[str, str]]
) -> None:
    app = make_app(settings, FakeModels())  # type: ignore[arg-type]
    client = app.test_client()  # no TOKENWHEEL_TEACHER_TOKEN
    for authorization in (None, f"Bearer {TOKEN}", "Bearer anything"):
        for method, url in operations:
            r = call(client, method, url, authorization)
            assert r.status_code == 403, (method, url, r.status_code)
            assert r.json["error"] and "TOKENWHEEL_TEACHER_TOKEN" in r.json["message"]


def test_the_right_token_passes_and_is_compared_in_constant_time(
    fake_client: FlaskClient, operations: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for method, url in operations:
        r = call(fake_client, method, url, f"bearer {TOKEN}")  # the scheme is case-insensitive
        # replay needs ?version and opening a class a body (400); "7b" is no class a
        # teacher opened (404 past the token check); everything else answers
        opened_class_route = url.startswith("/api/teacher/classes/7b") and not url.endswith(
            ("/statistics", "/export")
        )
        expected = (200, 400, 404) if opened_class_route else (200, 400)
        assert r.status_code in expected, (method, url, r.status_code, r.data[:200])
    assert len(calls) == len(operations)


def test_unknown_sessions_are_401_not_404_without_the_token(fake_client: FlaskClient) -> None:
    r = fake_client.get(f"/api/teacher/sessions/{uuid.uuid4()}")
    assert r.status_code == 401


def test_student_endpoints_never_list_sessions(fake_client: FlaskClient) -> None:
    Student(fake_client, class_code="7b")
    assert fake_client.get("/api/sessions").status_code == 405
    spec = fake_client.get("/api/openapi.json").json
    student_paths = [p for p in spec["paths"] if not p.startswith("/api/teacher")]
    for path in student_paths:
        if "get" in spec["paths"][path]:
            # every student read is of one session (by its id), the model catalog, or
            # the load balancer's health checks (which name no session)
            assert "{session_id}" in path or path in {"/api/models", "/api/health", "/api/ready"}, (
                path
            )
