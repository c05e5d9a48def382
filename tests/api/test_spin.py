"""POST /spin on the real bundled model: the draw, the wedge, the angle, seeds, errors."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Student
from tests.api.test_errors import assert_error

SETTINGS = {"threshold": 0.01, "temperature": 0.9}


def spin(student: Student, **body: Any) -> dict[str, Any]:
    r = student.client.post(f"{student.url}/spin", json=body)
    assert r.status_code == 200, r.json
    return r.json  # type: ignore[no-any-return]


def seeded(client: FlaskClient, seed: int) -> Student:
    student = Student(client, seed=seed)
    student.prompt("The cat sat on the")
    return student


def wedges(probs: dict[str, Any]) -> list[tuple[float, float]]:
    """The wheel as a page draws it: (start, end) degrees, the Other wedge last."""
    spans, start = [], 0.0
    for token in probs["above_threshold_tokens"]:
        spans.append((start, start + 360 * token["probability"]))
        start = spans[-1][1]
    spans.append((start, 360.0))
    return spans


def test_spin_lands_where_the_draw_fell_and_appends_that_token(client: FlaskClient) -> None:
    student = seeded(client, 2026)
    seen = set()
    for _ in range(12):
        probs = student.probs(**SETTINGS)
        body = spin(student, **SETTINGS)
        landed, token = body["landed"], body["appended_token"]
        assert 0 <= body["draw"] < 1 and body["angle"] == pytest.approx(360 * body["draw"])
        start, end = wedges(probs)[landed["wedge_index"]]
        assert landed["start_angle"] == pytest.approx(start, abs=1e-6)
        assert landed["end_angle"] == pytest.approx(end, abs=1e-6)
        assert start <= body["angle"] < end
        assert token["selection"] == "spin"
        if landed["wedge"] == "token":
            shown = probs["above_threshold_tokens"][landed["wedge_index"]]
            assert token["token_id"] == shown["token_id"]
            assert token["probability"] == shown["probability"]
            assert token["category"] == "above_threshold" and not token["sampled_from_other"]
            assert "other_category_info" not in body
        else:
            assert landed["wedge_index"] == len(probs["above_threshold_tokens"])
            assert token["category"] == "other" and token["sampled_from_other"]
            assert token["probability"] < SETTINGS["threshold"]
            info, tail = body["other_category_info"], probs["other_category"]
            assert info["token_count"] == tail["token_count"]
        assert body["current_text"] == body["previous_text"] + token["token_text"] or (
            "\ufffd" in token["token_text"]
        )
        assert body["token_history"][-1]["selection"] == "spin"
        seen.add(landed["wedge"])
        student.undo()
    assert seen == {"token", "other"}, "12 spins at these settings should reach both kinds"


def test_the_same_seed_and_actions_give_the_same_tokens(client: FlaskClient) -> None:
    def run(seed: int) -> list[int]:
        student = seeded(client, seed)
        tokens = [spin(student, **SETTINGS)["appended_token"]["token_id"] for _ in range(3)]
        student.undo()
        tokens.append(spin(student, **SETTINGS)["appended_token"]["token_id"])
        return tokens

    assert run(11) == run(11)
    other = Student(client)
    other.prompt("The cat sat on the")
    first = spin(other, seed=99, **SETTINGS)
    again = Student(client)
    again.prompt("The cat sat on the")
    assert spin(again, seed=99, **SETTINGS)["draw"] == first["draw"]


@pytest.mark.parametrize(
    "body",
    [
        {"seed": -1},
        {"seed": 2**63},
        {"seed": "7"},
        {"seed": True},
        {"seed": 1.5},
        {"threshold": 2},
        {"temperature": 0},
        {"temperature": "1.0"},
        {"threshold": "0.1"},
        {"threshold": False},
        {"token_id": 5},
    ],
    ids=repr,
)
def test_bad_spin_bodies_are_400(client: FlaskClient, body: dict[str, Any]) -> None:
    student = Student(client)
    student.prompt("The cat")
    assert_error(client.post(f"{student.url}/spin", json=body), 400)
    assert student.state()["generation_count"] == 0


def test_bad_seeds_at_creation_are_400(client: FlaskClient) -> None:
    for seed in (-1, 2**63, "1", False):
        assert_error(client.post("/api/sessions", json={"seed": seed}), 400)
    assert client.post("/api/sessions", json={"seed": 2**63 - 1}).status_code == 201


def test_spin_needs_a_prompt_and_a_live_session(client: FlaskClient) -> None:
    student = Student(client)
    assert_error(client.post(f"{student.url}/spin"), 400)
    client.delete(student.url)
    assert_error(client.post(f"{student.url}/spin"), 404)
