"""Limits, security headers, CORS, request ids, error bodies, health: on the fake model."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.conftest import Student, make_app
from tests.api.test_errors import assert_error, event_count
from tests.fakes import FakeModels
from tokenwheel.inference.types import ModelUnavailableError
from tokenwheel.redaction import redact_session_ids
from tokenwheel.settings import Settings


class CountingModels(FakeModels):
    """The fake model, counting what reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.encoded = 0
        self.forward = 0

    def encode_prompt(self, model_id: str, text: str) -> list[int]:
        self.encoded += 1
        return super().encode_prompt(model_id, text)

    def logits(self, model_id: str, ids: Any) -> Any:
        self.forward += 1
        return super().logits(model_id, ids)


def app_with(settings: Settings, models: FakeModels | None = None, **overrides: Any) -> Flask:
    return make_app(settings.with_overrides(**overrides), models or FakeModels())  # type: ignore[arg-type]


def from_address(client: FlaskClient, address: str) -> FlaskClient:
    client.environ_base["REMOTE_ADDR"] = address
    return client


# ---------------------------------------------------------------- limits


def test_an_oversized_body_is_413_json(settings: Settings) -> None:
    models = CountingModels()
    app = app_with(settings, models, max_body_bytes=2048)
    student = Student(app.test_client())
    r = student.client.post(f"{student.url}/set-prompt", json={"prompt": "The cat " * 400})
    body = assert_error(r, 413)
    assert body["error"] == "Request too large" and "2048" in body["message"]
    assert models.encoded == 0 and event_count(app) == 1


