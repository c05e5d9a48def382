"""Versions (ETag, If-Match, expected_version) and Idempotency-Key over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Student
from tests.api.test_errors import assert_error, event_count
from tests.threads import at_once
from tokenwheel.store.tables import events


@pytest.fixture
def student(fake_client: FlaskClient) -> Student:
    s = Student(fake_client)
    s.prompt("The cat")
    return s


def stored_versions(app: Flask, sid: str) -> list[int]:
    with app.extensions["tokenwheel.engine"].connect() as conn:
        rows = conn.execute(
            sa.select(events.c.version).where(events.c.session_id == sid).order_by("version")
        )
        return list(rows.scalars())


def test_every_session_response_carries_the_version_and_its_etag(
    fake_client: FlaskClient,
) -> None:
    r = fake_client.post("/api/sessions", json={})
    sid = r.json["session_id"]
    url = f"/api/sessions/{sid}"
    seen = [(r.json["version"], r.headers["ETag"])]
    for method, path, body in [
        ("get", url, None),
        ("post", f"{url}/set-prompt", {"prompt": "The cat"}),
        ("get", f"{url}/next-token-probs", None),
        ("post", f"{url}/append-token", {"token_id": 4}),
        ("get", f"{url}/statistics", None),
        ("post", f"{url}/undo", None),
        ("delete", url, None),
    ]:
        r = getattr(fake_client, method)(path, json=body)
        assert r.status_code == 200, (path, r.json)
        seen.append((r.json["version"], r.headers["ETag"]))
    assert seen == [(v, f'W/"{v}"') for v in (1, 1, 2, 2, 3, 3, 4, 5)]


@pytest.mark.parametrize("tag", ['W/"2"', '"2"', "2", ' W/"2" '])
def test_if_match_accepts_weak_strong_and_bare_versions(student: Student, tag: str) -> None:
    r = student.client.post(
        f"{student.url}/append-token", json={"token_id": 4}, headers={"If-Match": tag}
    )
    assert r.status_code == 200 and r.json["version"] == 3


def test_a_stale_version_is_409_with_the_current_version(app_client_pair: Any) -> None:
    app, student = app_client_pair
    before = event_count(app)
    for kwargs in (
        {"json": {"token_id": 4}, "headers": {"If-Match": 'W/"1"'}},
        {"json": {"token_id": 4, "expected_version": 1}},
    ):
        r = student.client.post(f"{student.url}/append-token", **kwargs)
        body = assert_error(r, 409)
        assert body["error"] == "Version conflict" and body["version"] == 2
        assert r.headers["ETag"] == 'W/"2"'
    for path, kwargs in (
        ("set-prompt", {"json": {"prompt": "The dog", "expected_version": 5}}),
        ("undo", {"json": {"expected_version": 1}}),
        ("undo", {"headers": {"If-Match": '"7"'}}),
    ):
        assert_error(student.client.post(f"{student.url}/{path}", **kwargs), 409)
    assert_error(student.client.delete(student.url, headers={"If-Match": 'W/"1"'}), 409)
    assert event_count(app) == before
    # the current version goes through; * means any version
    r = student.client.post(
        f"{student.url}/append-token", json={"token_id": 4, "expected_version": 2}
    )
    assert r.status_code == 200
    assert (
        student.client.post(f"{student.url}/undo", json={"expected_version": 3}).status_code == 200
    )
    assert student.client.delete(student.url, headers={"If-Match": "*"}).status_code == 200


@pytest.fixture
def app_client_pair(fake_app: Flask) -> tuple[Flask, Student]:
    s = Student(fake_app.test_client())
    s.prompt("The cat")
    return fake_app, s


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"If-Match": "abc"}, {"token_id": 4}),
        ({"If-Match": 'W/"1", W/"2"'}, {"token_id": 4}),
        ({"If-Match": '"-1"'}, {"token_id": 4}),
        ({"If-Match": '"2"'}, {"token_id": 4, "expected_version": 3}),  # they disagree
        ({}, {"token_id": 4, "expected_version": "2"}),
        ({}, {"token_id": 4, "expected_version": 0}),
        ({"Idempotency-Key": ""}, {"token_id": 4}),
        ({"Idempotency-Key": "a b"}, {"token_id": 4}),
        ({"Idempotency-Key": "k" * 256}, {"token_id": 4}),
    ],
)
def test_malformed_versions_and_keys_are_400(
    app_client_pair: Any, headers: dict[str, str], body: dict[str, Any]
) -> None:
    app, student = app_client_pair
    before = event_count(app)
    r = student.client.post(f"{student.url}/append-token", json=body, headers=headers)
    assert_error(r, 400)
    assert event_count(app) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("append-token", {"category": "other"}),
        ("set-prompt", {"prompt": "The dog"}),
        ("undo", None),
        ("spin", {"threshold": 0.2}),
    ],
)
def test_a_repeated_idempotency_key_returns_the_first_response_and_stores_one_event(
    app_client_pair: Any, path: str, body: Any
) -> None:
    app, student = app_client_pair
    student.append(token_id=4)  # something to undo
    headers = {"Idempotency-Key": "3f1e6f1c-8d0e-4a51-9a59-5b1c1c7a9d01"}
    first = student.client.post(f"{student.url}/{path}", json=body, headers=headers)
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    count = event_count(app)
    for _ in range(3):
        again = student.client.post(f"{student.url}/{path}", json=body, headers=headers)
        assert again.status_code == 200
        assert again.data == first.data  # byte for byte, the sampled token included
        assert again.headers["ETag"] == first.headers["ETag"]
        assert again.headers["Idempotent-Replayed"] == "true"
    assert event_count(app) == count
    assert stored_versions(app, student.id) == list(range(1, first.json["version"] + 1))


def test_the_same_key_with_another_request_is_422(app_client_pair: Any) -> None:
    app, student = app_client_pair
    headers = {"Idempotency-Key": "key-1"}
    r = student.client.post(f"{student.url}/append-token", json={"token_id": 4}, headers=headers)
    assert r.status_code == 200
    count = event_count(app)
    r = student.client.post(f"{student.url}/append-token", json={"token_id": 5}, headers=headers)
    assert assert_error(r, 422)["error"] == "Idempotency key reused"
    r = student.client.post(f"{student.url}/undo", headers=headers)
    assert_error(r, 422)
    assert event_count(app) == count
    # keys belong to one session: another session may use the same key
    other = Student(student.client)
    other.prompt("The cat")
    r = other.client.post(f"{other.url}/append-token", json={"token_id": 4}, headers=headers)
    assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers


def test_a_retry_after_a_lost_response_is_not_a_conflict(app_client_pair: Any) -> None:
    """The client sent If-Match and a key, the answer was lost, it retries the same
    request: it gets the first answer, not a 409 for its now-stale version."""
    _, student = app_client_pair
    headers = {"Idempotency-Key": "retry-1", "If-Match": 'W/"2"'}
    first = student.client.post(
        f"{student.url}/append-token", json={"token_id": 4}, headers=headers
    )
    again = student.client.post(
        f"{student.url}/append-token", json={"token_id": 4}, headers=headers
    )
    assert first.status_code == again.status_code == 200 and again.data == first.data


def test_creating_a_session_with_a_key_twice_makes_one_session(fake_app: Flask) -> None:
    """A double click on Start (or a retry after a lost answer) must not make two sessions
    or use up two of the address's hourly allowance."""
    client = fake_app.test_client()
    key = {"Idempotency-Key": "create-7d3f"}
    body = {"class_code": "7b", "seed": 5}
    first = client.post("/api/sessions", json=body, headers=key)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    count = event_count(fake_app)
    again = client.post("/api/sessions", json=body, headers=key)
    assert again.status_code == 201 and again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true" and again.headers["ETag"] == 'W/"1"'
    assert event_count(fake_app) == count
    # the same key for another request: 422, nothing stored
    assert_error(client.post("/api/sessions", json={"class_code": "8c"}, headers=key), 422)
    assert event_count(fake_app) == count
    # another client's key never answers with this client's session
    elsewhere = client.post(
        "/api/sessions", json=body, headers=key, environ_base={"REMOTE_ADDR": "10.9.8.7"}
    )
    assert elsewhere.status_code == 201 and "Idempotent-Replayed" not in elsewhere.headers
    assert elsewhere.json["session_id"] != first.json["session_id"]


def test_racing_creations_with_one_key_make_one_session(fake_app: Flask) -> None:
    key = {"Idempotency-Key": "double-click"}
    answers: list[Any] = []
    clients = [fake_app.test_client() for _ in range(8)]

    def click(n: int) -> None:
        r = clients[n].post("/api/sessions", json={}, headers=key)
        answers.append((r.status_code, r.json["session_id"]))

    at_once(8, click)
    assert len(answers) == 8 and {status for status, _ in answers} == {201}
    assert len({sid for _, sid in answers}) == 1
    with fake_app.extensions["tokenwheel.engine"].connect() as conn:
        created = conn.execute(
            sa.select(sa.func.count()).select_from(events).where(events.c.type == "SessionCreated")
        ).scalar_one()
    assert created == 1
