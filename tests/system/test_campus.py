"""A campus over the balancer (docs/operations.md, "A campus").

HAProxy with deploy/haproxy.cfg in front of three ``tokenwheel serve``, all on one fresh
PostgreSQL schema and one fresh Redis key prefix, started by ``tokenwheel.campus`` as
``make campus`` starts them, on free 127.0.0.1 ports. A class of 30 behind one address
(127.0.0.1, as behind a school's NAT) works through a lesson with a client that does
what the page does (tokenwheel/web/api.js): one Idempotency-Key per change, and one
retry after 0.5 s with the same key when there is no answer or the balancer answers
502/503/504 itself. In the middle of the lesson the server that leads the purge is
SIGKILLed with its whole process group (gunicorn, worker, inference process).

Checked: every acknowledged change is stored, exactly once; each student of the dead
server goes on with the same session on one other server, with at most one failed
request and no failed action, and the other students never move; every wheel served
after the kill equals a direct forward pass on the session's token ids; the
sessions-per-hour limit is counted once across the three servers (Redis), whichever
server answers and whatever X-Forwarded-For a client sends; the purge runs once per
interval in all, in one server at a time, and goes on after its leader died; the
teacher sees every session through the balancer. The figures are printed and written
to test-artifacts/campus.json (docs/operations.md quotes them).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from tests.conftest import BUNDLED, IN_CI, MODEL_CACHE
from tests.system.server import Client, Response, free_port
from tokenwheel.campus import Campus, CampusError, find_haproxy
from tokenwheel.domain import session as d
from tokenwheel.store.database import make_engine
from tokenwheel.store.sql import SqlEventStore
from tokenwheel.store.tables import events

if TYPE_CHECKING:
    from tokenwheel.inference.registry import ModelRegistry

pytestmark = [pytest.mark.server, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACT = ROOT / "test-artifacts" / "campus.json"
STUDENTS = 30
STEPS = 16  # wheels, each followed by a choice (append, spin or undo)
THINK = (0.4, 1.2)  # seconds a student looks at the wheel (the page's spin alone takes 3.6)
KILL_AT = 0.4  # of the class's steps done
RETRY_PAUSE = 0.5  # api.js: RETRY_AFTER_MS
THRESHOLD = 0.01
TOLERANCE = 1e-4  # |dp| against a direct forward pass
PURGE_INTERVAL = 2.0
SESSIONS_PER_HOUR = 40  # per address: the class (30) and 3 more fit; 41 from one does not
LATE_DELETES = 3  # sessions deleted after the kill: the new purge leader must purge them
CLASS = "CAMPUS-1"
PROMPTS = [
    "The cat sat on the",
    "Once upon a time",
    "The best thing about school is",
    "In the beginning the",
    "My favourite food is",
    "The weather today is",
]
BALANCER_ERRORS = {502, 503, 504}


# ---------------------------------------------------------------- the page's client


@dataclass
class Attempt:
    """One HTTP request as sent (a retry is a second attempt of the same action)."""

    action: str
    started: float
    ended: float
    status: int | None  # None: no answer at all
    json: bool  # a Token Wheel server's answer (HAProxy's own errors are HTML)
    served_by: str | None  # HAProxy's X-Served-By (absent on its own errors)
    replayed: bool = False

    @property
    def failed(self) -> bool:
        """What api.js retries: no answer, or a 502/503/504 that is not our JSON."""
        return self.status is None or (self.status in BALANCER_ERRORS and not self.json)


class PageClient:
    """tokenwheel/web/api.js's ``send`` in Python: POSTs carry a fresh Idempotency-Key;
    no answer or a balancer's error is tried once more after 0.5 s with the same key."""

    def __init__(self, port: int, attempts: list[Attempt]) -> None:
        self.client = Client(port, timeout=120)
        self.attempts = attempts

    def send(self, method: str, path: str, body: Any = None) -> Response | None:
        headers = {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else {}
        action = path.rsplit("/", 1)[-1].split("?")[0]
        for attempt in (1, 2):
            if attempt == 2:
                time.sleep(RETRY_PAUSE)
            started = time.monotonic()
            try:
                r: Response | None = self.client.request(method, path, body, headers)
            except (OSError, http.client.HTTPException):
                r = None
            record = Attempt(
                action,
                started,
                time.monotonic(),
                r.status if r else None,
                r is not None and isinstance(r.body, dict),
                r.headers.get("x-served-by") if r else None,
                r is not None and r.headers.get("idempotent-replayed") == "true",
            )
            self.attempts.append(record)
            if not record.failed:
                return r
        return None

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------- a student


@dataclass
class Wheel:
    started: float
    ids: tuple[int, ...]  # the generated ids when it was asked for
    tokens: dict[int, float]  # above the threshold: token id -> probability


@dataclass
class Student:
    n: int
    prompt: str
    session_id: str = ""
    version: int = 0
    ids: list[int] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged: list[tuple[int, str, int | None]] = field(default_factory=list)
    wheels: list[Wheel] = field(default_factory=list)
    failed_actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    steps: int = 0


def lesson(student: Student, port: int, seed: int) -> None:
    rng = random.Random(seed)
    page = PageClient(port, student.attempts)

    def change(path: str, body: Any, event_type: str) -> dict[str, Any] | None:
        r = page.send("POST", path, body)
        if r is None:
            student.failed_actions.append(path)
            return None
        if r.status not in (200, 201):
            student.errors.append(f"{path}: {r.status} {r.body}")
            return None
        student.version = r.body["version"]
        student.ids = [t["token_id"] for t in r.body.get("token_history", [])]
        token = r.body.get("appended_token", {}).get("token_id")
        if event_type == "Undone":
            token = r.body["removed_token"]["token_id"]
        student.acknowledged.append((student.version, event_type, token))
        return dict(r.body)

    try:
        r = page.send("POST", "/api/sessions", {"class_code": CLASS})
        assert r is not None and r.status == 201, r
        student.session_id, student.version = r.body["session_id"], r.body["version"]
        url = f"/api/sessions/{student.session_id}"
        assert change(f"{url}/set-prompt", {"prompt": student.prompt}, "SetPrompt")
        query = f"temperature=1.0&threshold={THRESHOLD}&other_top_k=10"
        for _ in range(STEPS):
            started = time.monotonic()
            r = page.send("GET", f"{url}/next-token-probs?{query}")
            if r is None:
                student.failed_actions.append("next-token-probs")
                break
            if r.status != 200:
                student.errors.append(f"next-token-probs: {r.status} {r.body}")
                break
            wheel = r.body
            assert wheel["version"] == student.version, (wheel["version"], student.version)
            listed = {t["token_id"]: t["probability"] for t in wheel["above_threshold_tokens"]}
            student.wheels.append(Wheel(started, tuple(student.ids), listed))
            time.sleep(rng.uniform(*THINK))
            roll = rng.random()
            if student.ids and roll < 0.15:
                done = change(f"{url}/undo", {"expected_version": student.version}, "Undone")
            elif roll < 0.35:
                body = {"temperature": 1.0, "threshold": THRESHOLD}
                body["expected_version"] = wheel["version"]
                done = change(f"{url}/spin", body, "TokenAppended")
            else:
                pick: dict[str, Any] = (
                    {"token_id": rng.choice(list(listed))}
                    if listed and rng.random() < 0.8
                    else {"category": "other"}
                )
                body = {**pick, "temperature": 1.0, "threshold": THRESHOLD}
                body["expected_version"] = wheel["version"]
                done = change(f"{url}/append-token", body, "TokenAppended")
            if done is None:
                break
            student.steps += 1
    except Exception as exc:  # the test reads these after the class
        student.errors.append(repr(exc))
    finally:
        page.close()


# ---------------------------------------------------------------- what the test measures


def tree(pid: int) -> list[int]:
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        pids += map(int, children)
        frontier += map(int, children)
    return pids


def rss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:"))
        total += kb / 1024
    return round(total)


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def purge_runs(campus: Campus) -> list[tuple[float, str]]:
    """(wall time, server) of every purge run, from the servers' logs."""
    runs = []
    for server in campus.servers:
        for line in server.log.read_text(errors="replace").splitlines():
            match = LOG_TIME.match(line)
            if match and "purge ran in this process" in line:
                moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
                runs.append((moment.timestamp(), server.name))
    return sorted(runs)


def leader(campus: Campus, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leading = [
            s.name
            for s in campus.servers
            if "now leads the purge" in s.log.read_text(errors="replace")
        ]
        if leading:
            assert len(leading) == 1, leading
            return leading[0]
        time.sleep(0.2)
    raise AssertionError("no server took the lead of the purge")


def direct_distributions(
    registry: ModelRegistry, contexts: set[tuple[int, ...]]
) -> Iterator[tuple[tuple[int, ...], Any]]:
    """(ids, softmax of the next-token logits) for each context: straight through the
    transformers model, no Token Wheel code. A causal model's logits at position i see
    tokens 0..i only, so a context that is a prefix of a longer one is read at its
    position in that one's pass: one pass per branch of a student's text (an undo and a
    different token start a branch), not one per wheel. One torch thread: the servers
    are still running, and two threads fighting them for 2 cores run 5x slower."""
    import torch

    model = registry.get(BUNDLED).model
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        left = set(contexts)
        while left:
            longest = max(left, key=len)
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([list(longest)])).logits[0]
            for ids in [c for c in left if longest[: len(c)] == c]:
                yield ids, torch.softmax(logits[len(ids) - 1].double(), dim=-1)
                left.discard(ids)
    finally:
        torch.set_num_threads(threads)


def request(port: int, method: str, path: str, body: Any = None, **headers: str) -> Response:
    client = Client(port)
    try:
        return client.request(method, path, body, headers)
    finally:
        client.close()


def create_from(address: str, port: int, count: int) -> list[tuple[int, str | None, str]]:
    """``count`` sessions asked for from ``address`` (another loopback address: HAProxy
    sees it as the client), each with a made-up X-Forwarded-For the servers must ignore.
    (status, server, session id or Retry-After) of each."""
    answers = []
    for n in range(count):
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=60, source_address=(address, 0)
        )
        conn.request(
            "POST",
            "/api/sessions",
            body=json.dumps({"class_code": "LIMIT"}),
            headers={"Content-Type": "application/json", "X-Forwarded-For": f"10.0.{n}.1"},
        )
        r = conn.getresponse()
        body = json.loads(r.read())
        conn.close()
        detail = body.get("session_id") or r.getheader("Retry-After") or ""
        answers.append((r.status, r.getheader("X-Served-By"), detail))
    return answers


