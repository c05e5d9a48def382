"""JSON bodies are read in one place, and whatever cannot be read is a 400 JSON error
that stores nothing and never reaches the model: nesting past the documented depth,
integers longer than any documented number, NaN and infinities, text that is not
Unicode (a lone surrogate), bytes that are not UTF-8. On the fake model; the hostile
suite (tests/hostile) sends the same against a real server."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData
from werkzeug.exceptions import ClientDisconnected

from tests.api.conftest import Student, make_app
from tests.api.test_errors import assert_error, event_count
from tests.api.test_protection import CountingModels
from tokenwheel.domain import rules
from tokenwheel.settings import Settings

JSON = "application/json"


@pytest.fixture
def counted(settings: Settings) -> tuple[Flask, CountingModels, Student]:
    models = CountingModels()
    app = make_app(settings, models)  # type: ignore[arg-type]
    student = Student(app.test_client())
    student.prompt("The cat")
    return app, models, student


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


DIGITS = "9" * 5000
# (path after the session url, raw body): each must be 400 before any model work
UNREADABLE: list[tuple[str, str | bytes]] = [
    ("append-token", nested(3000)),
    ("append-token", nested(rules.MAX_JSON_DEPTH + 1)),
    ("append-token", '{"token_id": ' + nested_objects(3000) + "}"),
    ("set-prompt", '{"prompt": "x", "extra": ' + nested(30_000, '"deep"') + "}"),
    ("spin", f'{{"seed": {DIGITS}}}'),
    ("append-token", f'{{"token_id": {DIGITS}}}'),
    ("append-token", f'{{"token_id": -{DIGITS}}}'),
    ("undo", f'{{"expected_version": {DIGITS}}}'),
    ("append-token", '{"token_id": 1' + "0" * rules.MAX_JSON_INTEGER_DIGITS + "}"),
    ("append-token", '{"token_id": 3, "threshold": NaN}'),
    ("append-token", '{"token_id": 3, "temperature": Infinity}'),
    ("append-token", '{"token_id": 3, "temperature": -Infinity}'),
    ("append-token", '{"token_id": 3, "temperature": 1e999}'),
    ("set-prompt", '{"prompt": "a\\ud800b"}'),
    ("set-prompt", '{"prompt": "\\udc00"}'),
    ("set-prompt", '{"prompt": "The cat", "\\ud800": 1}'),
    ("set-prompt", '{"prompt": ["a", {"b": "\\udfff"}]}'),
    ("append-token", '{"token_text": "\\ud83d"}'),
    ("set-prompt", b'{"prompt": "caf\xe9"}'),  # Latin-1, not UTF-8
    ("set-prompt", b'{"prompt": "\xed\xa0\x80"}'),  # a surrogate encoded in UTF-8
    ("set-prompt", b'\xef\xbb\xbf{"prompt": "bom"}'),
]


@pytest.mark.parametrize(("path", "body"), UNREADABLE, ids=lambda v: repr(v)[:40])
def test_an_unreadable_body_is_400_json_and_reaches_nothing(
    counted: tuple[Flask, CountingModels, Student], path: str, body: str | bytes
) -> None:
    app, models, student = counted
    before, encoded = event_count(app), models.encoded
    r = student.client.post(f"{student.url}/{path}", data=body, content_type=JSON)
    error = assert_error(r, 400)
    assert "json" in error.get("errors", {}), error
    assert event_count(app) == before and models.encoded == encoded


def test_create_session_reads_its_body_the_same_way(fake_app: Flask) -> None:
    client = fake_app.test_client()
    for body in (nested(3000), f'{{"seed": {DIGITS}}}', '{"class_code": "\\ud800"}'):
        assert_error(client.post("/api/sessions", data=body, content_type=JSON), 400)
    assert event_count(fake_app) == 0


def test_the_limits_are_the_documented_ones(
    counted: tuple[Flask, CountingModels, Student],
) -> None:
    """Nesting up to the limit and integers up to the limit's digits are read (and then
    judged by the schema); one more is refused by the reader, with the limit named."""
    _, _, student = counted
    url = f"{student.url}/append-token"
    at_limit = '{"token_id": 3, "x": ' + nested(rules.MAX_JSON_DEPTH - 1) + "}"
    r = student.client.post(url, data=at_limit, content_type=JSON)
    assert assert_error(r, 400)["errors"] == {"x": ["Unknown field."]}
    too_deep = '{"token_id": 3, "x": ' + nested(rules.MAX_JSON_DEPTH) + "}"
    r = student.client.post(url, data=too_deep, content_type=JSON)
    assert str(rules.MAX_JSON_DEPTH) in assert_error(r, 400)["message"]
    longest = "9" * rules.MAX_JSON_INTEGER_DIGITS
    r = student.client.post(url, data=f'{{"token_id": {longest}}}', content_type=JSON)
    assert "json" not in assert_error(r, 400).get("errors", {})  # out of the vocabulary
    r = student.client.post(url, data=f'{{"token_id": {longest}9}}', content_type=JSON)
    assert str(rules.MAX_JSON_INTEGER_DIGITS) in assert_error(r, 400)["message"]
    # strings that merely look like the refused things are fine
    for text in ("[[[[", "NaN", "\\ud800 as text", "9" * 100):
        appended = student.client.post(
            f"{student.url}/set-prompt", json={"prompt": f"The cat {text}"}
        )
        assert appended.status_code == 200, appended.json


def test_a_valid_surrogate_pair_is_one_character(
    counted: tuple[Flask, CountingModels, Student],
) -> None:
    _, _, student = counted
    r = student.client.post(
        f"{student.url}/set-prompt", data='{"prompt": "The cat \\ud83d\\ude00"}', content_type=JSON
    )
    assert r.status_code == 200 and r.json["current_text"] == "The cat \U0001f600"


def test_flask_reads_json_with_the_same_reader(fake_app: Flask) -> None:
    """request.get_json (the Idempotency-Key's request hash reads the body with it) goes
    through the same reader as the schemas: no path around the limits."""
    from flask import request

    for body in (nested(3000), f"[{DIGITS}]", '"\\ud800"', "NaN"):
        with fake_app.test_request_context("/", method="POST", data=body, content_type=JSON):
            assert request.get_json(silent=True) is None
    with fake_app.test_request_context("/", method="POST", data="[1, 2.5]", content_type=JSON):
        assert request.get_json() == [1, 2.5]


# ---------------------------------------------------------------- reading the body


class FailingStream(io.BytesIO):
    """A WSGI input that fails part way, as gunicorn's does on a malformed chunked body
    (InvalidChunkSize, ChunkMissingTerminator, NoMoreData) or a dropped connection."""

    def __init__(self, head: bytes, error: Exception) -> None:
        super().__init__(head)
        self.error = error

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if data:
            return data
        raise self.error


CHUNKED = {"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}


@pytest.mark.parametrize(
    "error",
    [
        InvalidChunkSize(b"zz"),
        ChunkMissingTerminator(b"xx"),
        NoMoreData(b""),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        ClientDisconnected(),
    ],
    ids=lambda e: type(e).__name__,
)
@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "with-length"])
def test_a_body_the_server_cannot_read_is_400_and_stores_nothing(
    counted: tuple[Flask, CountingModels, Student], error: Exception, chunked: bool
) -> None:
    app, models, student = counted
    before, encoded = event_count(app), models.encoded
    body = b'{"prompt": "The cat sat"}'
    r = student.client.post(
        f"{student.url}/set-prompt",
        input_stream=FailingStream(body[:10], error),
        content_type=JSON,
        environ_overrides=CHUNKED if chunked else {"CONTENT_LENGTH": str(len(body))},
    )
    message = assert_error(r, 400)["message"]
    assert "could not be read" in message
    assert event_count(app) == before and models.encoded == encoded


@pytest.mark.parametrize("path", ["set-prompt", "append-token", "undo", ""])
def test_a_body_shorter_than_its_content_length_is_400_and_stores_nothing(
    counted: tuple[Flask, CountingModels, Student], path: str
) -> None:
    """``{"prompt":"lie"}`` with ``Content-Length: 66``, then the client closes its side:
    the server had read 16 bytes of valid JSON and stored the event."""
    app, _, student = counted
    before = event_count(app)
    body = {"set-prompt": b'{"prompt":"lie"}', "append-token": b'{"token_id":4}'}.get(path, b"{}")
    r = student.client.open(
        f"{student.url}/{path}".rstrip("/"),
        method="DELETE" if path == "" else "POST",
        input_stream=io.BytesIO(body),
        content_type=JSON,
        environ_overrides={"CONTENT_LENGTH": "66"},
    )
    assert f"{len(body)} of the 66 bytes" in assert_error(r, 400)["message"]
    assert event_count(app) == before


def test_a_chunked_body_reaches_the_view_whole(
    counted: tuple[Flask, CountingModels, Student],
) -> None:
    _, _, student = counted
    r = student.client.post(
        f"{student.url}/set-prompt",
        input_stream=io.BytesIO(b'{"prompt": "The cat sat"}'),
        content_type=JSON,
        environ_overrides=CHUNKED,
    )
    assert r.status_code == 200 and r.json["current_text"] == "The cat sat"


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate,chunked", "chunked, chunked"])
def test_a_transfer_coding_other_than_chunked_is_400(fake_app: Flask, coding: str) -> None:
    """gunicorn passes "gzip, chunked" on still compressed; an empty one made a session."""
    r = fake_app.test_client().post(
        "/api/sessions",
        input_stream=io.BytesIO(b""),
        content_type=JSON,
        environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": coding},
    )
    assert "Transfer-Encoding" in assert_error(r, 400)["message"]
    assert event_count(fake_app) == 0
