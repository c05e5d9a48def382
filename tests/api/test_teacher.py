"""The teacher API on the real bundled model: archive, timeline, replay, statistics, exports."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests import export_readers
from tests.api.conftest import Student
from tests.api.teacher_client import Lesson, Teacher, build_lesson, teacher_app
from tests.clock import Clock
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.services import Maintenance, StudentSessions, Teaching
from tokenwheel.settings import Settings
from tokenwheel.store.tables import events


@pytest.fixture
def app(settings: Settings, registry: ModelRegistry) -> Flask:
    # retention 0: a deleted session is purged by the next purge run
    return teacher_app(settings, registry, retention=0)


@pytest.fixture
def teacher(client: FlaskClient) -> Teacher:
    return Teacher(client)


@pytest.fixture
def lesson(client: FlaskClient) -> Lesson:
    return build_lesson(client)


def stored_events(app: Flask, session_id: str) -> list:  # type: ignore[type-arg]
    return app.extensions["tokenwheel.sessions"].store.load(session_id)  # type: ignore[no-any-return]


def test_replay_at_every_version_is_what_the_student_saw(lesson: Lesson, teacher: Teacher) -> None:
    sid = lesson.student.id
    assert sorted(lesson.seen) == list(range(1, 9))
    for version, seen in lesson.seen.items():
        body = teacher.json(f"/sessions/{sid}/replay", version=version)
        assert (body["version"], body["latest_version"]) == (version, 8)
        state = body["state"]
        assert {k: state[k] for k in seen} == seen, version
        assert body["event"]["version"] == version
        assert state["version"] == version and state["deleted"] is False
    teacher.get(f"/sessions/{sid}/replay", expect=400, version=9)
    teacher.get(f"/sessions/{sid}/replay", expect=400, version=0)
    teacher.get(f"/sessions/{sid}/replay", expect=400, version=-1)
    teacher.get(f"/sessions/{sid}/replay", expect=400, version="two")
    teacher.get(f"/sessions/{sid}/replay", expect=400)  # version is required


def test_the_wheel_at_a_version_is_the_one_each_token_was_chosen_from(
    lesson: Lesson, teacher: Teacher
) -> None:
    """Asked again at the version before each TokenAppended, at the settings it recorded,
    the model gives the wheel the student chose from: the token's recorded probability
    and category, or the Other wedge's recorded total, agree with it."""
    sid = lesson.student.id
    timeline = teacher.json(f"/sessions/{sid}")["timeline"]
    appended = [e for e in timeline if e["type"] == "TokenAppended"]
    assert len(appended) == 4
    for event in appended:
        p = event["payload"]
        body = teacher.json(
            f"/sessions/{sid}/next-token-probs",
            version=event["version"] - 1,
            threshold=p["threshold"],
            temperature=p["temperature"],
        )
        assert (body["version"], body["latest_version"]) == (event["version"] - 1, 8)
        assert (body["threshold"], body["temperature"]) == (p["threshold"], p["temperature"])
        before = lesson.seen[event["version"] - 1]["current_text"]
        assert body["current_text"] == before
        wedges = {t["token_id"]: t for t in body["above_threshold_tokens"]}
        other = body["other_category"]
        if p["category"] == "above_threshold":
            assert math.isclose(
                wedges[p["token_id"]]["probability"], p["probability"], abs_tol=1e-5
            )
        else:
            assert p["token_id"] not in wedges
            assert math.isclose(
                other["total_probability"], p["other_total_probability"], abs_tol=1e-5
            )
            assert other["token_count"] == p["other_token_count"]
        assert len(wedges) + other["token_count"] == body["vocabulary_size"]

    # the latest version's wheel is the one the student sees now
    now = lesson.student.probs()
    body = teacher.json(f"/sessions/{sid}/next-token-probs", version=8)
    assert [t["token_id"] for t in body["above_threshold_tokens"]] == [
        t["token_id"] for t in now["above_threshold_tokens"]
    ]
    teacher.get(f"/sessions/{sid}/next-token-probs", expect=400, version=1)  # no prompt yet
    teacher.get(f"/sessions/{sid}/next-token-probs", expect=400, version=9)
    teacher.get(f"/sessions/{sid}/next-token-probs", expect=400, version=2, temperature=0)
    teacher.get(f"/sessions/{sid}/next-token-probs", expect=400)  # version is required


