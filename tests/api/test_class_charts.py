"""The numbers behind the teacher page's class charts (issue 15, item 5), through the HTTP
API on SQLite and PostgreSQL with the fake model: each student's current text in the
class statistics, and a revealed round's wheel with the share of guesses on each of the
model's top tokens. Checked against the sessions' own answers, never hard-coded."""

from __future__ import annotations

import math
from typing import Any

from flask.testing import FlaskClient

from tests.api import test_classes
from tests.api.test_classes import AUTH, PROMPT

# the app on the fake model with the teacher token, on SQLite and PostgreSQL
app, client = test_classes.app, test_classes.client


def call(client: FlaskClient, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
    headers = AUTH if path.startswith("/api/teacher") else {}
    r = client.open(path, method=method, headers=headers, **kw)
    assert r.status_code == expect, (r.status_code, r.data[:400])
    return r.json


def joined(client: FlaskClient, code: str, nickname: str) -> str:
    body = {"class_code": code, "nickname": nickname}
    return str(call(client, "POST", "/api/sessions", 201, json=body)["session_id"])


def test_each_student_in_the_class_statistics(client: FlaskClient) -> None:
    code = call(client, "POST", "/api/teacher/classes", 201, json={"name": "7b"})["class_code"]
    ana, ben, cy = (joined(client, code, n) for n in ("Ana", "Ben", "Cy"))
    for sid in (ana, ben, cy):
        call(client, "POST", f"/api/sessions/{sid}/set-prompt", json={"prompt": PROMPT})
    wheel = call(client, "GET", f"/api/sessions/{ana}/next-token-probs")
    top, second = wheel["above_threshold_tokens"][:2]
    call(client, "POST", f"/api/sessions/{ana}/append-token", json={"token_id": top["token_id"]})
    call(client, "POST", f"/api/sessions/{ana}/append-token", json={"category": "other"})
    call(client, "POST", f"/api/sessions/{ben}/append-token", json={"token_id": second["token_id"]})
    call(client, "POST", f"/api/sessions/{ben}/append-token", json={"category": "other"})
    call(client, "POST", f"/api/sessions/{ben}/undo")  # the undone token no longer counts

    stats = call(client, "GET", f"/api/teacher/classes/{code}/statistics")
    students = stats["students"]
    assert [s["nickname"] for s in students] == ["Ana", "Ben", "Cy"]  # in the order they joined
    assert [s["session_id"] for s in students] == [ana, ben, cy]
    for entry in students:
        history = call(client, "GET", f"/api/sessions/{entry['session_id']}")["token_history"]
        n = len(history)
        other = sum(1 for t in history if t["category"] == "other")
        assert (entry["tokens_generated"], entry["other_count"]) == (n, other)
        if n:
            mean = math.fsum(t["probability"] for t in history) / n
            assert math.isclose(entry["average_probability"], mean, rel_tol=1e-12)
            assert math.isclose(entry["other_rate"], other / n)
        else:
            assert entry["average_probability"] is None and entry["other_rate"] is None
    assert [s["tokens_generated"] for s in students] == [2, 1, 0]
    assert [s["other_count"] for s in students] == [1, 0, 0]
    assert sum(s["tokens_generated"] for s in students) == stats["tokens_generated"]
    # a class nobody joined yet: no students
    empty = call(client, "POST", "/api/teacher/classes", 201, json={"name": "8a"})["class_code"]
    assert call(client, "GET", f"/api/teacher/classes/{empty}/statistics")["students"] == []
    # the students' nicknames are the teacher's: a student's own statistics carry none
    own = call(client, "GET", f"/api/sessions/{ana}/statistics")
    assert "students" not in own and "Ben" not in str(own)


def test_a_revealed_round_answers_the_shares_of_guesses_on_the_top_tokens(
    client: FlaskClient,
) -> None:
    """What the chart of guesses against the model reads: the reveal's wheel (the model's
    top tokens with their probability and guess count) and the round's guess count; the
    guesses outside the top tokens are the rest."""
    code = call(client, "POST", "/api/teacher/classes", 201, json={"name": "7b"})["class_code"]
    sids = [joined(client, code, n) for n in ("Ana", "Ben", "Cy", "Di")]
    base = f"/api/teacher/classes/{code}/rounds"
    rid = call(client, "POST", base, 201, json={"prompt": PROMPT})["round_id"]
    for sid, text in zip(sids, ("mat", "mat", "mats", "hat"), strict=True):
        body = {"round_id": rid, "text": text}
        call(client, "POST", f"/api/sessions/{sid}/guess", 201, json=body)
    revealed = call(client, "POST", f"{base}/{rid}/reveal")
    assert revealed["guess_count"] == 4
    top = revealed["wheel"]["above_threshold_tokens"]
    probabilities = [t["probability"] for t in top]
    assert probabilities == sorted(probabilities, reverse=True)  # the model's top first
    on_top = sum(t["guess_count"] for t in top)
    outside = revealed["guess_count"] - on_top
    # the rest: guesses in the Other wedge and guesses of several tokens, all counted
    in_other = revealed["wheel"]["other_category"]["guess_count"]
    several = sum(g["count"] for g in revealed["unlisted_guesses"] if not g["single_token"])
    assert outside == in_other + several
    assert several == 1  # "mats"
    # the same again on a second read, for the page's charts: nothing changes
    assert call(client, "POST", f"{base}/{rid}/reveal") == revealed
    listed = call(client, "GET", base)["rounds"]
    assert [(r["round_id"], r["status"], r["guess_count"]) for r in listed] == [
        (rid, "revealed", 4)
    ]
