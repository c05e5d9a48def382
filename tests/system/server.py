"""A real Token Wheel server for system tests: ``tokenwheel serve`` (gunicorn) on a free
127.0.0.1 port, the bundled model, and a small HTTP client. Loopback only."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import MODEL_CACHE

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = "smollm2-135m"
READY_TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


class Client:
    """One keep-alive connection; JSON in and out.

    Like any HTTP client with a connection pool, it sends a request again on a fresh
    connection when a reused one turns out to have been closed by the server while idle
    (gunicorn drops idle keep-alive connections after 2 s): such a request never reached
    the server. If the server is gone, the second attempt fails too and the error is
    raised."""

    def __init__(self, port: int, timeout: float = 60.0) -> None:
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None
        self.reused = False

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.reused = False
        data = None if body is None else json.dumps(body)
        send = {"Content-Type": "application/json"} if data is not None else {}
        try:
            self.conn.request(method, path, body=data, headers={**send, **(headers or {})})
            raw = self.conn.getresponse()
            payload = raw.read()
        except (ConnectionResetError, BrokenPipeError) as exc:  # incl. RemoteDisconnected
            stale = self.reused
            self.close()
            if stale:
                return self.request(method, path, body, headers)
            raise exc
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        self.reused = True
        text = payload.decode() if payload else ""
        parsed = (
            json.loads(text)
            if text and raw.getheader("Content-Type", "").startswith("application/json")
            else text
        )
        return Response(raw.status, parsed, {k.lower(): v for k, v in raw.getheaders()})

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Server:
    database_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.port = free_port()
        self.starts += 1
        env = {
            **os.environ,
            "TOKENWHEEL_DATABASE_URL": self.database_url,
            "TOKENWHEEL_INSTANCE_PATH": str(self.workdir),
            "TOKENWHEEL_OFFLINE": "true",
            "TOKENWHEEL_DEFAULT_MODEL": BUNDLED,
            "TOKENWHEEL_MODEL_CACHE_DIR": str(MODEL_CACHE),
            **self.env,
        }
        self.log = self.workdir / f"server-{self.starts}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tokenwheel",
                    "serve",
                    "--port",
                    str(self.port),
                    "--access-log",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill takes the workers too
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        client = Client(self.port, timeout=5)
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if client.request("GET", "/api/ready").status == 200:
                    client.close()
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(
            f"server not ready in {READY_TIMEOUT} s: {self.log.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL the whole process group (gunicorn's master and its workers)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")
