"""Every bad input gets a clear 4xx JSON error and stores nothing.

On the fake model (``fake_app``), except where the real model is the point: its prompt
window, and the catalog's Hub models that cannot load here."""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Student
from tests.fakes import VOCAB
from tokenwheel.store.tables import events


def event_count(app: Flask) -> int:
    with app.extensions["tokenwheel.engine"].connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())


def assert_error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert r.is_json
    body = r.json
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in r.get_data(as_text=True)
    return body  # type: ignore[no-any-return]


@pytest.fixture
def prompted(fake_client: FlaskClient) -> Student:
    s = Student(fake_client)
    s.prompt("The cat sat on the")
    return s


BAD_QUERIES = [
    {"threshold": -0.01},
    {"threshold": 1.01},
    {"threshold": "abc"},
    {"threshold": "nan"},
    {"threshold": "inf"},
    {"temperature": 0},
    {"temperature": -1},
    {"temperature": 10.5},
    {"temperature": "nan"},
    {"temperature": "inf"},
    {"temperature": "-inf"},
    {"temperature": "x"},
    {"other_top_k": -1},
    {"other_top_k": 101},
    {"other_top_k": 2.5},
    {"other_top_k": "ten"},
]


@pytest.mark.parametrize("query", BAD_QUERIES, ids=lambda q: repr(q))
def test_bad_next_token_parameters_are_400(prompted: Student, query: dict[str, Any]) -> None:
    r = prompted.client.get(f"{prompted.url}/next-token-probs", query_string=query)
    body = assert_error(r, 400)
    assert next(iter(query)) in body["message"]


DOG = VOCAB.index(" dog")  # a token of the fake model's vocabulary

BAD_APPENDS: list[Any] = [
    {},
    {"token_id": -1},
    {"token_id": len(VOCAB)},
    {"token_id": 10**12},
    {"token_id": "12"},
    {"token_id": 1.5},
    {"token_id": True},
    {"token_id": None},
    {"category": "above"},
    {"category": "OTHER"},
    {"category": "other", "token_id": 5},
    {"category": "other", "token_text": " mat"},
    {"token_text": ""},
    {"token_text": " mat mat"},
    {"token_text": 5},
    {"token_id": DOG, "token_text": " cat"},
    {"token_id": DOG, "threshold": 2},
    {"token_id": DOG, "temperature": 0},
    # JSON bodies take numbers, not numbers in strings or booleans
    {"token_id": DOG, "threshold": "0.5"},
    {"token_id": DOG, "temperature": "1"},
    {"token_id": DOG, "threshold": True},
    {"token_id": DOG, "temperature": False},
    {"token_id": DOG, "unexpected": 1},
    [1, 2],
    "token",
]


@pytest.mark.parametrize("body", BAD_APPENDS, ids=lambda b: repr(b))
def test_bad_appends_are_400_and_store_nothing(
    fake_app: Flask, prompted: Student, body: Any
) -> None:
    before = event_count(fake_app)
    r = prompted.client.post(f"{prompted.url}/append-token", json=body)
    assert_error(r, 400)
    assert event_count(fake_app) == before


def test_malformed_json_is_400(fake_app: Flask, prompted: Student) -> None:
    before = event_count(fake_app)
    for path in ("append-token", "set-prompt"):
        r = prompted.client.post(
            f"{prompted.url}/{path}", data="{not json", content_type="application/json"
        )
        assert_error(r, 400)
    r = prompted.client.post("/api/sessions", data="{", content_type="application/json")
    assert_error(r, 400)
    assert event_count(fake_app) == before


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "text/plain;charset=UTF-8", "multipart/form-data"],
)
def test_a_body_that_is_not_json_is_415(
    fake_app: Flask, prompted: Student, content_type: str
) -> None:
    """A form post, or fetch() with a JSON string but no Content-Type header (text/plain),
    would otherwise be read as an empty body: create would make a default session and
    ignore the model asked for."""
    before = event_count(fake_app)
    for path, body in (
        ("/api/sessions", "model_name=gemma-3-270m"),
        (f"{prompted.url}/set-prompt", '{"prompt": "A dog"}'),
        (f"{prompted.url}/append-token", '{"token_id": 5}'),
        (f"{prompted.url}/undo", '{"expected_version": 3}'),
    ):
        r = prompted.client.post(path, data=body, content_type=content_type)
        message = assert_error(r, 415)["message"]
        assert "application/json" in message
    assert event_count(fake_app) == before
    # no body at all needs no Content-Type, and a JSON suffix type is JSON
    assert prompted.client.post(f"{prompted.url}/undo").status_code in (200, 400)
    r = prompted.client.post(
        f"{prompted.url}/set-prompt",
        data='{"prompt": "A dog"}',
        content_type="application/merge-patch+json",
    )
    assert r.status_code == 200


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t ", None, 42, ["a"], {"a": 1}])
def test_bad_prompts_are_400(fake_app: Flask, prompted: Student, prompt: Any) -> None:
    before = event_count(fake_app)
    r = prompted.client.post(f"{prompted.url}/set-prompt", json={"prompt": prompt})
    assert_error(r, 400)
    r = prompted.client.post(f"{prompted.url}/set-prompt", json={})
    assert_error(r, 400)
    assert event_count(fake_app) == before


