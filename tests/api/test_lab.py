"""The lab's routes over HTTP on the fake model: fork, and many spins."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Student, make_app
from tests.api.teacher_client import TOKEN, Teacher
from tests.api.test_errors import event_count
from tests.api.test_protection import app_with, assert_429, from_address
from tests.fakes import FakeModels
from tokenwheel.settings import Settings

UNKNOWN = "/api/sessions/00000000-0000-0000-0000-000000000000"


def _story(client: FlaskClient) -> Student:
    student = Student(client, class_code="lab-7", seed=3)
    student.prompt("The cat")
    for _ in range(3):
        r = client.post(f"{student.url}/spin", json={"threshold": 0.05})
        assert r.status_code == 200, r.json
    return student


def _events(client: FlaskClient, student: Student) -> Any:
    r = client.get(student.url)
    assert r.status_code == 200
    return r.json


def test_fork_copies_the_session_now_and_as_it_was(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    parent = _events(fake_client, student)
    r = fake_client.post(f"{student.url}/fork")
    assert r.status_code == 201, r.json
    fork = r.json
    assert fork["session_id"] != student.id and fork["version"] == 1
    assert r.headers["ETag"] == 'W/"1"'
    assert fork["forked_from"] == {"session_id": student.id, "version": parent["version"]}
    assert fork["class_code"] == "lab-7" and fork["model_name"] == parent["model_name"]
    assert fork["current_text"] == parent["current_text"]
    assert fork["initial_prompt"] == parent["initial_prompt"]
    same = ("token_id", "token_text", "probability", "selection", "selected_at")
    assert [{k: t[k] for k in same} for t in fork["token_history"]] == [
        {k: t[k] for k in same} for t in parent["token_history"]
    ]
    # as it was after the first spin (version 3: created, prompt, spin)
    r = fake_client.post(f"{student.url}/fork", json={"version": 3})
    assert r.status_code == 201, r.json
    assert r.json["forked_from"]["version"] == 3
    assert [{k: t[k] for k in same} for t in r.json["token_history"]] == [
        {k: t[k] for k in same} for t in parent["token_history"][:1]
    ]
    # the fork is a session like any other: GET, append, and the parent is unchanged
    assert fake_client.get(f"/api/sessions/{fork['session_id']}").status_code == 200
    r = fake_client.post(f"/api/sessions/{fork['session_id']}/spin", json={})
    assert r.status_code == 200 and r.json["version"] == 2
    now = _events(fake_client, student)
    assert {**now, "last_accessed": None} == {**parent, "last_accessed": None}


@pytest.mark.parametrize(
    "body", [{"version": 0}, {"version": 6}, {"version": -1}, {"version": "2"}, {"version": True}]
)
def test_a_fork_at_a_bad_version_is_400_and_stores_nothing(
    fake_client: FlaskClient, body: dict[str, Any]
) -> None:
    student = _story(fake_client)
    before = fake_client.get("/api/teacher/sessions?class_code=lab-7")
    r = fake_client.post(f"{student.url}/fork", json=body)
    assert r.status_code == 400, r.json
    after = fake_client.get("/api/teacher/sessions?class_code=lab-7")
    assert before.status_code == after.status_code
    if before.status_code == 200:
        assert before.json["total"] == after.json["total"]


def test_fork_of_an_unknown_or_deleted_session_is_404(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    assert fake_client.delete(student.url).status_code == 200
    assert fake_client.post(f"{student.url}/fork").status_code == 404
    assert fake_client.post(f"{UNKNOWN}/fork").status_code == 404
    assert fake_client.post("/api/sessions/junk/fork").status_code == 404


def test_a_retried_fork_with_its_key_answers_the_first(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    headers = {"Idempotency-Key": "fork-1"}
    first = fake_client.post(f"{student.url}/fork", json={"version": 4}, headers=headers)
    again = fake_client.post(f"{student.url}/fork", json={"version": 4}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json["session_id"] == first.json["session_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = fake_client.post(f"{student.url}/fork", json={"version": 3}, headers=headers)
    assert other.status_code == 422


def test_sample_counts_spins_and_changes_nothing(fake_client: FlaskClient) -> None:
    student = _story(fake_client)
    before = _events(fake_client, student)
    wheel = student.probs(threshold=0.05)
    body = {"n": 1000, "seed": 42, "threshold": 0.05}
    r = fake_client.post(f"{student.url}/sample", json=body)
    assert r.status_code == 200, r.json
    sample = r.json
    assert sample["n"] == 1000 and sample["seed"] == 42 and sample["version"] == before["version"]
    assert [t["token_id"] for t in sample["tokens"]] == [
        t["token_id"] for t in wheel["above_threshold_tokens"]
    ]
    assert [t["probability"] for t in sample["tokens"]] == [
        t["probability"] for t in wheel["above_threshold_tokens"]
    ]
    assert sample["other"]["probability"] == wheel["other_category"]["total_probability"]
    assert sum(t["count"] for t in sample["tokens"]) + sample["other"]["count"] == 1000
    for p, count in [(t["probability"], t["count"]) for t in sample["tokens"]] + [
        (sample["other"]["probability"], sample["other"]["count"])
    ]:
        assert abs(count - 1000 * p) <= 4 * (1000 * p * (1 - p)) ** 0.5 + 1e-9
    assert "display_text" in sample["tokens"][0]
    again = fake_client.post(f"{student.url}/sample", json=body)
    assert again.json == sample
    fresh = fake_client.post(f"{student.url}/sample", json={"n": 50})
    assert fresh.status_code == 200 and isinstance(fresh.json["seed"], int)
    repeat = fake_client.post(f"{student.url}/sample", json={"n": 50, "seed": fresh.json["seed"]})
    assert repeat.json == fresh.json
    after = _events(fake_client, student)
    assert after["version"] == before["version"]
    assert after["token_history"] == before["token_history"]


@pytest.mark.parametrize(
    "body",
    [{"n": 0}, {"n": 1001}, {}, {"n": "5"}, {"n": 5, "seed": -1}, {"n": 5, "temperature": 0}],
)
def test_sample_refuses_bad_input(fake_client: FlaskClient, body: dict[str, Any]) -> None:
    student = _story(fake_client)
    version = _events(fake_client, student)["version"]
    r = fake_client.post(f"{student.url}/sample", json=body)
    assert r.status_code == 400, r.json
    assert _events(fake_client, student)["version"] == version


def test_sample_of_an_unknown_session_or_without_a_prompt(fake_client: FlaskClient) -> None:
    assert fake_client.post(f"{UNKNOWN}/sample", json={"n": 5}).status_code == 404
    student = Student(fake_client)
    assert fake_client.post(f"{student.url}/sample", json={"n": 5}).status_code == 400


def test_openapi_documents_the_lab(fake_client: FlaskClient) -> None:
    spec = fake_client.get("/api/openapi.json").json
    fork = spec["paths"]["/api/sessions/{session_id}/fork"]["post"]
    sample = spec["paths"]["/api/sessions/{session_id}/sample"]["post"]
    assert {"201", "400", "404"} <= set(fork["responses"])
    assert {"200", "400", "404"} <= set(sample["responses"])
    schemas = spec["components"]["schemas"]
    assert schemas["Sample"]["properties"]["n"]["description"]
    assert schemas["ForkedSession"]["properties"]["forked_from"]


def test_forks_per_hour_per_client_are_limited(settings: Settings) -> None:
    app = app_with(settings, sessions_per_hour=2)
    client = from_address(app.test_client(), "198.51.100.40")
    student = Student(client)
    student.prompt("The cat")
    for _ in range(2):
        assert client.post(f"{student.url}/fork").status_code == 201
    count = event_count(app)
    body = assert_429(client.post(f"{student.url}/fork"), 3600)
    assert "forked 2 sessions" in body["message"]
    assert event_count(app) == count


def test_a_teacher_reads_a_fork_like_any_session(settings: Settings) -> None:
    app = make_app(settings.with_overrides(teacher_token=TOKEN), FakeModels())  # type: ignore[arg-type]
    client = app.test_client()
    student = _story(client)
    r = client.post(f"{student.url}/fork", json={"version": 4})
    assert r.status_code == 201
    fork = r.json["session_id"]
    teacher = Teacher(client)
    listed = teacher.json("/sessions", class_code="lab-7")
    assert fork in {row["session_id"] for row in listed["sessions"]}
    detail = teacher.json(f"/sessions/{fork}")
    assert detail["timeline"][0]["type"] == "SessionForked"
    assert len(detail["state"]["token_history"]) == 2
    at = teacher.json(f"/sessions/{fork}/replay", version=1)
    assert at["event"]["type"] == "SessionForked"
    assert at["state"]["current_text"] == detail["state"]["current_text"]
    stats = teacher.json(f"/sessions/{fork}/statistics")
    assert stats["session_id"] == fork and stats["version"] == 1
    teacher.get(f"/sessions/{fork}/next-token-probs", version=1)
    for fmt in ("json", "csv"):
        teacher.get(f"/sessions/{fork}/export", format=fmt)
    teacher.get("/classes/lab-7/statistics")
    teacher.get("/classes/lab-7/export", format="csv")
