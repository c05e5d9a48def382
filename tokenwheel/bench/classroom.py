"""Simulated students over HTTP (the classroom) and the many-sessions memory phase."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .server import request

SHARED_PROMPT = "Our class is learning how a language model chooses the next word, and today"
SCENARIOS = ("saturated", "paced", "spinning")
# our page after a spin: the wheel turns for 3.6 s, then stays still for 0.9 s so that the
# student sees where it stopped, and only then asks for the next wheel (web/app.js)
SPIN_WATCH_S = 3.6 + 0.9


@dataclass
class ClassroomResult:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    errors: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, kind: str, seconds: float, status: int) -> None:
        self.latencies.setdefault(kind, []).append(seconds)
        if status >= 400:
            self.errors[status] = self.errors.get(status, 0) + 1

    def summary(self) -> dict[str, Any]:
        kinds = {}
        for kind, values in sorted(self.latencies.items()):
            ordered = sorted(values)
            kinds[kind] = {
                "count": len(ordered),
                "p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
                "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 1),
            }
        return {
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "steps_per_s": round(self.steps / self.seconds, 2) if self.seconds else 0.0,
            "requests": kinds,
            "errors": self.errors,
        }


def classroom(
    port: int,
    students: int,
    seconds: float,
    seed: int = 0,
    think: tuple[float, float] | None = None,
    spin_watch: float | None = None,
) -> ClassroomResult:
    """Each student creates a session, sets a shared (half of them) or own prompt, then
    loops next-token-probs -> append (about 1 in 5 on Other) -> sometimes undo.

    ``think=None`` is a saturation test: every student clicks again the moment an answer
    arrives. ``think=(lo, hi)`` is a class at work: each student looks at the wheel for a
    uniform ``lo`` to ``hi`` seconds before choosing (our page's spin alone animates for
    3.6 s). With ``spin_watch`` each student chooses as our page's Spin button does: a
    spin (``POST /spin``), watched for ``spin_watch`` seconds before the page asks for
    the next wheel; without it, a pick (``POST /append-token``) and the next wheel at
    once."""
    result = ClassroomResult()
    lock = threading.Lock()
    stop_at = [0.0]
    began = [0.0]

    def open_the_clock() -> None:
        # Runs once, before the barrier lets anyone through: a student that passed the
        # barrier must already see the stop time, or it would leave at once.
        began[0] = time.monotonic()
        stop_at[0] = began[0] + seconds

    start = threading.Barrier(students + 1, action=open_the_clock)

    def timed(kind: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        t = time.perf_counter()
        status, data = request(port, method, path, body)
        with lock:
            result.record(kind, time.perf_counter() - t, status)
        return status, data

    def student(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        status, created = request(port, "POST", "/api/sessions", {})
        url = f"/api/sessions/{created['session_id']}"
        prompt = SHARED_PROMPT if n % 2 == 0 else f"Student {n} writes a story about a {n} legged"
        request(port, "POST", f"{url}/set-prompt", {"prompt": prompt})
        start.wait()
        first = True
        while time.monotonic() < stop_at[0]:
            # a student's first wheel is a prefill of the prompt (the whole class asks at
            # once); every later one is a one-token step: reported apart
            kind = "first-wheel" if first else "next-token-probs"
            status, dist = timed(kind, "GET", f"{url}/next-token-probs")
            if status != 200:
                continue
            first = False
            if think is not None:
                time.sleep(rng.uniform(*think))
                if time.monotonic() >= stop_at[0]:
                    break
            if spin_watch is not None:
                status, _ = timed("spin", "POST", f"{url}/spin", {})
            else:
                heads = dist["above_threshold_tokens"]
                if rng.random() < 0.2 or not heads:  # (a flat wheel can have no wedge)
                    body: dict[str, Any] = {"category": "other"}
                else:
                    token = rng.choices(heads, weights=[t["probability"] for t in heads])[0]
                    body = {"token_id": token["token_id"]}
                status, _ = timed("append-token", "POST", f"{url}/append-token", body)
            if status == 200:
                with lock:
                    result.steps += 1
            if spin_watch is not None:
                time.sleep(spin_watch)
                if time.monotonic() >= stop_at[0]:
                    break
            if rng.random() < 0.15:
                timed("undo", "POST", f"{url}/undo")

    threads = [threading.Thread(target=student, args=(n,), daemon=True) for n in range(students)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join(timeout=seconds + 300)
    result.seconds = time.monotonic() - began[0]
    return result


def memory_phase(port: int, sessions: int, tokens: int) -> None:
    """``sessions`` sessions with ``tokens``-token contexts, each asked for its wheel."""
    for n in range(sessions):
        _, created = request(port, "POST", "/api/sessions", {})
        url = f"/api/sessions/{created['session_id']}"
        # a different start per session, so nothing is shared: about ``tokens`` tokens
        words = f"Session {n}:" + " lesson" * (tokens - 4)
        status, body = request(port, "POST", f"{url}/set-prompt", {"prompt": words})
        if status != 200:
            raise RuntimeError(body)
        request(port, "GET", f"{url}/next-token-probs")
