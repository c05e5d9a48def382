"""Classes a teacher opens, students joining with nicknames, guess-first rounds and their
reveal, through the HTTP API on SQLite and PostgreSQL (the fake model: the numbers are
checked against the model's own answers, never hard-coded)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import make_app
from tests.api.teacher_client import TOKEN
from tests.api.test_errors import assert_error, event_count
from tests.conftest import MODEL_CACHE
from tests.fakes import VOCAB, FakeModels
from tokenwheel.domain import rules
from tokenwheel.settings import Settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROMPT = "The cat sat on the"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Flask]:
    settings = Settings(
        instance_path=tmp_path,
        database_url=database_url,
        scheduler_enabled=False,
        offline=True,
        model_cache_dir=MODEL_CACHE,
        teacher_token=TOKEN,
        retention=0,
    )
    app = make_app(settings, FakeModels())  # type: ignore[arg-type]
    yield app
    app.extensions["tokenwheel.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def teacher(client: FlaskClient, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
    r = client.open(f"/api/teacher/classes{path}", method=method, headers=AUTH, **kw)
    assert r.status_code == expect, (r.status_code, r.data[:400])
    return r.json


def open_class(client: FlaskClient, name: str = "7b Tuesday") -> str:
    body = teacher(client, "POST", "", 201, json={"name": name})
    return str(body["class_code"])


def join(client: FlaskClient, code: str, nickname: str, expect: int = 201) -> Any:
    r = client.post("/api/sessions", json={"class_code": code, "nickname": nickname})
    assert r.status_code == expect, (r.status_code, r.data[:400])
    return r.json


def start_round(client: FlaskClient, code: str, **body: Any) -> str:
    body = {"prompt": PROMPT, **body}
    return str(teacher(client, "POST", f"/{code}/rounds", 201, json=body)["round_id"])


def guess(client: FlaskClient, sid: str, rid: str, text: str, expect: int = 201) -> Any:
    r = client.post(f"/api/sessions/{sid}/guess", json={"round_id": rid, "text": text})
    assert r.status_code == expect, (r.status_code, r.data[:400])
    return r.json


# ---------------------------------------------------------------- classes


def test_open_list_close_and_reopen_a_class(client: FlaskClient) -> None:
    body = teacher(client, "POST", "", 201, json={"name": "  7b   Tuesday "})
    code = body["class_code"]
    assert body["name"] == "7b Tuesday" and body["status"] == "open"
    assert len(code) == rules.CLASS_CODE_LENGTH
    assert set(code) <= set(rules.CLASS_CODE_ALPHABET)
    assert not set(code) & set("0O1lI")
    other = open_class(client, "8c")
    assert other != code

    listed = teacher(client, "GET", "")
    assert listed["total"] == 2 and {c["class_code"] for c in listed["classes"]} == {code, other}
    closed = teacher(client, "POST", f"/{code}/close")
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    again = teacher(client, "POST", f"/{code}/close")  # a retried close changes nothing
    assert again["version"] == closed["version"]
    assert [c["class_code"] for c in teacher(client, "GET", "?status=closed")["classes"]] == [code]
    assert [c["class_code"] for c in teacher(client, "GET", "?status=open")["classes"]] == [other]
    reopened = teacher(client, "POST", f"/{code.lower()}/reopen")  # any case
    assert reopened["status"] == "open" and reopened["closed_at"] is None
    assert reopened["version"] == closed["version"] + 1


def test_bad_class_requests_are_clear_4xx_that_store_nothing(
    app: Flask, client: FlaskClient
) -> None:
    before = event_count(app)
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": "x" * 81}, {"name": 7}):
        assert_error(client.post("/api/teacher/classes", json=body, headers=AUTH), 400)
    assert_error(client.post("/api/teacher/classes", json={"name": "a\x00b"}, headers=AUTH), 400)
    assert event_count(app) == before
    assert_error(client.post("/api/teacher/classes", json={"name": "x"}), 401)
    for path in ("/NOPE99", "/ABCDEF", "/x"):
        assert_error(client.get(f"/api/teacher/classes{path}", headers=AUTH), 404)
        assert_error(client.post(f"/api/teacher/classes{path}/close", headers=AUTH), 404)
    for query in ("page=0", "page_size=201", "page=99999999999999999999", "status=gone"):
        assert_error(client.get(f"/api/teacher/classes?{query}", headers=AUTH), 400)


# ---------------------------------------------------------------- joining


def test_students_join_with_unique_nicknames_only_teachers_see(client: FlaskClient) -> None:
    code = open_class(client)
    ana = join(client, code.lower(), "  Ana  ")
    assert ana["class_code"] == code and ana["nickname"] == "Ana"
    for taken in ("ana", "ANA", " Ana", "ａｎａ"):
        assert_error(
            client.post("/api/sessions", json={"class_code": code, "nickname": taken}), 409
        )
    ben = join(client, code, "Ben")
    detail = teacher(client, "GET", f"/{code}")
    assert [(m["nickname"], m["session_id"]) for m in detail["students"]] == [
        ("Ana", ana["session_id"]),
        ("Ben", ben["session_id"]),
    ]
    # a student's own session shows no nickname, not even its own
    state = client.get(f"/api/sessions/{ben['session_id']}").get_data(as_text=True)
    assert "Ben" not in state and "Ana" not in state
    # the nickname is in the session's first event, for the teacher's timeline
    timeline = client.get(f"/api/teacher/sessions/{ana['session_id']}", headers=AUTH).json
    assert timeline["timeline"][0]["payload"]["nickname"] == "Ana"


def test_joining_a_closed_or_unknown_class_is_refused(app: Flask, client: FlaskClient) -> None:
    code = open_class(client)
    teacher(client, "POST", f"/{code}/close")
    before = event_count(app)
    body = assert_error(
        client.post("/api/sessions", json={"class_code": code, "nickname": "A"}), 409
    )
    assert body["error"] == "Class closed"
    assert_error(client.post("/api/sessions", json={"class_code": code}), 409)
    unknown = "ABCDEF" if code != "ABCDEF" else "ABCDEG"
    body = assert_error(
        client.post("/api/sessions", json={"class_code": unknown, "nickname": "A"}), 404
    )
    assert body["error"] == "Class not found"
    assert_error(client.post("/api/sessions", json={"class_code": "7b", "nickname": "A"}), 404)
    assert_error(client.post("/api/sessions", json={"nickname": "A"}), 400)
    for nickname in ("", "   ", "x" * 25, "a\x07b", "a\u200bb", 5):
        r = client.post("/api/sessions", json={"class_code": code, "nickname": nickname})
        assert_error(r, 400)
    assert event_count(app) == before
    teacher(client, "POST", f"/{code}/reopen")
    # an opened class's code needs a nickname
    body = assert_error(client.post("/api/sessions", json={"class_code": code}), 400)
    assert "nickname" in body["message"]


def test_old_free_text_codes_keep_working(client: FlaskClient) -> None:
    r = client.post("/api/sessions", json={"class_code": "7b"})
    assert r.status_code == 201 and r.json["class_code"] == "7b" and "nickname" not in r.json
    sid = r.json["session_id"]
    assert client.get(f"/api/sessions/{sid}").status_code == 200
    listed = client.get("/api/teacher/sessions?class_code=7b", headers=AUTH).json
    assert [s["session_id"] for s in listed["sessions"]] == [sid]
    # such a session is in no opened class: it has no round (400: the session exists)
    body = assert_error(client.get(f"/api/sessions/{sid}/round"), 400)
    assert body["error"] == "Not in a class"


def test_racing_joins_cannot_take_one_nickname(app: Flask) -> None:
    code = open_class(app.test_client())
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        barrier.wait()
        r = app.test_client().post("/api/sessions", json={"class_code": code, "nickname": "Zoe"})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] + [409] * 5
    members = teacher(app.test_client(), "GET", f"/{code}")["students"]
    assert [m["nickname"] for m in members] == ["Zoe"]


# ---------------------------------------------------------------- rounds and guesses


def expected_score(app: Flask, prompt_ids: list[int], ids: list[int], temperature: float) -> Any:
    models = app.extensions["tokenwheel.models"]
    steps = [
        models.score("fake", prompt_ids + ids[:i], t, temperature, rules.DEFAULT_THRESHOLD)
        for i, t in enumerate(ids)
    ]
    return steps[0], math.prod(s.probability for s in steps)


def test_a_round_guess_and_reveal(app: Flask, client: FlaskClient) -> None:
    code = open_class(client)
    students = {name: join(client, code, name)["session_id"] for name in ("Ana", "Ben", "Cy", "Di")}
    watcher = client.post("/api/sessions", json={"class_code": "7b"}).json["session_id"]

    before_any = client.get(f"/api/sessions/{students['Ana']}/round").json
    assert before_any == {"session_id": students["Ana"], "class_code": code, "round": None}

    rid = start_round(client, code, temperature=1.5)
    seen = client.get(f"/api/sessions/{students['Ana']}/round").json["round"]
    assert seen["prompt"] == PROMPT and seen["status"] == "open" and seen["round_id"] == rid
    assert seen["your_guess"] is None and seen["revealed"] is None

    # " mat" is one token; "mats" is " mat" + "s": two
    mat = VOCAB.index(" mat")
    first = guess(client, students["Ana"], rid, "mat")
    assert first["token_ids"] == [mat] and first["single_token"] is True
    prompt_ids = app.extensions["tokenwheel.models"].encode_prompt("fake", PROMPT)
    scored, whole = expected_score(app, prompt_ids, [mat], 1.5)
    assert math.isclose(first["first_token_probability"], scored.probability)
    assert first["first_token_rank"] == scored.rank
    assert math.isclose(first["text_probability"], whole)
    guess(client, students["Ben"], rid, " mat")
    two = guess(client, students["Cy"], rid, "mats")
    assert two["token_ids"] == [mat, VOCAB.index("s")] and two["single_token"] is False
    scored, whole = expected_score(app, prompt_ids, two["token_ids"], 1.5)
    assert math.isclose(two["first_token_probability"], scored.probability)
    assert math.isclose(two["text_probability"], whole)
    assert two["text_probability"] < two["first_token_probability"]

    # one guess per student and round; the first stays
    body = assert_error(
        client.post(
            f"/api/sessions/{students['Ana']}/guess", json={"round_id": rid, "text": "hat"}
        ),
        409,
    )
    assert body["error"] == "Already guessed"
    mine = client.get(f"/api/sessions/{students['Ana']}/round").json["round"]["your_guess"]
    assert mine["text"] == "mat"
    # a session that did not join with a nickname only watches
    assert_error(
        client.post(f"/api/sessions/{watcher}/guess", json={"round_id": rid, "text": "mat"}), 400
    )

    detail = teacher(client, "GET", f"/{code}/rounds/{rid}")
    assert [(g["nickname"], g["text"]) for g in detail["guesses"]] == [
        ("Ana", "mat"),
        ("Ben", "mat"),
        ("Cy", "mats"),
    ]
    assert detail["guess_count"] == 3 and detail["status"] == "open"

    # the projector reads the reveal with GET: 409 before it
    count = event_count(app)
    not_yet = teacher(client, "GET", f"/{code}/rounds/{rid}/reveal", 409)
    assert not_yet["error"] == "Round not revealed" and event_count(app) == count
    revealed = teacher(client, "POST", f"/{code}/rounds/{rid}/reveal")
    assert revealed["status"] == "revealed" and revealed["revealed_at"] is not None
    count = event_count(app)
    assert teacher(client, "GET", f"/{code}/rounds/{rid}/reveal") == revealed
    assert event_count(app) == count
    wheel = revealed["wheel"]
    counts = {t["token_id"]: t["guess_count"] for t in wheel["above_threshold_tokens"]}
    assert counts.get(mat, 0) == (2 if mat in counts else 0)
    assert sum(counts.values()) + wheel["other_category"]["guess_count"] == 2
    unlisted = revealed["unlisted_guesses"]
    multi = [g for g in unlisted if not g["single_token"]]
    assert [(g["text"], g["count"], g["token_ids"]) for g in multi] == [
        (" mats", 1, [mat, VOCAB.index("s")])
    ]
    assert "Ana" not in str(revealed) and "Cy" not in str(revealed)
    # the wheel is the round's prompt at its temperature
    expected = app.extensions["tokenwheel.models"].distribution(
        "fake", prompt_ids, 1.5, rules.DEFAULT_THRESHOLD, rules.DEFAULT_OTHER_TOP_K
    )
    assert [t["token_id"] for t in wheel["above_threshold_tokens"]] == [
        t.token_id for t in expected.above_threshold_tokens
    ]
    assert wheel["temperature"] == 1.5

    # revealed: no more guesses; a second reveal answers the same and stores nothing
    body = assert_error(
        client.post(f"/api/sessions/{students['Di']}/guess", json={"round_id": rid, "text": "hat"}),
        409,
    )
    assert body["error"] == "Round not open"
    count = event_count(app)
    assert teacher(client, "POST", f"/{code}/rounds/{rid}/reveal") == revealed
    assert event_count(app) == count

    # every student's page shows the wheel with the counts, never a nickname
    page = client.get(f"/api/sessions/{students['Di']}/round")
    assert page.status_code == 200
    assert page.json["round"]["revealed"]["wheel"] == wheel
    assert page.json["round"]["your_guess"] is None
    text = page.get_data(as_text=True)
    assert all(name not in text for name in ("Ana", "Ben", "Cy", "Di"))


def test_round_rules(app: Flask, client: FlaskClient) -> None:
    code = open_class(client)
    sid = join(client, code, "Ana")["session_id"]
    rid = start_round(client, code)
    body = assert_error(
        client.post(
            f"/api/teacher/classes/{code}/rounds", json={"prompt": "The dog"}, headers=AUTH
        ),
        409,
    )
    assert "reveal" in body["message"]
    before = event_count(app)
    bad_rounds: list[dict[str, Any]] = [
        {},
        {"prompt": ""},
        {"prompt": "  "},
        {"prompt": "x", "temperature": 0},
        {"prompt": "x", "temperature": "1"},
        {"prompt": "x", "model_name": "nope"},
    ]
    for bad in bad_rounds:
        r = client.post(f"/api/teacher/classes/{code}/rounds", json=bad, headers=AUTH)
        assert_error(r, 400)
    bad_guesses: list[dict[str, Any]] = [
        {},
        {"round_id": rid},
        {"round_id": rid, "text": ""},
        {"round_id": rid, "text": " "},
        {"round_id": rid, "text": "x" * 41},
        {"round_id": rid, "text": 3},
        {"round_id": rid, "text": "zzz"},  # no token of the fake model's vocabulary
    ]
    for bad in bad_guesses:
        assert_error(client.post(f"/api/sessions/{sid}/guess", json=bad), 400)
    assert_error(
        client.post(f"/api/sessions/{sid}/guess", json={"round_id": "nope", "text": "mat"}), 404
    )
    other = open_class(client, "8c")
    other_round = start_round(client, other)
    assert_error(
        client.post(f"/api/sessions/{sid}/guess", json={"round_id": other_round, "text": "mat"}),
        404,
    )
    assert_error(client.get(f"/api/teacher/classes/{code}/rounds/{other_round}", headers=AUTH), 404)
    assert_error(
        client.post(f"/api/teacher/classes/{code}/rounds/{other_round}/reveal", headers=AUTH), 404
    )
    assert event_count(app) == before + 2  # the other class opened, its round started
    teacher(client, "POST", f"/{code}/close")
    assert_error(
        client.post(
            f"/api/teacher/classes/{code}/rounds", json={"prompt": "The dog"}, headers=AUTH
        ),
        409,
    )
    # the open round still takes guesses and can be revealed
    guess(client, sid, rid, "mat")
    teacher(client, "POST", f"/{code}/rounds/{rid}/reveal")
    rounds = teacher(client, "GET", f"/{code}/rounds")["rounds"]
    assert [(r["round_id"], r["status"], r["guess_count"]) for r in rounds] == [
        (rid, "revealed", 1)
    ]


def test_racing_guesses_and_a_reveal_never_lose_or_duplicate(app: Flask) -> None:
    client = app.test_client()
    code = open_class(client)
    sid = join(client, code, "Ana")["session_id"]
    rid = start_round(client, code)
    statuses: list[int] = []
    barrier = threading.Barrier(5)

    def run() -> None:
        barrier.wait()
        r = app.test_client().post(
            f"/api/sessions/{sid}/guess", json={"round_id": rid, "text": "mat"}
        )
        statuses.append(r.status_code)

    threads = [threading.Thread(target=run) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 409, 409, 409, 409]
    with app.extensions["tokenwheel.engine"].connect() as conn:
        types = (
            conn.execute(
                sa.text("SELECT type FROM events WHERE session_id = :s ORDER BY version"),
                {"s": sid},
            )
            .scalars()
            .all()
        )
    assert types == ["SessionCreated", "GuessMade"]


def test_views_exports_and_purge_cover_classes(app: Flask, client: FlaskClient) -> None:
    code = open_class(client)
    ana = join(client, code, "Ana")["session_id"]
    rid = start_round(client, code)
    guess(client, ana, rid, "mats")
    teacher(client, "POST", f"/{code}/rounds/{rid}/reveal")
    with app.extensions["tokenwheel.engine"].connect() as conn:
        (round_row,) = conn.execute(sa.text("SELECT * FROM class_rounds")).mappings().all()
        (guess_row,) = conn.execute(sa.text("SELECT * FROM round_guesses")).mappings().all()
    assert round_row["class_code"] == code and round_row["round_id"] == rid
    assert round_row["prompt"] == PROMPT and round_row["guess_count"] == 1
    assert round_row["revealed_at"] is not None
    assert guess_row["nickname"] == "Ana" and guess_row["class_code"] == code
    assert guess_row["text"] == "mats" and guess_row["token_count"] == 2
    assert guess_row["first_token_id"] == VOCAB.index(" mat") and guess_row["single_token"] == 0

    exported = client.get(f"/api/teacher/classes/{code}/export", headers=AUTH).json
    types = [e["type"] for e in exported]
    assert types == ["ClassOpened", "SessionCreated", "RoundStarted", "GuessMade", "RoundRevealed"]
    assert exported[1]["payload"]["nickname"] == "Ana"
    assert exported[3]["payload"]["text"] == "mats"
    assert {e["class_code"] for e in exported} == {code}
    csv_text = client.get(f"/api/teacher/classes/{code}/export?format=csv", headers=AUTH).get_data(
        as_text=True
    )
    assert "nickname" in csv_text.splitlines()[0] and "Ana" in csv_text

    # the student deletes the session: with retention 0 the purge takes its nickname
    # and guess with it; a closed class goes with the next purge too
    assert client.delete(f"/api/sessions/{ana}").status_code == 200
    maintenance = app.extensions["tokenwheel.maintenance"]
    maintenance.purge_expired()
    detail = teacher(client, "GET", f"/{code}")
    assert detail["students"] == [] and detail["rounds"][0]["guess_count"] == 0
    teacher(client, "POST", f"/{code}/close")
    maintenance.purge_expired()
    assert_error(client.get(f"/api/teacher/classes/{code}", headers=AUTH), 404)
    with app.extensions["tokenwheel.engine"].connect() as conn:
        for table in ("class_index", "round_index", "guess_index", "nickname_claims"):
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one() == 0
        assert conn.execute(sa.text("SELECT COUNT(*) FROM events")).scalar_one() == 0


def test_nicknames_never_reach_a_log_line(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    nickname = "Zyxwvut"
    with caplog.at_level("DEBUG"):
        code = open_class(client)
        sid = join(client, code, nickname)["session_id"]
        assert_error(
            client.post("/api/sessions", json={"class_code": code, "nickname": nickname}), 409
        )
        rid = start_round(client, code)
        guess(client, sid, rid, "mat")
        teacher(client, "GET", f"/{code}/rounds/{rid}")
        teacher(client, "POST", f"/{code}/rounds/{rid}/reveal")
    assert any("joined a class" in r.getMessage() for r in caplog.records)
    assert nickname not in caplog.text
    assert nickname.lower() not in caplog.text.lower()


def test_a_database_error_never_shows_a_nickname(app: Flask) -> None:
    """A 500 logs the error's text; the engine keeps statement parameters out of it."""
    engine = app.extensions["tokenwheel.engine"]
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table WHERE x = :n"), {"n": "Zyxwvut"})
    assert "Zyxwvut" not in str(caught.value)