@pytest.fixture
def haproxy() -> str:
    try:
        return find_haproxy()
    except CampusError as exc:
        if IN_CI:
            pytest.fail(f"{exc} (required under CI)")
        pytest.skip(f"{exc} (skipped outside CI only)")


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    import redis

    prefix = f"tokenwheel-campus-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def test_a_class_of_thirty_over_the_balancer_survives_a_server_killed_mid_lesson(
    haproxy: str,
    pg_url: str,
    redis_url: str,
    redis_prefix: str,
    registry: ModelRegistry,
    tmp_path: Path,
) -> None:
    teacher = {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWHEEL_")}
    env.update(
        TOKENWHEEL_DATABASE_URL=pg_url,
        TOKENWHEEL_REDIS_URL=redis_url,
        TOKENWHEEL_REDIS_PREFIX=redis_prefix,
        TOKENWHEEL_INSTANCE_PATH=str(tmp_path),
        TOKENWHEEL_OFFLINE="true",
        TOKENWHEEL_DEFAULT_MODEL=BUNDLED,
        TOKENWHEEL_MODEL_CACHE_DIR=str(MODEL_CACHE),
        TOKENWHEEL_TEACHER_TOKEN=teacher["Authorization"].removeprefix("Bearer "),
        TOKENWHEEL_SESSIONS_PER_HOUR=str(SESSIONS_PER_HOUR),
        # the class is one address: 30 students at 2 requests a second would pass the
        # default 6000/minute in Redis, which now counts all three servers together
        TOKENWHEEL_RATE_LIMIT="20000/minute",
        TOKENWHEEL_PURGE_INTERVAL=f"{PURGE_INTERVAL}s",
        TOKENWHEEL_RETENTION="0",  # deleted sessions are purged at the next run
        HF_HUB_OFFLINE="1",
    )
    campus = Campus(
        port=free_port(),
        server_ports=[free_port() for _ in range(3)],
        env=env,
        log_dir=tmp_path / "campus",
        echo=False,
    )
    figures: dict[str, Any] = {"students": STUDENTS, "steps_each": STEPS, "think_s": THINK}
    started = time.monotonic()
    phases: dict[str, float] = {}
    campus.start()
    try:
        figures["start_s"] = round(time.monotonic() - started, 1)
        port = campus.port
        victim_name = leader(campus)
        victim = next(s for s in campus.servers if s.name == victim_name)

        phases["start"] = time.monotonic()
        # ---- rate limits count across the three servers (Redis)
        answers = create_from("127.0.0.2", port, SESSIONS_PER_HOUR + 1)
        statuses = [status for status, _, _ in answers]
        assert statuses == [201] * SESSIONS_PER_HOUR + [429], statuses
        served = Counter(server for status, server, _ in answers if status == 201)
        assert set(served) == {"s1", "s2", "s3"}, served  # each counted the others' too
        assert int(answers[-1][2]) >= 1  # Retry-After
        figures["sessions_per_hour_limit"] = {"limit": SESSIONS_PER_HOUR, "served_by": dict(served)}
        for _, _, session_id in answers[:-1]:  # for the purge: deleted now, purged next run
            assert request(port, "DELETE", f"/api/sessions/{session_id}").status == 200
        late = []
        for _ in range(LATE_DELETES):
            r = request(port, "POST", "/api/sessions", {"class_code": "LATE"})
            assert r.status == 201
            late.append(r.body["session_id"])

        phases["limits"] = time.monotonic()
        # ---- the lesson, and the kill in its middle
        students = [Student(n, PROMPTS[n % len(PROMPTS)]) for n in range(STUDENTS)]
        threads = [
            threading.Thread(target=lesson, args=(s, port, 1000 + s.n), name=f"student-{s.n}")
            for s in students
        ]
        lesson_started = time.monotonic()
        for t in threads:
            t.start()
        deadline = lesson_started + 180
        while sum(s.steps for s in students) < KILL_AT * STUDENTS * STEPS:
            assert time.monotonic() < deadline, "the class did not get half way"
            assert all(t.is_alive() for t in threads), [s.errors for s in students]
            time.sleep(0.05)
        victim_tree = tree(victim.proc.pid)
        figures["rss_mb"] = {victim.name: rss_mb(victim_tree)}
        killed_at, killed_wall = time.monotonic(), time.time()
        victim.kill()  # SIGKILL: gunicorn, its worker, its inference process
        for session_id in late:
            assert request(port, "DELETE", f"/api/sessions/{session_id}").status == 200
        for t in threads:
            t.join(timeout=max(1.0, deadline - time.monotonic()))
        lesson_seconds = time.monotonic() - lesson_started
        assert not any(t.is_alive() for t in threads)
        assert not [pid for pid in victim_tree if alive(pid)]  # nothing of it is left
        for server in campus.servers:
            if server is not victim:
                figures["rss_mb"][server.name] = rss_mb(tree(server.proc.pid))
        assert campus.haproxy is not None
        figures["rss_mb"]["haproxy"] = rss_mb([campus.haproxy.proc.pid])

        assert [s.errors for s in students] == [[]] * STUDENTS
        assert [s.failed_actions for s in students] == [[]] * STUDENTS  # retries all worked
        assert all(s.steps == STEPS for s in students)

        phases["lesson"] = time.monotonic()

        # ---- each session stays on one server; the dead server's move to one other
        def servers(s: Student, before: bool = False, after: float = 0.0) -> set[str | None]:
            """Where the session's requests went before the kill, or after a moment."""
            return {
                a.served_by
                for a in s.attempts
                if a.action != "sessions"  # creating a session has no session id yet
                and not a.failed
                and ((a.ended < killed_at) if before else (a.started > after))
            }

        # Until HAProxy marks the dead server down (at the first refused connection, or
        # two failed health checks), a request for it is sent again to a server of its
        # choosing, which need not be the one the hash ring picks once it is down.
        down_wall = marked_down(campus, victim.name)
        down_at = killed_at + (down_wall - killed_wall)
        affected = []
        homes = Counter[str | None]()
        for s in students:
            before, after = servers(s, before=True), servers(s, after=down_at)
            assert len(before) == 1, (s.n, before)
            homes.update(before)
            if before == {victim.name}:
                affected.append(s)  # goes on with the same session, on one other server
                assert len(after) == 1 and after != before, (s.n, after)
                assert victim.name not in servers(s, after=killed_at)
            else:
                assert after == before  # consistent hashing: only the dead server's move
            assert sum(a.failed for a in s.attempts) <= 1, s.attempts
        assert affected, "the killed server served nobody"

        phases["routing"] = time.monotonic()
        # ---- every acknowledged change is stored, once; the teacher sees every session
        engine = make_engine(pg_url)
        store = SqlEventStore(engine)
        for s in students:
            stream = store.load(s.session_id)
            assert [e.version for e in stream] == list(range(1, len(stream) + 1))
            assert len(stream) == 1 + len(s.acknowledged) and stream[-1].version == s.version
            for version, event_type, token in s.acknowledged:
                event = stream[version - 1]
                assert type(event).__name__ == event_type, (s.n, version)
                assert token is None or getattr(event, "token_id", None) == token
            state = d.replay(stream)
            assert state is not None and list(state.generated_ids) == s.ids
            assert list(state.prompt_token_ids) == registry.encode_prompt(BUNDLED, s.prompt)
        listing = f"/api/teacher/sessions?class_code={CLASS}&page_size=200"
        listed = request(port, "GET", listing, **teacher)
        assert listed.status == 200 and listed.body["total"] == STUDENTS
        assert {r["session_id"]: r["version"] for r in listed.body["sessions"]} == {
            s.session_id: s.version for s in students
        }
        one = affected[0].session_id
        detail = request(port, "GET", f"/api/teacher/sessions/{one}", **teacher)
        assert detail.status == 200 and detail.body["session"]["version"] == affected[0].version

        phases["stored"] = time.monotonic()
        # ---- every wheel after the kill equals a direct forward pass on the session's ids
        asked: dict[tuple[int, ...], list[Wheel]] = {}
        for s in students:
            prompt_ids = tuple(registry.encode_prompt(BUNDLED, s.prompt))
            for wheel in s.wheels:
                if wheel.started > killed_at:
                    asked.setdefault(prompt_ids + wheel.ids, []).append(wheel)
        worst = 0.0
        for ids, expected in direct_distributions(registry, set(asked)):
            for wheel in asked[ids]:
                for token_id, p in wheel.tokens.items():
                    worst = max(worst, abs(p - float(expected[token_id])))
                above = (expected >= THRESHOLD + TOLERANCE).nonzero().flatten().tolist()
                assert set(above) <= set(wheel.tokens), ids  # none missing from the wheel
        compared = sum(len(w) for w in asked.values())
        assert worst <= TOLERANCE, worst
        assert compared >= STUDENTS

        phases["wheels"] = time.monotonic()
        # ---- the purge: once per interval in all, one server at a time, on after the kill
        deleted = [session_id for _, _, session_id in answers[:-1]] + late
        wait_until = time.monotonic() + 5 * PURGE_INTERVAL + 5
        while True:
            with engine.connect() as conn:
                query = sa.select(sa.func.count()).where(events.c.session_id.in_(deleted))
                left = conn.execute(query).scalar_one()
            if left == 0 or time.monotonic() > wait_until:
                break
            time.sleep(0.5)
        assert left == 0, f"{left} events of deleted sessions were not purged"
        engine.dispose()
        runs = purge_runs(campus)
        ran_before = [name for moment, name in runs if moment < killed_wall]
        ran_after = [(moment, name) for moment, name in runs if moment > killed_wall]
        assert set(ran_before) == {victim.name}, Counter(ran_before)
        assert len({name for _, name in ran_after}) == 1, Counter(n for _, n in ran_after)
        span = runs[-1][0] - runs[0][0]
        intervals = len(runs) - 1  # between the first run and the last
        assert 0.5 * span / PURGE_INTERVAL <= intervals <= span / PURGE_INTERVAL + 2, (runs, span)
        handover = ran_after[0][0] - killed_wall
        assert handover <= 2 * PURGE_INTERVAL + 2, handover

        phases["purge"] = time.monotonic()
        # ---- the figures
        logged = haproxy_log(campus)
        attempts = [a for s in students for a in s.attempts]
        failed = [a for a in attempts if a.failed]
        served_again = [
            min(a.ended for a in s.attempts if not a.failed and a.ended > killed_at) - killed_at
            for s in students
        ]
        in_failover = [a for a in attempts if a.ended > killed_at and a.started < killed_at + 5]
        waits = [a.ended - a.started for a in attempts if not a.failed]
        by_action: dict[str, list[float]] = {}
        for a in attempts:
            if not a.failed:
                by_action.setdefault(a.action, []).append(a.ended - a.started)
        figures["wait_ms_p50_p95"] = {
            action: [round(percentile(w, 0.5) * 1000), round(percentile(w, 0.95) * 1000)]
            for action, w in sorted(by_action.items())
        }
        figures.update(
            lesson_s=round(lesson_seconds, 1),
            requests=len(attempts),
            requests_per_s=round(len(attempts) / lesson_seconds, 1),
            median_wait_ms=round(percentile(waits, 0.5) * 1000),
            p95_wait_ms=round(percentile(waits, 0.95) * 1000),
            killed=victim.name,
            killed_after_s=round(killed_at - lesson_started, 1),
            marked_down_after_ms=round((down_wall - killed_wall) * 1000),
            students_on_killed_server=len(affected),
            sessions_per_server=dict(sorted(homes.items())),
            failed_requests=len(failed),
            failed_requests_by_status=dict(Counter(str(a.status) for a in failed)),
            failed_actions=0,
            replayed_by_key=sum(a.replayed for a in attempts),
            slowest_request_in_failover_ms=round(
                max(a.ended - a.started for a in in_failover) * 1000
            ),
            every_student_served_again_after_s=round(max(served_again), 2),
            affected_students_served_again_after_s=round(
                max(served_again[s.n] for s in affected), 2
            ),
            wheels_compared_after_kill=compared,
            max_abs_dp=worst,
            events_stored=sum(1 + len(s.acknowledged) for s in students),
            purge_runs=len(runs),
            purge_span_s=round(span, 1),
            purge_interval_s=PURGE_INTERVAL,
            purge_handover_s=round(handover, 1),
            haproxy={
                "requests": len(logged),
                "retried": sum(r.retries > 0 for r in logged),
                "redispatched": sum(r.redispatched for r in logged),
                "answered_502_503_504": sum(r.status in BALANCER_ERRORS for r in logged),
            },
        )
        marks = [started, *phases.values()]
        figures["phases_s"] = {
            name: round(end - begin, 1)
            for name, begin, end in zip(phases, marks[:-1], marks[1:], strict=True)
        }
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        ARTIFACT.write_text(json.dumps(figures, indent=2) + "\n")
        print(summary(figures))
    finally:
        campus.stop()


def summary(f: dict[str, Any]) -> str:
    rss = ", ".join(f"{name} {mb}" for name, mb in f["rss_mb"].items())
    return (
        f"campus: 3 servers and HAProxy ready in {f['start_s']} s; {f['students']} students, "
        f"{f['requests']} requests in {f['lesson_s']} s ({f['requests_per_s']}/s, median "
        f"{f['median_wait_ms']} ms, p95 {f['p95_wait_ms']} ms); {f['killed']} (the purge "
        f"leader, {f['students_on_killed_server']} of the sessions) SIGKILLed after "
        f"{f['killed_after_s']} s and out of HAProxy {f['marked_down_after_ms']} ms later; "
        f"failed requests {f['failed_requests']} (HAProxy sent "
        f"{f['haproxy']['redispatched']} again elsewhere), failed actions 0; every student "
        f"served again within {f['every_student_served_again_after_s']} s (slowest request "
        f"of the failover {f['slowest_request_in_failover_ms']} ms); "
        f"{f['wheels_compared_after_kill']} wheels after the kill = a direct forward pass "
        f"(max |dp| {f['max_abs_dp']:.1e}); {f['events_stored']} events stored = the "
        f"acknowledged ones; {f['sessions_per_hour_limit']['limit']} sessions an hour counted "
        f"across s1/s2/s3; purge {f['purge_runs']} runs in {f['purge_span_s']} s (interval "
        f"{f['purge_interval_s']} s), taken over in {f['purge_handover_s']} s; RSS MB {rss}; "
        f"figures in {ARTIFACT.relative_to(ROOT)}"
    )


@dataclass
class Logged:
    """One request in HAProxy's log (deploy/haproxy.cfg's log-format)."""

    server: str
    status: int
    retries: int  # its %rc: attempts after the first
    redispatched: bool  # "+": sent to another server than the hash chose
    path: str  # session ids cut to 8 characters


LOG_LINE = re.compile(
    r"\] \S+ tokenwheel/(\S+) \S+ (\d{3}) \d+ \S{4} \d+/\d+/\d+/\d+/(\+?)(\d+) \S+ \S+ (\S+)$"
)


def haproxy_log(campus: Campus) -> list[Logged]:
    assert campus.haproxy is not None
    logged = []
    for line in campus.haproxy.log.read_text(errors="replace").splitlines():
        match = LOG_LINE.search(line)
        if match:
            server, status, plus, retries, path = match.groups()
            logged.append(Logged(server, int(status), int(retries), plus == "+", path))
    return logged


def marked_down(campus: Campus, name: str) -> float:
    """When HAProxy took server ``name`` out (wall time, from its log)."""
    assert campus.haproxy is not None
    for line in campus.haproxy.log.read_text(errors="replace").splitlines():
        if f"Server tokenwheel/{name} is DOWN" in line and line[:4].isdigit():
            return datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()
    raise AssertionError(f"HAProxy never marked {name} down")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status