def test_detail_has_the_full_timeline_with_undone_tokens_and_resets(
    lesson: Lesson, teacher: Teacher
) -> None:
    sid = lesson.student.id
    body = teacher.json(f"/sessions/{sid}")
    final = lesson.seen[8]
    assert {k: body["state"][k] for k in final} == final
    session = body["session"]
    assert (session["class_code"], session["status"], session["version"]) == ("7b", "active", 8)
    assert (session["generated_count"], session["undo_count"]) == (2, 1)
    timeline = body["timeline"]
    assert [e["type"] for e in timeline] == [
        "SessionCreated",
        "SetPrompt",
        "TokenAppended",
        "TokenAppended",
        "Undone",
        "SetPrompt",
        "TokenAppended",
        "TokenAppended",
    ]
    tokens = [e for e in timeline if e["type"] == "TokenAppended"]
    assert [(e["undone"], e["in_final_text"]) for e in tokens] == [
        (False, False),  # cleared by the new prompt
        (True, False),
        (False, True),
        (False, True),
    ]
    for entry, response in zip(tokens, lesson.appended, strict=True):
        appended = response["appended_token"]
        for key in ("token_id", "token_text", "probability", "category", "selection", "rank"):
            assert entry["payload"][key] == appended[key], key
        assert entry["occurred_at"]
    assert tokens[0]["payload"]["sampled_from_other"] is True
    assert tokens[3]["payload"]["temperature"] == 1.5
    assert tokens[3]["payload"]["threshold"] == 0.001
    assert timeline[4]["payload"]["undone_version"] == 4
    assert timeline[5]["payload"]["prompt"] == "Once upon a"


def test_statistics_by_hand_equal_the_endpoints(
    lesson: Lesson, teacher: Teacher, client: FlaskClient
) -> None:
    history = lesson.seen[8]["token_history"]  # the current text: " time" + one more
    n = len(history)
    log_p = sum(t["log_probability"] for t in history)
    by_hand = {
        "tokens_generated": n,
        "tokens_appended": 4,
        "undo_count": 1,
        "prompt_count": 2,
        "average_probability": sum(t["probability"] for t in history) / n,
        "other_count": sum(t["category"] == "other" for t in history),
        "other_sampled_count": sum(t["sampled_from_other"] for t in history),
        "log_probability": log_p,
        "perplexity": math.exp(-log_p / n),
        "top_choice_count": sum(t["rank"] == 1 for t in history),
        "prompt": "Once upon a",
        "class_code": "7b",
    }
    student = client.get(f"{lesson.student.url}/statistics")
    assert student.status_code == 200
    ours = teacher.json(f"/sessions/{lesson.student.id}/statistics")
    assert ours == student.json
    for key, value in by_hand.items():
        if isinstance(value, float):
            assert math.isclose(ours[key], value, rel_tol=1e-12), key
        else:
            assert ours[key] == value, key
    assert math.isclose(ours["top_choice_rate"], by_hand["top_choice_count"] / n)


def test_class_statistics_compare_first_tokens_with_the_model(
    client: FlaskClient, teacher: Teacher
) -> None:
    wheel = None
    for pick in (0, 0, 1, 0):
        s = Student(client, class_code="9a")
        s.prompt("The capital of France is")
        wheel = s.probs()["above_threshold_tokens"]
        s.append(token_id=wheel[pick]["token_id"])
    Student(client, class_code="9a").prompt("Something else")
    assert wheel is not None
    body = teacher.json("/classes/9a/statistics")
    assert body["session_count"] == 5 and body["tokens_generated"] == 4
    # the class's texts pooled token by token, by hand
    chosen = [wheel[pick] for pick in (0, 0, 1, 0)]
    assert math.isclose(body["average_probability"], sum(t["probability"] for t in chosen) / 4)
    log_p = math.fsum(t["log_probability"] for t in chosen)
    assert math.isclose(body["log_probability"], log_p)
    assert math.isclose(body["perplexity"], math.exp(-log_p / 4))
    assert (body["top_choice_count"], body["other_picks"], body["tokens_appended"]) == (3, 0, 4)
    (group,) = body["first_tokens"]
    assert (group["prompt"], group["session_count"], group["temperature"]) == (
        "The capital of France is",
        4,
        1.0,
    )
    first, second = group["tokens"]
    assert (first["token_id"], first["observed"]) == (wheel[0]["token_id"], 3)
    assert (second["token_id"], second["observed"]) == (wheel[1]["token_id"], 1)
    for token, shown in ((first, wheel[0]), (second, wheel[1])):
        assert token["probability"] == shown["probability"]
        assert math.isclose(token["expected"], 4 * shown["probability"])
    assert math.isclose(
        group["expected_unlisted"], 4 - first["expected"] - second["expected"], abs_tol=1e-9
    )
    teacher.get("/classes/nobody/statistics", expect=404)
    teacher.get("/classes/no.such/statistics", expect=400)