def test_a_class_nobody_joined_yet_has_empty_statistics(client: FlaskClient) -> None:
    """An opened class exists before its first student (schemathesis found the 404)."""
    code = open_class(client)
    stats = teacher(client, "GET", f"/{code}/statistics")
    assert stats["session_count"] == 0 and stats["tokens_appended"] == 0
    assert_error(client.get("/api/teacher/classes/ZZZZZZ/statistics", headers=AUTH), 404)


CLASS_TABLES = {
    "class_index": "class_code",
    "round_index": "round_id",
    "nickname_claims": "nickname_key",
    "guess_index": "session_id",
}


def parse_time(value: Any) -> datetime:
    """A timestamp as SQLite (text) or PostgreSQL (a datetime) gives it back."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def class_tables(app: Flask) -> dict[str, list[Any]]:
    with app.extensions["tokenwheel.engine"].connect() as conn:
        return {
            table: [
                tuple(row)
                for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {key}")).all()
            ]
            for table, key in CLASS_TABLES.items()
        }


def test_rebuild_index_writes_the_class_tables_again_from_the_events(
    app: Flask, client: FlaskClient
) -> None:
    code = open_class(client)
    other = open_class(client, "8a")
    sids = [join(client, code, name)["session_id"] for name in ("Ana", "Ben")]
    join(client, other, "Cy")
    first = start_round(client, code)
    guess(client, sids[0], first, "mat")
    guess(client, sids[1], first, "mats")
    teacher(client, "POST", f"/{code}/rounds/{first}/reveal")
    second = start_round(client, code)
    guess(client, sids[1], second, "hat")
    teacher(client, "POST", f"/{other}/close")
    before = class_tables(app)
    assert [len(rows) for rows in before.values()] == [2, 2, 3, 3]
    with app.extensions["tokenwheel.engine"].begin() as conn:
        for table in CLASS_TABLES:
            conn.execute(sa.text(f"DELETE FROM {table}"))
    assert all(not rows for rows in class_tables(app).values())
    events = event_count(app)

    assert app.extensions["tokenwheel.maintenance"].rebuild_index() == 3
    after = class_tables(app)
    # a class's last activity is its last event's or join's time: the live write took it
    # from the clock a moment after the event's own
    for row, rebuilt in zip(before["class_index"], after["class_index"], strict=True):
        assert rebuilt[:6] + rebuilt[7:] == row[:6] + row[7:]
        assert 0 <= (parse_time(row[6]) - parse_time(rebuilt[6])).total_seconds() < 1
    assert {k: v for k, v in after.items() if k != "class_index"} == {
        k: v for k, v in before.items() if k != "class_index"
    }
    assert event_count(app) == events
    # over rows that are there, it changes nothing
    assert app.extensions["tokenwheel.maintenance"].rebuild_index() == 3
    assert class_tables(app) == after
    # and the rebuilt tables serve: the nickname is taken, the open round takes a guess
    join(client, code, "ana", expect=409)
    guess(client, sids[0], second, "cat")
