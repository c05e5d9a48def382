"""The live view, ``GET /api/teacher/classes/{code}/live``, on SQLite and PostgreSQL: a
snapshot, then each student's events with their cards, resuming with Last-Event-ID, the
class's events only, bounded streams, and events written by another process.

On the fake model (the feed never needs one). The one deadline here (an event written by
another process arrives within 1 s) is the issue's functional requirement; the delays
themselves are measured by ``python -m tokenwheel.bench.live`` (docs/performance.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Student
from tests.api.live_stream import AUTH, open_live
from tests.api.teacher_client import teacher_app
from tests.fakes import FakeModels
from tokenwheel.bench.live import Writer
from tokenwheel.settings import Settings
from tokenwheel.store.wakeups import PgNotifyWakeups

CARD_FIELDS = {
    "session_id",
    "nickname",
    "model_name",
    "version",
    "updated_at",
    "prompt",
    "text",
    "token_count",
    "last_token",
    "deleted",
}


def build(settings: Settings, database_url: str, **overrides: object) -> Flask:
    app = teacher_app(
        settings.with_overrides(database_url=database_url, **overrides),
        FakeModels(),  # type: ignore[arg-type]
    )
    wakeups = app.extensions["tokenwheel.live"].wakeups
    if isinstance(wakeups, PgNotifyWakeups):  # listen before the test writes anything
        wakeups.generation("")
        assert wakeups.listening.wait(timeout=30)
    return app


@pytest.fixture
def live_app(settings: Settings, database_url: str) -> Iterator[Flask]:
    app = build(settings, database_url)
    yield app
    app.extensions["tokenwheel.live"].wakeups.close()
    app.extensions["tokenwheel.engine"].dispose()


@pytest.fixture
def client(live_app: Flask) -> FlaskClient:
    return live_app.test_client()


def test_a_snapshot_then_each_event_with_the_students_card(client: FlaskClient) -> None:
    before = Student(client, class_code="7b")
    before.prompt("The cat")
    Student(client, class_code="8a").prompt("Elsewhere")

    stream = open_live(client, "7b")
    assert stream.next() == {"retry": "2000"}
    snapshot = stream.next()
    assert snapshot["event"] == "snapshot" and snapshot["data"]["more"] is False
    [card] = snapshot["data"]["students"]
    assert set(card) == CARD_FIELDS
    assert (card["session_id"], card["prompt"], card["text"]) == (before.id, "The cat", "The cat")
    assert (card["version"], card["token_count"], card["last_token"], card["nickname"]) == (
        2,
        0,
        None,
        None,
    )
    last_id = snapshot["id"]

    appended = before.append(token_text=" sat")
    event = stream.next()
    assert event["event"] == "append" and event["id"] > last_id
    data = event["data"]
    assert (data["session_id"], data["version"], data["token_count"]) == (before.id, 3, 1)
    assert data["text"] == appended["current_text"] == "The cat sat"
    token = data["last_token"]
    assert (token["token_text"], token["display_text"]) == (" sat", "·sat")
    assert token["probability"] == appended["appended_token"]["probability"]
    assert token["rank"] == appended["appended_token"]["rank"]

    before.undo()
    undo = stream.next()
    assert undo["event"] == "undo" and undo["id"] > event["id"]
    assert undo["data"]["undone"]["token_text"] == " sat"
    assert (undo["data"]["text"], undo["data"]["last_token"]) == ("The cat", None)

    newcomer = Student(client, class_code="7b")
    join = stream.next()
    assert join["event"] == "join" and join["data"]["session_id"] == newcomer.id
    assert join["data"]["prompt"] is None and join["data"]["text"] == ""
    newcomer.prompt("Once upon a")
    prompt = stream.next()
    assert prompt["event"] == "prompt" and prompt["data"]["prompt"] == "Once upon a"
    assert client.delete(newcomer.url).status_code == 200
    delete = stream.next()
    assert delete["event"] == "delete" and delete["data"]["deleted"] is True
    ids = [snapshot["id"], event["id"], undo["id"], join["id"], prompt["id"], delete["id"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    stream.close()


def test_last_event_id_resumes_right_after_it_with_no_snapshot(client: FlaskClient) -> None:
    student = Student(client, class_code="7b")
    student.prompt("The cat")
    stream = open_live(client, "7b")
    stream.next(), stream.next()  # retry, snapshot
    student.append(token_text=" sat")
    first = stream.next()
    student.append(token_text=" on")
    second = stream.next()
    stream.close()
    student.undo()

    resumed = open_live(client, "7b", last_event_id=first["id"])
    assert resumed.next() == {"retry": "2000"}
    again = resumed.next()
    assert (again["event"], again["id"], again["data"]) == ("append", second["id"], second["data"])
    assert resumed.next()["event"] == "undo"  # written while no stream was open
    resumed.close()

    # from the start of the log: the class's whole history, in order
    everything = open_live(client, "7b", last_event_id=0)
    everything.next()
    kinds = [everything.next()["event"] for _ in range(5)]
    assert kinds == ["join", "prompt", "append", "append", "undo"]
    everything.close()


def test_a_stream_ends_by_itself_and_says_how_to_go_on(
    settings: Settings, database_url: str
) -> None:
    app = build(settings, database_url, live_stream_duration=1.0)
    client = app.test_client()
    stream = open_live(client, "7b")
    assert stream.next()["retry"] == "2000"
    assert stream.next()["event"] == "snapshot"
    rest = stream.rest()  # returns: the stream ended
    assert rest[-1].startswith(": this stream ends here")
    app.extensions["tokenwheel.live"].wakeups.close()
    app.extensions["tokenwheel.engine"].dispose()


def test_streams_are_capped_per_process(settings: Settings, database_url: str) -> None:
    app = build(settings, database_url, live_max_streams=1)
    client = app.test_client()
    first = open_live(client, "7b")
    full = client.get("/api/teacher/classes/8a/live", headers=AUTH)
    assert full.status_code == 503 and full.json["error"] == "Server busy"
    assert "TOKENWHEEL_LIVE_MAX_STREAMS" in full.json["message"]
    assert int(full.headers["Retry-After"]) > 0
    first.close()  # frees its place, even though it was never read
    second = open_live(client, "8a")
    assert second.next()["retry"] == "2000"
    second.close()
    app.extensions["tokenwheel.live"].wakeups.close()
    app.extensions["tokenwheel.engine"].dispose()


@pytest.mark.parametrize(
    ("code", "last_event_id"),
    [
        ("bad code!", None),
        ("x" * 33, None),
        ("7b", "abc"),
        ("7b", ""),
        ("7b", " 12"),
        ("7b", "-1"),
        ("7b", "1.5"),
        ("7b", "9" * 20),
        ("7b", "١٢"),  # digits, but not ASCII ones
    ],
)
def test_bad_class_codes_and_event_ids_are_400(
    client: FlaskClient, code: str, last_event_id: str | None
) -> None:
    headers = dict(AUTH)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    r = client.get(f"/api/teacher/classes/{code}/live", headers=headers)
    assert r.status_code == 400, r.data
    assert r.json["error"] and r.json["message"]


def test_the_token_is_checked_first(client: FlaskClient) -> None:
    r = client.get("/api/teacher/classes/7b/live")
    assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
    r = client.get("/api/teacher/classes/7b/live", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_an_event_written_by_another_process_arrives_within_a_second(
    client: FlaskClient, database_url: str
) -> None:
    """The feed reads the database, not this process's memory: a separate process with
    its own engine writes, and the open stream sends each event within 1 s."""
    stream = open_live(client, "7b")
    stream.next(), stream.next()  # retry, snapshot
    writer = Writer(database_url, "7b")
    try:
        assert [stream.next()["event"] for _ in range(2)] == ["join", "prompt"]
        for _ in range(6):
            written = writer.write()
            event = stream.next()
            delay = time.time() - written["committed"]
            assert event["id"] == written["id"]
            assert event["data"]["session_id"] == writer.session_id
            assert delay < 1.0, f"{event['event']} took {delay:.3f} s"
    finally:
        writer.close()
        stream.close()
