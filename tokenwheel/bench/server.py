"""A real ``tokenwheel serve`` on 127.0.0.1, its RSS, and keep-alive JSON requests to it."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real ``tokenwheel serve`` on 127.0.0.1, stopped (whole process group) on exit.
    As a context manager it waits until the model is loaded and stops the server after."""

    def __init__(self, engine: str, model_id: str, cache_dir: str, prefetch: bool = True) -> None:
        self.model_id = model_id
        self.port = _free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix=f"tokenwheel-bench-{engine}-")
        env = {
            **os.environ,
            "TOKENWHEEL_INSTANCE_PATH": self.tmp.name,
            "TOKENWHEEL_MODEL_CACHE_DIR": cache_dir,
            "TOKENWHEEL_OFFLINE": "true",
            "TOKENWHEEL_DEFAULT_MODEL": model_id,
            "TOKENWHEEL_PRELOAD": model_id,
            "TOKENWHEEL_ENGINE": engine,
            "TOKENWHEEL_PREFETCH": "1" if prefetch else "0",
            "TOKENWHEEL_SCHEDULER": "false",
            "TOKENWHEEL_LOG_LEVEL": "WARNING",
            "TOKENWHEEL_RATE_LIMIT": "100000/minute",
            "TOKENWHEEL_SESSIONS_PER_HOUR": "100000",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tokenwheel",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--threads",
                "48",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def __enter__(self) -> Server:
        try:
            self.wait_ready(self.model_id)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, model_id: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                status, body = request(self.port, "GET", "/api/models")
                if status == 200 and any(
                    m["id"] == model_id and m["loaded"] for m in body["models"]
                ):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError("server did not load the model in time")

    def rss_mb(self) -> dict[str, float]:
        """Current and peak RSS of the server's processes (master + workers)."""
        current = peak = 0.0
        for pid in _process_tree(self.proc.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    current += int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak += int(line.split()[1]) / 1024
        return {"rss_mb": round(current), "peak_rss_mb": round(peak)}

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.tmp.cleanup()


def _process_tree(root: int) -> list[int]:
    pids, frontier = [root], [root]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        for child in map(int, children):
            pids.append(child)
            frontier.append(child)
    return pids


_local = threading.local()


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on this thread's keep-alive connection; a connection the server closed
    while idle is reopened once."""
    payload = json.dumps(body) if body is not None else None
    for attempt in (1, 2):
        conn: Any = getattr(_local, "conn", None)
        fresh = conn is None or getattr(_local, "port", None) != port
        if fresh:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            _local.conn, _local.port = conn, port
        try:
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            _local.conn = None
            if fresh or attempt == 2:
                raise
            continue
        return response.status, json.loads(data) if data else None
    raise AssertionError("unreachable")
