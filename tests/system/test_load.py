"""A class over HTTP: thirty students spin the wheel against a real server for a bounded
time (127.0.0.1 only, default limits, one address as behind a school's NAT), on SQLite and
on PostgreSQL.

Some students double-click: the same change sent twice at the same instant on two
connections, either with one Idempotency-Key (both answers must be the first one, one
event stored) or with the same If-Match version (one wins, the other is a 409 that stores
nothing). No 5xx, no 429 from the default limits, and the server stored exactly the
events the students saw succeed. The access log never shows a whole session id.
"""

from __future__ import annotations

import http.client
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.system.server import Client, Response, Server
from tokenwheel.store.database import make_engine
from tokenwheel.store.tables import events

STUDENTS = 30
SECONDS = 12.0
DOUBLE_CLICKS = 0.1  # of the appends
PROMPTS = ["The cat sat on the", "Once upon a time", "The best thing about school is"]


@dataclass
class Tally:
    session_id: str = ""
    events: int = 0  # changes that were applied: each stored exactly one event
    statuses: Counter[int] = field(default_factory=Counter)
    waits: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    replays: int = 0  # double clicks answered from the stored first response
    conflicts: int = 0  # double clicks refused with 409


def student(port: int, seed: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(seed)
    client, second = Client(port), Client(port)

    def timed(c: Client, method: str, path: str, body: Any, headers: dict[str, str]) -> Response:
        started = time.perf_counter()
        r = c.request(method, path, body, headers)
        tally.waits.append(time.perf_counter() - started)
        tally.statuses[r.status] += 1
        return r

    def call(method: str, path: str, body: object = None) -> Any:
        r = timed(client, method, path, body, {})
        if r.status in (200, 201) and method in ("POST", "DELETE"):
            tally.events += 1
        return r.body if r.status in (200, 201) else None

    def double_click(path: str, body: object, version: int) -> None:
        """The same append, twice at once, on two connections."""
        keyed = rng.random() < 0.5
        headers = (
            {"Idempotency-Key": str(uuid.uuid4())} if keyed else {"If-Match": f'W/"{version}"'}
        )
        answers: list[Response] = []
        barrier = threading.Barrier(2)

        def click(c: Client) -> None:
            barrier.wait()
            answers.append(timed(c, "POST", path, body, headers))

        other = threading.Thread(target=click, args=(second,))
        other.start()
        click(client)
        other.join(timeout=60)
        statuses = sorted(a.status for a in answers)
        if keyed:  # both get the first answer; one event
            assert statuses == [200, 200] and answers[0].body == answers[1].body, statuses
            assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 1
            tally.replays += 1
        else:  # one wins; the other decided on a version that is gone
            assert statuses == [200, 409], statuses
            loser = next(a for a in answers if a.status == 409)
            assert loser.body["version"] == version + 1
            tally.conflicts += 1
        tally.events += 1

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
                if rng.random() < DOUBLE_CLICKS:
                    double_click(f"{url}/append-token", body, wheel["version"])
                    generated += 1
                elif call("POST", f"{url}/append-token", body) is not None:
                    generated += 1
            if generated > 40:  # start a new text now and then
                call("POST", f"{url}/set-prompt", {"prompt": rng.choice(PROMPTS)})
                generated = 0
    except (AssertionError, OSError, http.client.HTTPException) as exc:
        tally.errors.append(repr(exc))
    finally:
        client.close()
        second.close()


@pytest.mark.server
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_class_of_thirty_over_http(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    server = Server(url, tmp_path)  # default limits
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
            t.join(timeout=SECONDS + 180)
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads)
        assert [t.errors for t in tallies] == [[]] * STUDENTS
        statuses = sum((t.statuses for t in tallies), Counter())
        assert not [s for s in statuses if s >= 500], statuses
        conflicts = sum(t.conflicts for t in tallies)
        assert statuses[409] == conflicts  # only the double clicks that lost
        assert set(statuses) <= {200, 201, 409}, statuses  # no 429 at default limits

        engine = make_engine(url)
        with engine.connect() as conn:
            stored = dict(
                conn.execute(
                    sa.select(events.c.session_id, sa.func.count()).group_by(events.c.session_id)
                ).all()
            )
        engine.dispose()
        assert stored == {t.session_id: t.events for t in tallies}  # nothing lost or extra

        # a body with no Content-Length (chunked) is cut off at the limit too: 413, JSON
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        chunks = (b"x" * 8192 for _ in range(16))  # 128 KiB, over the 64 KiB default
        conn.request(
            "POST",
            f"/api/sessions/{tallies[0].session_id}/set-prompt",
            body=chunks,
            headers={"Content-Type": "application/json"},
            encode_chunked=True,
        )
        answer = conn.getresponse()
        assert answer.status == 413 and b'"error"' in answer.read()
        conn.close()

        log = server.output()
        assert "GET /api/sessions/" in log  # the access log was on
        for t in tallies:
            assert t.session_id not in log and t.session_id[:8] in log

        waits = sorted(w for t in tallies for w in t.waits)
        requests = len(waits)
        replays = sum(t.replays for t in tallies)
        print(
            f"load on {backend}: {STUDENTS} students, {requests} requests in {elapsed:.1f} s "
            f"({requests / elapsed:.1f}/s), statuses {dict(statuses)}, "
            f"double clicks {replays} keyed (answered once, stored once) and {conflicts} "
            f"by version (409), median wait {statistics.median(waits) * 1000:.0f} ms, "
            f"p95 {waits[int(0.95 * (requests - 1))] * 1000:.0f} ms, "
            f"{sum(stored.values())} events stored = {sum(t.events for t in tallies)} "
            "successes seen, 5xx 0, events lost 0"
        )
    finally:
        server.stop()
