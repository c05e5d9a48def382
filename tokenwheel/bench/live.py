"""How long a stored event takes to reach a live stream (``GET .../classes/{code}/live``),
on SQLite and on PostgreSQL. ``python -m tokenwheel.bench.live [--events 100]
[--postgres URL]``; results in ``bench/results/live.json`` and docs/performance.md.

A real ``tokenwheel serve`` holds the stream; a separate process (:func:`writer`) writes
the events straight into the database, as another server would, and reports the moment
each commit returned. The delay of an event is the moment the stream's reader received
it minus that moment (same machine, same clock). Events are written one at a time, a
random 0-400 ms apart, so they fall anywhere in a poll's cycle.

``python -m tokenwheel.bench.live writer URL CLASS`` is the writer alone (the tests use
it): one session in the class; each line on stdin appends a token (or, every third
line, undoes one) and prints ``{"id": ..., "committed": time.time()}``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bench-live-teacher-token"


# ---------------------------------------------------------------- the writer process


def writer(url: str, class_code: str) -> None:
    from tokenwheel.domain import session as d
    from tokenwheel.domain.events import TokenFacts
    from tokenwheel.store.database import make_engine
    from tokenwheel.store.feed import SqlClassFeed
    from tokenwheel.store.sql import SqlEventStore

    engine = make_engine(url)
    store, feed = SqlEventStore(engine), SqlClassFeed(engine)
    now = datetime.now(UTC)
    events = d.create_session(str(uuid.uuid4()), "smollm2-135m", now, class_code=class_code)
    events += d.set_prompt(d.replay(events), "The cat sat on the", (504, 2644), now)  # type: ignore[arg-type]
    state = d.replay(events)
    assert state is not None
    store.append(events, 0, d.summarize(state))
    print(json.dumps({"ready": True, "session_id": state.session_id}), flush=True)
    for n, _line in enumerate(sys.stdin):
        if n % 3 == 2 and state.generated:
            new = d.undo(state, datetime.now(UTC))
        else:
            facts = TokenFacts(
                token_id=3 + n % 5,
                token_text=f" w{n}",
                probability=0.25,
                log_probability=-1.386,
                category="above_threshold",
                sampled_from_other=False,
                selection="explicit",
                threshold=0.01,
                temperature=1.0,
                rank=2,
            )
            new = d.append_token(state, facts, datetime.now(UTC), 512)
        after = state
        for event in new:
            after = d.apply(after, event)
        store.append(new, state.version, d.summarize(after))
        committed = time.time()
        state = after
        print(json.dumps({"id": feed.latest_event_id(), "committed": committed}), flush=True)
    engine.dispose()


class Writer:
    """The writer in its own process."""

    def __init__(self, url: str, class_code: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tokenwheel.bench.live", "writer", url, class_code],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.session_id = self._line()["session_id"]

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the writer process ended")
        return json.loads(line)  # type: ignore[no-any-return]

    def write(self) -> dict[str, Any]:
        """Write one event; its global id and when its commit returned."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ---------------------------------------------------------------- the stream's reader


def parse_frames(buffer: str) -> tuple[list[dict[str, str]], str]:
    """Complete SSE events in ``buffer`` (fields by name; comments dropped), and the rest."""
    frames = []
    while "\n\n" in buffer:
        block, buffer = buffer.split("\n\n", 1)
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        if fields:
            frames.append(fields)
    return frames, buffer


def read_stream(port: int, class_code: str, out: queue.Queue[tuple[float, dict[str, str]]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(
        "GET",
        f"/api/teacher/classes/{class_code}/live",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    response = conn.getresponse()
    assert response.status == 200, response.read()
    buffer = ""
    while True:
        try:
            chunk = response.read1(65536)
        except (OSError, http.client.HTTPException):
            return  # the server was stopped
        if not chunk:
            return
        received = time.time()
        frames, buffer = parse_frames(buffer + chunk.decode())
        for fields in frames:
            if "event" in fields:  # not the retry: hint
                out.put((received, fields))


# ---------------------------------------------------------------- one run


def measure(database_url: str, events: int) -> dict[str, Any]:
    from tokenwheel.bench.server import _free_port

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tokenwheel-bench-live-") as instance:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TOKENWHEEL_DATABASE_URL": database_url or f"sqlite:///{instance}/live.sqlite3",
            "TOKENWHEEL_INSTANCE_PATH": instance,
            "TOKENWHEEL_TEACHER_TOKEN": TOKEN,
            "TOKENWHEEL_OFFLINE": "true",
            "TOKENWHEEL_DEFAULT_MODEL": "smollm2-135m",
            "TOKENWHEEL_SCHEDULER": "false",
            "TOKENWHEEL_LOG_LEVEL": "WARNING",
            "TOKENWHEEL_LIVE_STREAM_DURATION": "1h",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "tokenwheel", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for(port)
            class_code = f"bench-{uuid.uuid4().hex[:8]}"
            received: queue.Queue[tuple[float, dict[str, str]]] = queue.Queue()
            threading.Thread(
                target=read_stream, args=(port, class_code, received), daemon=True
            ).start()
            assert received.get(timeout=30)[1]["event"] == "snapshot"
            writer_ = Writer(env["TOKENWHEEL_DATABASE_URL"], class_code)
            assert received.get(timeout=30)[1]["event"] == "join"
            assert received.get(timeout=30)[1]["event"] == "prompt"
            delays = []
            for _ in range(events):
                time.sleep(random.uniform(0, 0.4))
                written = writer_.write()
                when, fields = received.get(timeout=30)
                assert int(fields["id"]) == written["id"], (fields, written)
                delays.append(when - written["committed"])
            writer_.close()
        finally:
            os.killpg(server.pid, 15)
            server.wait(timeout=30)
    delays.sort()
    return {
        "events": len(delays),
        "median_ms": round(statistics.median(delays) * 1000, 1),
        "p95_ms": round(delays[int(0.95 * (len(delays) - 1))] * 1000, 1),
        "max_ms": round(delays[-1] * 1000, 1),
        "min_ms": round(delays[0] * 1000, 1),
    }


def _wait_for(port: int, timeout: float = 240) -> None:
    """Until the server is ready (its model loaded: measure on an idle server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the server did not start")


@contextlib.contextmanager
def _fresh_schema(url: str) -> Iterator[str]:
    """``url`` in a new schema of its database (search_path), dropped afterwards."""
    import sqlalchemy as sa

    schema = f"bench_live_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    fresh = sa.engine.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield fresh.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["writer"]:
        writer(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tokenwheel.bench.live")
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--output", default="bench/results/live.json")
    args = parser.parse_args(argv)
    with _fresh_schema(args.postgres) as postgres:
        postgresql = measure(postgres, args.events)
    results = {
        "sqlite": measure("", args.events),
        "postgresql": postgresql,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