def test_exports_parse_back_into_the_same_events(
    app: Flask, lesson: Lesson, client: FlaskClient, teacher: Teacher
) -> None:
    sid = lesson.student.id
    other = build_lesson(client, class_code="8c", prompt="Hello")
    stored = stored_events(app, sid)

    r = teacher.get(f"/sessions/{sid}/export", format="csv")
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == f'attachment; filename="session-{sid[:8]}.csv"'
    text = r.get_data(as_text=True)
    assert export_readers.events_from_csv(text) == stored
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [int(row["version"]) for row in rows] == list(range(1, 9))
    assert {row["class_code"] for row in rows} == {"7b"}
    appended = [row for row in rows if row["type"] == "TokenAppended"]
    thresholds = ["0.01", "0.01", "0.01", "0.001"]  # the lesson's settings, as sent
    for row, response, threshold in zip(appended, lesson.appended, thresholds, strict=True):
        token = response["appended_token"]
        assert float(row["probability"]) == token["probability"]
        assert int(row["token_id"]) == token["token_id"]
        assert export_readers.text_from_spreadsheet(row["token_text"]) == token["token_text"]
        assert row["threshold"] == threshold and row["occurred_at"]

    r = teacher.get(f"/sessions/{sid}/export", format="json")
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Content-Disposition"] == f'attachment; filename="session-{sid[:8]}.json"'
    assert export_readers.events_from_json(r.json) == stored
    assert teacher.get(f"/sessions/{sid}/export").headers["Content-Type"] == "application/json"

    for fmt in ("csv", "json"):
        r = teacher.get("/classes/8c/export", format=fmt)
        assert r.headers["Content-Disposition"] == f'attachment; filename="class-8c.{fmt}"'
        text = r.get_data(as_text=True)
        got = (
            export_readers.events_from_csv(text)
            if fmt == "csv"
            else export_readers.events_from_json(r.json)
        )
        assert got == stored_events(app, other.student.id)
    teacher.get(f"/sessions/{sid}/export", expect=400, format="xml")
    teacher.get("/classes/nobody/export", expect=404)


def test_the_list_says_what_each_session_is_about(lesson: Lesson, teacher: Teacher) -> None:
    (row,) = teacher.json("/sessions", class_code="7b")["sessions"]
    last = lesson.seen[max(lesson.seen)]
    assert row["prompt"] == last["initial_prompt"] == "Once upon a"
    assert row["current_text"] == last["current_text"]  # the model is loaded: decoded alike


def test_list_filters_and_pages(client: FlaskClient, teacher: Teacher) -> None:
    a = [Student(client, class_code="7b").id for _ in range(3)]
    b = Student(client, class_code="8c").id
    plain = Student(client).id
    client.delete(f"/api/sessions/{a[0]}")

    def ids(**query: object) -> list[str]:
        return [s["session_id"] for s in teacher.json("/sessions", **query)["sessions"]]

    assert ids() == [plain, b, a[2], a[1], a[0]]
    assert ids(class_code="7b") == [a[2], a[1], a[0]]
    assert ids(status="deleted") == [a[0]] and ids(status="expired") == []
    assert ids(class_code="7b", status="active") == [a[2], a[1]]
    assert ids(model="smollm2-135m", page=2, page_size=2) == [a[2], a[1]]
    assert ids(model="gpt2") == []
    body = teacher.json("/sessions", page_size=2, page=3)
    assert (body["total"], len(body["sessions"]), body["page"], body["page_size"]) == (5, 1, 3, 2)
    # each row says what the session is about: no prompt yet here
    assert {(s["prompt"], s["current_text"]) for s in body["sessions"]} == {(None, "")}
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len(ids(created_after=hour_ago)) == 5 and ids(created_before=hour_ago) == []
    naive_later = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert len(ids(created_before=naive_later)) == 5  # a naive time means UTC
    for bad in (
        {"status": "gone"},
        {"class_code": "7 b"},
        {"page": 0},
        {"page_size": 500},
        {"created_after": "yesterday"},
    ):
        r = teacher.get("/sessions", expect=400, **bad)
        assert r.json["error"] and next(iter(bad)) in r.json["message"]


