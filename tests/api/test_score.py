"""POST /api/score on the fake model: every token's probability from the tokens before
it, held to a direct computation on the fake's logits; the prompt's limits; its own
hourly budget; nothing stored."""

from __future__ import annotations

import math
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Student
from tests.api.test_errors import event_count
from tests.api.test_protection import app_with, assert_429, from_address
from tests.fakes import MAX_CONTEXT as FAKE_CONTEXT
from tests.fakes import VOCAB, FakeModels, fake_logits
from tokenwheel.settings import Settings

TEXT = "The cat sat on the mat. The dog ran"


def direct(ids: list[int]) -> list[float]:
    """softmax of the fake's logits after ``ids``, at temperature 1, computed here."""
    logits = fake_logits(ids)
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = math.fsum(exps)
    return [e / total for e in exps]


def test_every_token_is_scored_after_the_tokens_before_it(
    fake_client: FlaskClient, fake_app: Flask
) -> None:
    events = event_count(fake_app)
    r = fake_client.post("/api/score", json={"text": TEXT})
    assert r.status_code == 200, r.json
    body = r.json
    ids = FakeModels().encode_prompt("fake", TEXT)
    assert body["model_name"] == "fake" and body["text"] == TEXT
    assert body["token_count"] == len(ids) == len(body["tokens"])
    assert body["scored_token_count"] == len(ids) - 1
    first = body["tokens"][0]
    assert first["token_id"] == ids[0] and first["token_text"] == VOCAB[ids[0]]
    assert first["probability"] is first["rank"] is first["surprisal_bits"] is None
    assert first["alternatives"] == []
    logps = []
    for i, token in enumerate(body["tokens"][1:], start=1):
        probs = direct(ids[:i])
        assert token["token_id"] == ids[i]
        assert math.isclose(token["probability"], probs[ids[i]], rel_tol=1e-12)
        assert token["rank"] == 1 + sum(1 for p in probs if p > probs[ids[i]])
        assert math.isclose(token["surprisal_bits"], -math.log2(probs[ids[i]]), rel_tol=1e-9)
        order = sorted(range(len(probs)), key=lambda j: (-probs[j], j))[:5]
        assert [a["token_id"] for a in token["alternatives"]] == order
        for a in token["alternatives"]:
            assert math.isclose(a["probability"], probs[a["token_id"]], rel_tol=1e-12)
            assert a["token_text"] == VOCAB[a["token_id"]] and "display_text" in a
        logps.append(math.log(probs[ids[i]]))
    assert math.isclose(body["log_probability"], math.fsum(logps), rel_tol=1e-9)
    assert math.isclose(body["perplexity"], math.exp(-math.fsum(logps) / len(logps)), rel_tol=1e-9)
    assert event_count(fake_app) == events  # nothing stored


def test_the_score_is_the_wheels_probability_for_the_same_ids(fake_client: FlaskClient) -> None:
    """Appending the text's tokens one by one records the wheel's probability and rank
    at temperature 1: the score gives the same."""
    ids = FakeModels().encode_prompt("fake", TEXT)
    body = fake_client.post("/api/score", json={"text": TEXT}).json
    student = Student(fake_client)
    student.prompt(VOCAB[ids[0]])
    for i, token in enumerate(body["tokens"][1:], start=1):
        wheel = student.probs(threshold=0, other_top_k=0)
        shown = {t["token_id"]: t for t in wheel["above_threshold_tokens"]}
        assert abs(token["probability"] - shown[ids[i]]["probability"]) <= 1e-12
        appended = student.append(token_id=ids[i])["appended_token"]
        assert appended["rank"] == token["rank"]


def test_a_one_token_text_has_no_perplexity(fake_client: FlaskClient) -> None:
    body = fake_client.post("/api/score", json={"text": "The"}).json
    assert body["token_count"] == 1 and body["scored_token_count"] == 0
    assert body["log_probability"] == 0 and body["perplexity"] is None


BAD = [
    ({}, 400),
    ({"text": ""}, 400),
    ({"text": "  \n\t\u200b"}, 400),
    ({"text": 5}, 400),
    ({"text": None}, 400),
    ({"text": ["The cat"]}, 400),
    ({"text": "x" * 4001}, 400),
    ({"text": " the" * FAKE_CONTEXT}, 400),  # more tokens than the window allows
    ({"text": "zzz"}, 400),  # no token of the fake's vocabulary
    ({"text": "The cat", "model_name": "gpt-17"}, 400),
    ({"text": "The cat", "model_name": ""}, 400),
    ({"text": "The cat", "model_name": 3}, 400),
    ({"text": "The cat", "admin": True}, 400),
]


@pytest.mark.parametrize(("body", "status"), BAD, ids=lambda x: str(x)[:40])
def test_bad_input_is_a_clear_error_and_stores_nothing(
    fake_client: FlaskClient, fake_app: Flask, body: dict[str, Any], status: int
) -> None:
    events = event_count(fake_app)
    r = fake_client.post("/api/score", json=body)
    assert r.status_code == status, r.json
    assert r.json["error"] and r.json["message"]
    assert event_count(fake_app) == events


def test_texts_scored_per_hour_per_client_are_limited_apart_from_sessions(
    settings: Settings,
) -> None:
    app = app_with(settings, sessions_per_hour=2)
    client = from_address(app.test_client(), "198.51.100.41")
    for _ in range(2):
        assert client.post("/api/score", json={"text": "The cat"}).status_code == 200
    body = assert_429(client.post("/api/score", json={"text": "The cat"}), 3600)
    assert "scored 2 texts" in body["message"]
    assert client.post("/api/sessions", json={}).status_code == 201  # its own count


def test_openapi_documents_score(fake_client: FlaskClient) -> None:
    spec = fake_client.get("/api/openapi.json").json
    score = spec["paths"]["/api/score"]["post"]
    assert score["operationId"] == "scoring_score"
    assert {"200", "400", "429", "503"} <= set(score["responses"])
    assert "first token" in score["description"]
    compare = spec["paths"]["/api/sessions/{session_id}/compare"]["post"]
    assert compare["operationId"] == "lab_compare"
    assert {"200", "400", "404"} <= set(compare["responses"])
    assert compare["responses"]["200"]["links"]
