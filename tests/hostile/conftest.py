"""Real servers for the hostile suite: ``tokenwheel serve`` (gunicorn, the bundled model)
on SQLite and on PostgreSQL, one each for the whole suite, plus a raw HTTP client that
sends whatever bytes a case holds (the Flask test client and http.client both refuse
to send most of them)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import fresh_schema
from tests.system.server import Client, Server
from tokenwheel.store.database import make_engine
from tokenwheel.store.tables import events

TEACHER_TOKEN = "hostile-teacher-token-0123456789"
CLASS = "hostile"
VICTIM_PROMPT = "The cat sat on the"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send_raw(
    port: int,
    data: bytes,
    *,
    half_close: bool = False,
    pause: float = 0.0,
    rest: bytes = b"",
    head: bool = False,
    timeout: float = 30.0,
) -> Answer | None:
    """Send ``data`` (then, after ``pause`` seconds, ``rest``) on a fresh connection and
    read one answer. ``half_close`` shuts our side down after sending, as a client that
    gives up on its body does. None when the server closed without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:  # the server may answer (and stop reading) before it has it all: 413
            sock.sendall(data)
            if pause:
                time.sleep(pause)
                sock.sendall(rest)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        response = http.client.HTTPResponse(sock, method="HEAD" if head else "GET")
        try:
            response.begin()
            body = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def request_bytes(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    content_type: str | None = "application/json",
    content_length: bool = True,
) -> bytes:
    """An HTTP/1.1 request as bytes, exactly as given (nothing is checked or escaped)."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {name.lower() for name, _ in items}
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if body is not None and content_type is not None and "content-type" not in names:
        lines.append(f"Content-Type: {content_type}")
    if body is not None and content_length and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in items]
    # UTF-8, not Latin-1: a client may send any bytes; the server reads them as Latin-1
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + (body or b"")


@dataclass
class HostileServer:
    name: str
    server: Server
    engine: sa.Engine
    victim: str  # a session with a prompt and one generated token
    log_offset: int = 0

    @property
    def port(self) -> int:
        return self.server.port

    def event_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())

    def new_log(self) -> str:
        """What the server logged since the last call."""
        text = self.server.output()
        new, self.log_offset = text[self.log_offset :], len(text)
        return new

    def new_session(self, prompt: str | None = VICTIM_PROMPT) -> str:
        client = Client(self.port)
        try:
            created = client.request("POST", "/api/sessions", {"class_code": CLASS})
            assert created.status == 201, created.body
            sid = str(created.body["session_id"])
            if prompt is not None:
                r = client.request("POST", f"/api/sessions/{sid}/set-prompt", {"prompt": prompt})
                assert r.status == 200, r.body
                r = client.request("POST", f"/api/sessions/{sid}/append-token", {"token_id": 2114})
                assert r.status == 200, r.body
            return sid
        finally:
            client.close()


@pytest.fixture(scope="session")
def pg_schema_url(pg_server: str) -> Iterator[str]:
    """A schema of its own in the test database, for the whole hostile suite."""
    with fresh_schema(pg_server, "hostile") as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def hostile(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileServer]:
    workdir: Path = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'tokenwheel.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_schema_url")
    server = Server(
        url,
        workdir,
        env={
            "TOKENWHEEL_RATE_LIMIT": "off",
            "TOKENWHEEL_LOW_THRESHOLD_RATE_LIMIT": "off",
            "TOKENWHEEL_SESSIONS_PER_HOUR": "0",
            "TOKENWHEEL_TEACHER_TOKEN": TEACHER_TOKEN,
            "TOKENWHEEL_SCHEDULER": "false",
        },
    )
    server.start()
    engine = make_engine(url)
    try:
        probe = HostileServer(request.param, server, engine, victim="")
        probe.victim = probe.new_session()
        probe.new_log()
        yield probe
        log = server.output()
        assert "Traceback" not in log, log[log.index("Traceback") - 2000 :][:6000]
    finally:
        server.stop()
        engine.dispose()
