"""Hostile requests against real servers (``tokenwheel serve``: gunicorn, the bundled
model) on SQLite and on PostgreSQL: every case of tests/hostile/cases.py gets its status,
a JSON error body with ``error`` and ``message`` (4xx and 5xx, also where gunicorn answers
before the app), ``X-Content-Type-Options: nosniff``, exactly the events it may store
(none for a refusal), and no traceback in the server's log."""

from __future__ import annotations

import pytest

from tests.hostile.cases import CASES, Case, by_id
from tests.hostile.conftest import TEACHER_TOKEN, Answer, HostileServer, request_bytes, send_raw

pytestmark = pytest.mark.server


def fill(text: str, server: HostileServer) -> str:
    return text.replace("{s}", f"/api/sessions/{server.victim}").replace(
        "{t}", f"/api/teacher/sessions/{server.victim}"
    )


def send(server: HostileServer, case: Case) -> Answer | None:
    if case.raw is not None:
        data = case.raw.replace(b"{s}", fill("{s}", server).encode())
    else:
        headers = list(case.headers)
        if case.teacher:
            headers.append(("Authorization", f"Bearer {TEACHER_TOKEN}"))
        data = request_bytes(
            case.method,
            fill(case.path, server),
            headers=headers,
            body=case.body,
            content_type=case.content_type,
            content_length=case.content_length,
        )
    return send_raw(
        server.port,
        data,
        half_close=case.half_close,
        pause=case.pause,
        rest=case.rest,
        head=case.method == "HEAD",
    )


def test_the_suite_is_large_enough() -> None:
    assert len(by_id()) >= 200


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_request(hostile: HostileServer, case: Case) -> None:
    before = hostile.event_count()
    answer = send(hostile, case)
    stored = hostile.event_count() - before
    log = hostile.new_log()
    assert "Traceback" not in log, log[-4000:]
    assert answer is not None, "the server closed the connection without an answer"
    expected = case.status if isinstance(case.status, tuple) else (case.status,)
    assert answer.status in expected, (answer.status, answer.body[:300])
    assert answer.headers.get("x-content-type-options") == "nosniff", answer.headers
    if answer.status >= 400:
        assert answer.headers.get("content-type", "").startswith("application/json")
        body = answer.json()
        assert isinstance(body.get("error"), str) and body["error"]
        assert isinstance(body.get("message"), str) and body["message"]
        assert "Traceback" not in answer.body.decode("utf-8", "replace")
    assert answer.status < 500, answer.body[:300]
    assert stored == case.stores, f"{stored} events stored, expected {case.stores}"