def test_a_streamed_body_past_the_limit_is_413_too(settings: Settings) -> None:
    """Sent chunked (no Content-Length), as gunicorn passes it on: werkzeug stops reading
    at the limit without a word, which would have cut the JSON and answered 400."""
    models = CountingModels()
    app = app_with(settings, models, max_body_bytes=2048)
    student = Student(app.test_client())
    chunked = {"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}

    def streamed(body: bytes) -> Any:
        return student.client.post(
            f"{student.url}/set-prompt",
            input_stream=io.BytesIO(body),
            content_type="application/json",
            environ_overrides=chunked,
        )

    body = assert_error(streamed(json.dumps({"prompt": "The cat " * 400}).encode()), 413)
    assert body["error"] == "Request too large"
    assert models.encoded == 0 and event_count(app) == 1
    r = streamed(json.dumps({"prompt": "The cat"}).encode())  # a small one goes through
    assert r.status_code == 200 and r.json["current_text"] == "The cat"


def test_an_oversized_prompt_never_reaches_the_model(settings: Settings) -> None:
    models = CountingModels()
    app = app_with(settings, models, max_prompt_chars=40, max_prompt_tokens=5)
    student = Student(app.test_client())
    r = student.client.post(f"{student.url}/set-prompt", json={"prompt": "x" * 41})
    assert "41 characters" in assert_error(r, 400)["message"]
    assert models.encoded == 0  # refused on its length alone
    r = student.client.post(f"{student.url}/set-prompt", json={"prompt": " the cat" * 4})
    assert "8 tokens" in assert_error(r, 400)["message"]
    assert models.encoded == 1 and models.forward == 0  # counted, never run
    assert event_count(app) == 1
    student.prompt(" the cat sat")  # within both limits


def test_generated_tokens_per_session_are_bounded(settings: Settings) -> None:
    app = app_with(settings, max_generated_tokens=2)
    student = Student(app.test_client())
    student.prompt("The cat")
    student.append(token_id=4)
    student.append(token_id=5)
    r = student.client.post(f"{student.url}/append-token", json={"token_id": 6})
    assert assert_error(r, 400)["error"] == "Generation limit reached"
    student.undo()
    student.append(token_id=6)


def assert_429(r: Any, window: int) -> dict[str, Any]:
    body = assert_error(r, 429)
    assert body["error"] == "Too many requests"
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= window
    assert f"{retry_after} s" in body["message"]
    return body


def test_the_request_rate_per_client_is_limited(settings: Settings) -> None:
    app = app_with(settings, rate_limit="6/minute")
    client = from_address(app.test_client(), "198.51.100.7")
    student = Student(client)  # 1
    student.prompt("The cat")  # 2
    for _ in range(4):  # 3..6
        assert client.get(student.url).status_code == 200
    for _ in range(20):  # health checks are never counted or limited
        assert client.get("/api/health").status_code == 200
    assert_429(client.get(student.url), 60)
    r = client.post(f"{student.url}/append-token", json={"token_id": 4})
    assert_429(r, 60)
    assert event_count(app) == 2  # the refused append stored nothing
    # another address has its own budget
    other = from_address(app.test_client(), "198.51.100.8")
    assert other.get(student.url).status_code == 200


def test_sessions_per_hour_per_client_are_limited(settings: Settings) -> None:
    app = app_with(settings, sessions_per_hour=3)
    client = from_address(app.test_client(), "198.51.100.9")
    students = [Student(client) for _ in range(3)]
    body = assert_429(client.post("/api/sessions", json={}), 3600)
    assert "3 sessions" in body["message"]
    assert event_count(app) == 3
    students[0].prompt("The cat")  # the sessions themselves still work
    assert from_address(app.test_client(), "198.51.100.10").post("/api/sessions").status_code == 201


def test_wheels_below_a_threshold_of_a_tenth_of_a_percent_have_their_own_limit(
    settings: Settings,
) -> None:
    """They list up to the whole vocabulary (Gemma 3 at threshold 0: 56 MB, 2 s of the
    server's time); wheels the page asks for (0.1% and up) are not counted."""
    app = app_with(settings, low_threshold_rate_limit="2/minute")
    client = from_address(app.test_client(), "198.51.100.12")
    student = Student(client)
    student.prompt("The cat")
    wheel = f"{student.url}/next-token-probs"
    full = client.get(wheel, query_string={"threshold": 0})
    assert full.status_code == 200 and full.json["other_category"]["token_count"] == 0
    assert client.get(wheel, query_string={"threshold": 0.0009}).status_code == 200
    body = assert_429(client.get(wheel, query_string={"threshold": 0}), 60)
    assert "0.1%" in body["message"] and "2/minute" in body["message"]
    for threshold in (0.001, 0.01, 0.5):
        assert client.get(wheel, query_string={"threshold": threshold}).status_code == 200
    assert client.get(wheel).status_code == 200  # the default threshold, 1%
    other = from_address(app.test_client(), "198.51.100.13")
    assert other.get(wheel, query_string={"threshold": 0}).status_code == 200


def test_with_redis_the_limit_holds_across_workers(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    prefix = f"tokenwheel-test-{uuid.uuid4().hex[:8]}"
    workers = [
        app_with(settings, rate_limit="5/minute", redis_url=redis_url, redis_prefix=prefix)
        for _ in range(2)
    ]
    clients = [from_address(w.test_client(), "198.51.100.11") for w in workers]
    statuses = [clients[n % 2].get("/api/models").status_code for n in range(6)]
    assert statuses == [200] * 5 + [429]
    assert_429(clients[0].get("/api/models"), 60)


def test_a_redis_outage_does_not_fail_requests(settings: Settings) -> None:
    # nothing listens on port 1: the limiter falls back to counting in memory
    app = app_with(settings, rate_limit="3/minute", redis_url="redis://127.0.0.1:1/0")
    client = app.test_client()
    statuses = [client.get("/api/models").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


# ---------------------------------------------------------------- headers


def test_security_headers_on_every_response(fake_client: FlaskClient) -> None:
    student = Student(fake_client)
    for r in (
        fake_client.get("/api/models"),
        fake_client.get(student.url),
        fake_client.get("/api/sessions/nope"),
        fake_client.get("/no/such/page"),
        fake_client.post(f"{student.url}/append-token", json={}),
        fake_client.get("/api/openapi.json"),
    ):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
    docs = fake_client.get("/api/docs")
    assert docs.status_code == 200
    # Swagger UI starts from a file (web/docs.js): the docs page allows no inline code either
    assert "unsafe-inline" not in docs.headers["Content-Security-Policy"]
    assert docs.headers["X-Content-Type-Options"] == "nosniff"
    docs.close()


def test_security_headers_on_pages_files_and_every_kind_of_error(settings: Settings) -> None:
    app = app_with(settings, rate_limit="5/minute", max_body_bytes=1024)
    client = app.test_client()
    student = Student(client)

    def fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unexpected")

    app.extensions["tokenwheel.sessions"].statistics = fails
    responses = {
        "page": client.get("/"),
        "teacher page": client.get("/teacher"),
        "static file": client.get("/static/app.js"),
        "405": client.put("/api/sessions"),
        "413": client.post(
            f"{student.url}/set-prompt", data="x" * 2048, content_type="application/json"
        ),
        "500": client.get(f"{student.url}/statistics"),
    }
    while (r := client.get("/api/models")).status_code != 429:
        pass
    responses["429"] = r
    for name, r in responses.items():
        expected = int(name) if name.isdigit() else 200
        assert r.status_code == expected, name
        assert r.headers["X-Content-Type-Options"] == "nosniff", name
        assert r.headers["Referrer-Policy"] == "no-referrer", name
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp, name
        r.close()


def test_unavailable_and_not_ready_say_when_to_come_back(settings: Settings) -> None:
    app = app_with(settings)
    client = app.test_client()
    r = client.get("/api/ready")  # the fake model is not loaded until first use
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    models = app.extensions["tokenwheel.models"]

    def gone(model_id: str) -> None:
        raise ModelUnavailableError(f"Model {model_id!r} failed to load: no file")

    models.get = gone
    r = client.post("/api/sessions", json={})
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert "failed to load" in r.json["message"]


def test_cors_is_off_by_default(fake_client: FlaskClient) -> None:
    origin = {"Origin": "https://elsewhere.example"}
    r = fake_client.get("/api/models", headers=origin)
    assert "Access-Control-Allow-Origin" not in r.headers
    r = fake_client.options(
        "/api/sessions", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_allows_the_configured_origins(settings: Settings) -> None:
    app = app_with(settings, cors_origins=("https://wheel.example.org",), rate_limit="2/minute")
    client = app.test_client()
    allowed = {"Origin": "https://wheel.example.org"}
    preflight = client.options(
        "/api/sessions/x/append-token",
        headers={
            **allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, if-match, idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://wheel.example.org"
    allowed_headers = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "if-match" in allowed_headers and "idempotency-key" in allowed_headers
    r = client.post("/api/sessions", json={}, headers=allowed)
    assert r.headers["Access-Control-Allow-Origin"] == "https://wheel.example.org"
    assert "ETag" in r.headers["Access-Control-Expose-Headers"]
    r = client.get("/api/models", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    # preflights do not use up the rate limit (2/minute: two requests above)
    assert client.get("/api/health").status_code == 200


# ---------------------------------------------------------------- errors and ids


def test_every_response_has_a_request_id(fake_client: FlaskClient) -> None:
    ids = {fake_client.get("/api/models").headers["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3
    proxied = fake_client.get("/api/models", headers={"X-Request-ID": "lb-1234abcd"})
    assert proxied.headers["X-Request-ID"] == "lb-1234abcd"
    forged = fake_client.get("/api/models", headers={"X-Request-ID": "x INFO forged"})
    assert "forged" not in forged.headers["X-Request-ID"]


def test_a_500_says_only_that_it_failed_with_a_logged_request_id(
    fake_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = fake_app.test_client()
    student = Student(client)
    service = fake_app.extensions["tokenwheel.sessions"]

    def explode(session_id: str) -> None:
        raise RuntimeError("boom at /srv/secret/config.py line 12")

    service.get_session = explode
    with caplog.at_level(logging.ERROR):
        r = client.get(student.url)
    assert r.status_code == 500
    body = r.json
    assert set(body) == {"error", "message", "request_id"}
    assert body["error"] == "Internal error"
    assert body["request_id"] == r.headers["X-Request-ID"] in body["message"]
    text = r.get_data(as_text=True)
    assert "secret" not in text and "Traceback" not in text and "RuntimeError" not in text
    logged = [rec for rec in caplog.records if body["request_id"] in rec.getMessage()]
    assert logged and logged[0].exc_info is not None  # the details are in the log


def test_session_ids_are_random_uuid4(fake_client: FlaskClient) -> None:
    ids = [Student(fake_client).id for _ in range(64)]
    assert len(set(ids)) == 64
    for sid in ids:
        parsed = uuid.UUID(sid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == sid
    # 122 random bits: every non-fixed hex digit takes many values across the sample
    digits = [{sid.replace("-", "")[i] for sid in ids} for i in range(32)]
    assert all(len(d) > 4 for i, d in enumerate(digits) if i not in (12, 16))


def test_session_ids_never_appear_whole_in_logs(
    fake_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        student = Student(fake_client)
        student.prompt("The cat")
        student.append(token_id=4)
        fake_client.post(f"{student.url}/undo", headers={"If-Match": '"1"'})
        student.undo()
        fake_client.post(f"{student.url}/undo")
        fake_client.delete(student.url)
        fake_client.get(student.url)
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert student.id[:8] in text  # the service does log, with the short form
    assert student.id not in text
    line = f'127.0.0.1 - - "GET /api/sessions/{student.id}/undo HTTP/1.1" 200'
    assert student.id not in redact_session_ids(line)
    assert re.search(rf"{student.id[:8]}…/undo", redact_session_ids(line))


def test_no_log_line_holds_a_session_id_whole(settings: Settings) -> None:
    """Not our messages only: a traceback whose exception text carries the id (a driver
    error with its parameters, say) and gunicorn's own error log are cut too."""
    stream = io.StringIO()
    handlers = [logging.StreamHandler(stream), logging.StreamHandler(stream)]
    root, gunicorn_error = logging.getLogger(), logging.getLogger("gunicorn.error")
    root.addHandler(handlers[0])
    gunicorn_error.addHandler(handlers[1])
    try:
        app = app_with(settings, FakeModels())
        client = app.test_client()
        student = Student(client)
        service = app.extensions["tokenwheel.sessions"]

        def fails(session_id: str, *args: object, **kwargs: object) -> None:
            raise RuntimeError(f"UPDATE session_index WHERE session_id = '{session_id}'")

        service.statistics = fails  # an unexpected failure on this session's route
        r = client.get(f"{student.url}/statistics")
        assert r.status_code == 500 and student.id not in r.get_data(as_text=True)
        gunicorn_error.exception(
            "Error handling request %s", f"/api/sessions/{student.id}/undo", exc_info=None
        )
        logging.getLogger("tokenwheel.test").warning("session %s", student.id)
    finally:
        root.removeHandler(handlers[0])
        gunicorn_error.removeHandler(handlers[1])
    text = stream.getvalue()
    assert "UPDATE session_index" in text and "Error handling request" in text
    assert student.id not in text
    assert text.count(f"{student.id[:8]}…") >= 3


# ---------------------------------------------------------------- health


def test_health_and_readiness(settings: Settings) -> None:
    models = FakeModels()
    app = app_with(settings, models, rate_limit="1/minute")
    client = app.test_client()
    assert client.get("/api/health").json == {"status": "ok"}
    r = client.get("/api/ready")
    assert r.status_code == 503
    assert r.json["status"] == "not ready" and r.json["error"] == "Not ready"
    assert r.json["checks"]["database"] == "ok"
    assert "loading" in r.json["checks"]["model"] and "model" in r.json["message"]
    assert not models.touched  # asking never loads the model
    Student(client)  # the first session loads it (and uses the one request allowed)
    for _ in range(3):  # never rate limited
        r = client.get("/api/ready")
        assert r.status_code == 200
        assert r.json == {
            "status": "ready",
            "checks": {"database": "ok", "model": "ok"},
            "default_model": "fake",
        }


def test_not_ready_when_the_database_does_not_answer(settings: Settings) -> None:
    models = FakeModels()
    models.get("fake")
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
    from tokenwheel import create_app

    app = create_app(settings.with_overrides(database_url=url), models=models)
    r = app.test_client().get("/api/ready")
    assert r.status_code == 503
    assert r.json["checks"] == {"database": "The database did not answer.", "model": "ok"}
    assert "127.0.0.1" not in r.get_data(as_text=True)
