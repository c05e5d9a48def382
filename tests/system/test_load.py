"""A class over HTTP: ten students spin the wheel against a real server for a bounded
time (127.0.0.1 only, default limits, one address as behind a school's NAT, PostgreSQL).

No 5xx, no 429 from the default limits, and the server stored exactly the events the
students saw succeed. The access log never shows a whole session id.
"""

from __future__ import annotations

import http.client
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.system.server import Client, Server
from tokenwheel.store.database import make_engine
from tokenwheel.store.tables import events

STUDENTS = 10
SECONDS = 10.0
PROMPTS = ["The cat sat on the", "Once upon a time", "The best thing about school is"]


@dataclass
class Tally:
    session_id: str = ""
    events: int = 0  # mutations that succeeded: each stored exactly one event
    statuses: Counter[int] = field(default_factory=Counter)
    waits: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def student(port: int, seed: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(seed)
    client = Client(port)

    def call(method: str, path: str, body: object = None) -> object:
        started = time.perf_counter()
        r = client.request(method, path, body)
        tally.waits.append(time.perf_counter() - started)
        tally.statuses[r.status] += 1
        if r.status in (200, 201) and method == "POST":
            tally.events += 1
        if r.status in (200, 201) and method == "DELETE":
            tally.events += 1
        return r.body if r.status in (200, 201) else None

    try:
        created = call("POST", "/api/sessions", {})
        assert isinstance(created, dict)
        tally.session_id = created["session_id"]
        url = f"/api/sessions/{tally.session_id}"
        call("POST", f"{url}/set-prompt", {"prompt": rng.choice(PROMPTS)})
        generated = 0
        while time.monotonic() < deadline:
            wheel = call("GET", f"{url}/next-token-probs")
            roll = rng.random()
            if generated and roll < 0.15:
                if call("POST", f"{url}/undo") is not None:
                    generated -= 1
            elif roll < 0.3 or not isinstance(wheel, dict):
                if call("POST", f"{url}/append-token", {"category": "other"}) is not None:
                    generated += 1
            else:
                pick = rng.choice(wheel["above_threshold_tokens"] or [{"token_id": 13}])
                body = {"token_id": pick["token_id"]}
                if call("POST", f"{url}/append-token", body) is not None:
                    generated += 1
            if generated > 40:  # start a new text now and then
                call("POST", f"{url}/set-prompt", {"prompt": rng.choice(PROMPTS)})
                generated = 0
    except (AssertionError, OSError, http.client.HTTPException) as exc:
        tally.errors.append(repr(exc))
    finally:
        client.close()


@pytest.mark.server
def test_a_class_of_ten_over_http(pg_url: str, tmp_path: Path) -> None:
    server = Server(pg_url, tmp_path)  # default limits
    server.start()
    try:
        tallies = [Tally() for _ in range(STUDENTS)]
        started = time.monotonic()
        deadline = started + SECONDS
        threads = [
            threading.Thread(target=student, args=(server.port, n, deadline, tallies[n]))
            for n in range(STUDENTS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 120)
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads)
        assert [t.errors for t in tallies] == [[]] * STUDENTS
        statuses = sum((t.statuses for t in tallies), Counter())
        assert not [s for s in statuses if s >= 500], statuses
        assert set(statuses) <= {200, 201}, statuses  # no 409, no 429 at default limits

        engine = make_engine(pg_url)
        with engine.connect() as conn:
            stored = dict(
                conn.execute(
                    sa.select(events.c.session_id, sa.func.count()).group_by(events.c.session_id)
                ).all()
            )
        engine.dispose()
        assert stored == {t.session_id: t.events for t in tallies}  # nothing lost or extra

        log = server.output()
        assert "GET /api/sessions/" in log  # the access log was on
        for t in tallies:
            assert t.session_id not in log and t.session_id[:8] in log

        waits = sorted(w for t in tallies for w in t.waits)
        requests = len(waits)
        print(
            f"load: {STUDENTS} students, {requests} requests in {elapsed:.1f} s "
            f"({requests / elapsed:.1f}/s), statuses {dict(statuses)}, "
            f"median wait {statistics.median(waits) * 1000:.0f} ms, "
            f"p95 {waits[int(0.95 * (requests - 1))] * 1000:.0f} ms, "
            f"{sum(stored.values())} events stored = {sum(t.events for t in tallies)} "
            "successes seen, 5xx 0, events lost 0"
        )
    finally:
        server.stop()