def test_a_prompt_of_invisible_characters_is_blank_before_the_model(settings: Any) -> None:
    """A prompt of zero-width characters looks empty on the page; the tokenizer would
    have made tokens of it."""
    from tests.api.conftest import make_app
    from tests.api.test_protection import CountingModels

    models = CountingModels()
    app = make_app(settings, models)  # type: ignore[arg-type]
    s = Student(app.test_client())
    for prompt in ("\u200b\u200c\u200d", "\ufeff", " \u2060\u00a0 ", "\x00"):
        r = s.client.post(f"{s.url}/set-prompt", json={"prompt": prompt})
        assert "blank" in assert_error(r, 400)["message"]
    assert models.encoded == 0 and event_count(app) == 1


def test_too_long_prompt_is_400_before_the_model(app: Flask, client: FlaskClient) -> None:
    s = Student(client)
    before = event_count(app)
    r = client.post(f"{s.url}/set-prompt", json={"prompt": "a" * 4001})
    assert "4000" in assert_error(r, 400)["message"]
    r = client.post(f"{s.url}/set-prompt", json={"prompt": " a" * 600})  # 600 tokens > 512
    assert "512" in assert_error(r, 400)["message"]
    assert event_count(app) == before


def test_before_a_prompt_probs_and_append_are_400(fake_client: FlaskClient) -> None:
    s = Student(fake_client)
    body = assert_error(fake_client.get(f"{s.url}/next-token-probs"), 400)
    assert "prompt" in body["message"].lower()
    assert_error(fake_client.post(f"{s.url}/append-token", json={"token_id": 5}), 400)
    assert_error(fake_client.post(f"{s.url}/append-token", json={"category": "other"}), 400)


def test_undo_with_only_the_prompt_is_the_seed_error(prompted: Student) -> None:
    r = prompted.client.post(f"{prompted.url}/undo")
    body = assert_error(r, 400)
    assert body == {
        "error": "Cannot undo",
        "message": "No generated tokens to remove. Only initial prompt remains.",
        "current_text": "The cat sat on the",
    }


@pytest.mark.parametrize(
    "sid",
    [
        "nope",
        "123",
        "1a22feae-c950-46ad-9c5e-54532d0fedcd",  # well formed, no such session
        "' OR 1=1 --",
        "00000000-0000-0000-0000-000000000000",
        "C3A5AE28-5A7F-45F0-B8F3-EB699E2A9D32",
        "",  # an empty path segment: a JSON 404, not werkzeug's HTML redirect to "/"
    ],
)
def test_unknown_or_malformed_session_ids_are_404(fake_client: FlaskClient, sid: str) -> None:
    for method, path, body in (
        ("get", "", None),
        ("delete", "", None),
        ("post", "/set-prompt", {"prompt": "hi"}),
        ("get", "/next-token-probs", None),
        ("post", "/append-token", {"token_id": 1}),
        ("post", "/undo", None),
    ):
        r = getattr(fake_client, method)(f"/api/sessions/{sid}{path}", json=body)
        assert_error(r, 404)


def test_create_session_errors(app: Flask, client: FlaskClient) -> None:
    before = event_count(app)
    body = assert_error(client.post("/api/sessions", json={"model_name": "gpt-17"}), 400)
    assert "gpt-17" in body["message"]
    assert_error(client.post("/api/sessions", json={"model_name": 5}), 400)
    assert_error(client.post("/api/sessions", json={"model_name": ""}), 400)
    assert_error(client.post("/api/sessions", json={"model": "x"}), 400)
    # a Hub model on a machine with no Hub access: 503 with the reason
    body = assert_error(client.post("/api/sessions", json={"model_name": "gpt2"}), 503)
    assert "gpt2" in body["message"] and "cache" in body["message"]
    assert event_count(app) == before


def test_unknown_routes_and_methods_are_json(fake_client: FlaskClient) -> None:
    assert_error(fake_client.get("/api/nothing-here"), 404)
    assert_error(fake_client.put("/api/sessions"), 405)


@pytest.mark.parametrize("temperature", [0.009, 1e-3, 1e-12, 1e-300, 5e-324])
def test_any_temperature_above_zero_gives_a_finite_wheel(
    prompted: Student, temperature: float
) -> None:
    """The contract is temperature > 0: the tiniest ones make the wheel one token at 100%
    and every number in the answer is still a finite JSON number."""
    wheel = prompted.probs(temperature=temperature, threshold=0.5)
    top = wheel["above_threshold_tokens"]
    assert len(top) == 1 and top[0]["probability"] > 0.99
    samples = wheel["other_category"]["sample_tokens"]
    assert samples and all(math.isfinite(t["log_probability"]) for t in samples)
    assert wheel["other_category"]["total_probability"] < 0.01
    appended = prompted.append(
        token_id=samples[-1]["token_id"], temperature=temperature, threshold=0.5
    )["appended_token"]
    assert math.isfinite(appended["log_probability"])
    assert appended["probability"] == samples[-1]["probability"]


def test_statistics_survive_a_token_with_no_chance(prompted: Student) -> None:
    """A student may append a token that had no chance at a low temperature: its
    log-probability is thousands below zero, and exp(-mean) overflows a float. The
    statistics still answer (perplexity null: too large for a number)."""
    # the model's least likely next token, scored at temperature 0.01
    wheel = prompted.probs(temperature=100 / 1000, threshold=0.0, other_top_k=0)
    least = wheel["above_threshold_tokens"][-1]["token_id"]
    unlikely = prompted.append(token_id=least, temperature=0.01)["appended_token"]
    assert unlikely["log_probability"] < -710  # exp(710) is past the largest float
    r = prompted.client.get(f"{prompted.url}/statistics")
    assert r.status_code == 200, r.data[:300]
    stats = r.json
    assert stats["tokens_generated"] == 1
    assert stats["log_probability"] == unlikely["log_probability"]
    assert stats["perplexity"] is None