def test_deleted_sessions_stay_until_purged_then_vanish_everywhere(
    app: Flask, client: FlaskClient, teacher: Teacher, lesson: Lesson
) -> None:
    sid = lesson.student.id
    assert client.delete(lesson.student.url).status_code == 200
    assert client.get(f"{lesson.student.url}/statistics").status_code == 404
    body = teacher.json(f"/sessions/{sid}")
    assert body["session"]["status"] == "deleted" and body["state"]["deleted"] is True
    assert teacher.json(f"/sessions/{sid}/replay", version=9)["event"]["type"] == "SessionDeleted"
    assert app.extensions["tokenwheel.maintenance"].purge_expired()[1] == 1  # retention 0
    for path in (
        f"/sessions/{sid}",
        f"/sessions/{sid}/replay?version=1",
        f"/sessions/{sid}/statistics",
        f"/sessions/{sid}/export?format=csv",
        "/classes/7b/statistics",
        "/classes/7b/export",
    ):
        r = teacher.client.get(f"/api/teacher{path}", headers=teacher.headers)
        assert r.status_code == 404, path
        assert r.json["error"] and r.json["message"]
    assert teacher.json("/sessions")["total"] == 0


@pytest.mark.parametrize(
    "class_code", ["", " ", "7 b", "x" * 33, "a/b", "é", 7, True, ["7b"], "7b\n"]
)
def test_bad_class_codes_are_400_and_store_nothing(
    app: Flask, client: FlaskClient, class_code: object
) -> None:
    with app.extensions["tokenwheel.engine"].connect() as conn:
        count = sa.select(sa.func.count()).select_from(events)
        before = conn.execute(count).scalar_one()
        r = client.post("/api/sessions", json={"class_code": class_code})
        assert r.status_code == 400, r.json
        assert r.json["error"] and "class_code" in r.json["message"]
        assert conn.execute(count).scalar_one() == before


def test_class_code_is_optional_and_null_means_none(client: FlaskClient, teacher: Teacher) -> None:
    for body in ({}, {"class_code": None}):
        r = client.post("/api/sessions", json=body)
        assert r.status_code == 201 and "class_code" not in r.json
    assert {s["class_code"] for s in teacher.json("/sessions")["sessions"]} == {None}
    assert json.loads(teacher.get("/sessions").data)["total"] == 2


def on_clock(app: Flask, clock: Clock) -> None:
    """The app's services again, on ``clock``: create_app builds them on the wall clock."""
    store = app.extensions["tokenwheel.sessions"].store
    models, settings = app.extensions["tokenwheel.models"], app.extensions["tokenwheel.settings"]
    app.extensions["tokenwheel.sessions"] = StudentSessions(store, models, settings, clock=clock)
    app.extensions["tokenwheel.teaching"] = Teaching(store, models, settings, clock=clock)
    app.extensions["tokenwheel.maintenance"] = Maintenance(store, models, settings, clock=clock)


def test_idle_sessions_expire_for_students_but_stay_with_teachers_until_purged(
    settings: Settings, registry: ModelRegistry
) -> None:
    """Past the TTL a student's session answers 404; the teacher still finds it (status
    expired), steps through it and sees its wheel, until the retention purges it."""
    app = teacher_app(settings, registry, session_ttl=1, retention=3600)
    clock = Clock(datetime.now(UTC))
    on_clock(app, clock)
    client = app.test_client()
    teacher = Teacher(client)
    student = Student(client, class_code="9a")
    student.prompt("Once upon a")
    student.append(token_text=" time")
    clock.advance(1.2)
    for method, path in (("get", ""), ("get", "/next-token-probs"), ("post", "/undo")):
        assert getattr(client, method)(f"{student.url}{path}").status_code == 404, path
    service = app.extensions["tokenwheel.maintenance"]
    expired, purged = service.purge_expired()  # marks it expired; retention keeps it
    assert (expired, purged) == (1, 0)
    [listed] = teacher.json("/sessions", class_code="9a", status="expired")["sessions"]
    assert listed["session_id"] == student.id
    assert teacher.json(f"/sessions/{student.id}")["state"]["current_text"] == "Once upon a time"
    wheel = teacher.json(f"/sessions/{student.id}/next-token-probs", version=3)
    assert wheel["above_threshold_tokens"]
    assert teacher.json("/classes/9a/statistics")["tokens_generated"] == 1
    future = clock.now + timedelta(hours=2)
    assert service.store.purge(future) == 1
    assert teacher.get(f"/sessions/{student.id}", expect=404)
    assert teacher.json("/sessions", class_code="9a")["total"] == 0
