"""``tokenwheel bench``: the naive way and ours, on the same model, in one run.

The naive way is the seed's implementation note: every request runs the whole forward
pass over the whole context, with no caches and no batching (we feed it the id sequence;
re-tokenizing the text as the seed does costs well under a millisecond more and would
change the context, see docs/api.md). Ours is the default engine: logits cache, shared
KV prefixes, batched one-token steps.

Three parts, all printed as ratios against the naive way measured in the same process:
1. step latency at a context of 8, 64, 256 and 512 tokens (median of repeats), and a
   repeated query (cache hit), in-process;
2. a classroom over HTTP: N simulated students against a real ``tokenwheel serve`` on
   127.0.0.1, once with ``TOKENWHEEL_ENGINE=naive`` and once with ours;
3. the server's peak RSS, and its RSS after 30 sessions of 300 tokens each.
Results go to ``bench/results/latest.json`` and ``latest.png``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONTEXTS = (8, 64, 256, 512)
SHARED_PROMPT = "Our class is learning how a language model chooses the next word, and today"


# ------------------------------------------------------------------ in-process


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def step_latencies(model_id: str, cache_dir: str, repeats: int) -> dict[str, Any]:
    """Median time of one step (the distribution after one more token) at each context."""
    import torch

    from .inference.engine import InferenceEngine
    from .inference.registry import ModelRegistry
    from .inference.types import InferenceOptions

    registry = ModelRegistry(InferenceOptions(cache_dir=cache_dir, offline=True))
    model = registry.get(model_id)
    engine = InferenceEngine(threads=registry.engine.threads)
    torch.set_num_threads(registry.engine.threads)
    rng = random.Random(0)
    base = model.encode_prompt(" ".join(["lesson"] * 600))
    rows = []
    try:
        for n in CONTEXTS:
            ids = base[:n]
            naive, ours = [], []
            for _ in range(repeats):
                t = time.perf_counter()
                with torch.inference_mode():
                    model.logits(ids)
                naive.append(time.perf_counter() - t)
            engine.logits(model, ids)  # the prompt's prefill, paid once
            for _ in range(repeats):
                step = ids + [rng.randrange(1000, 20000)]
                t = time.perf_counter()
                engine.logits(model, step)
                ours.append(time.perf_counter() - t)
            rows.append({"context": n, "naive_ms": _median_ms(naive), "ours_ms": _median_ms(ours)})
        # a repeated query: the distribution a student already saw (undo, new threshold)
        ids = base[:64]
        registry.distribution(model_id, ids, 1.0, 0.01, 10)
        hits = []
        for i in range(repeats * 3):
            t = time.perf_counter()
            registry.distribution(model_id, ids, 1.0 + i / 1000, 0.01, 10)
            hits.append(time.perf_counter() - t)
        naive_64 = rows[1]["naive_ms"]
        return {
            "steps": rows,
            "cache_hit_ms": _median_ms(hits),
            "cache_hit_naive_ms": naive_64,
            "step_512_over_8": round(rows[-1]["ours_ms"] / rows[0]["ours_ms"], 2),
        }
    finally:
        engine.shutdown()
        registry.shutdown()


# ------------------------------------------------------------------ over HTTP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real ``tokenwheel serve`` on 127.0.0.1, stopped (whole process group) on exit.
    As a context manager it waits until the model is loaded and stops the server after."""

    def __init__(self, engine: str, model_id: str, cache_dir: str) -> None:
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
) -> ClassroomResult:
    """Each student creates a session, sets a shared (half of them) or own prompt, then
    loops next-token-probs -> append (about 1 in 5 on Other) -> sometimes undo.

    ``think=None`` is a saturation test: every student clicks again the moment an answer
    arrives. ``think=(lo, hi)`` is a class at work: each student looks at the wheel for a
    uniform ``lo`` to ``hi`` seconds before choosing (our page's spin alone animates for
    3.6 s)."""
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
            heads = dist["above_threshold_tokens"]
            if rng.random() < 0.2 or not heads:  # (a flat wheel can have no wedge at all)
                body: dict[str, Any] = {"category": "other"}
            else:
                token = rng.choices(heads, weights=[t["probability"] for t in heads])[0]
                body = {"token_id": token["token_id"]}
            status, _ = timed("append-token", "POST", f"{url}/append-token", body)
            if status == 200:
                with lock:
                    result.steps += 1
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


# ------------------------------------------------------------------ report


SCENARIOS = ("saturated", "paced")


def run(
    model_id: str,
    students: int,
    seconds: float,
    repeats: int,
    out_dir: Path,
    cache_dir: str,
    think: tuple[float, float] | None = (1.0, 3.0),
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "model": model_id,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor(),
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "students": students,
        "seconds": seconds,
        "think_s": list(think) if think else None,
    }
    print(f"[1/3] step latency in-process ({model_id}, {repeats} repeats)...", flush=True)
    report["in_process"] = step_latencies(model_id, cache_dir, repeats)
    report["classroom"] = {}
    for engine in ("naive", "fast"):
        result: dict[str, Any] = {}
        for scenario in SCENARIOS:
            pause = think if scenario == "paced" else None
            if scenario == "paced" and pause is None:
                continue
            pace = f"think {pause[0]:g}-{pause[1]:g} s" if pause else "no pause"
            print(
                f"[2/3] classroom over HTTP ({engine}, {scenario}): {students} students, "
                f"{seconds:g} s, {pace}, on a fresh server...",
                flush=True,
            )
            with Server(engine, model_id, cache_dir) as server:
                summary = classroom(server.port, students, seconds, think=pause).summary()
                summary.update(server.rss_mb())
                result[scenario] = summary
        result["peak_rss_mb"] = max(result[s]["peak_rss_mb"] for s in SCENARIOS if s in result)
        report["classroom"][engine] = result
    print("[3/3] memory: 30 sessions of 300 tokens on a fresh server...", flush=True)
    try:
        with Server("fast", model_id, cache_dir) as server:
            memory_phase(server.port, 30, 300)
            report["classroom"]["fast"]["after_30x300"] = server.rss_mb()
    except (RuntimeError, OSError) as exc:
        report["classroom"]["fast"]["after_30x300"] = {
            "error": str(exc),
            "rss_mb": -1,
            "peak_rss_mb": -1,
        }
    naive, fast = report["classroom"]["naive"], report["classroom"]["fast"]
    report["ratios"] = {
        "steps": [round(r["naive_ms"] / r["ours_ms"], 1) for r in report["in_process"]["steps"]],
    }
    for scenario in SCENARIOS:
        if scenario in fast:
            a, b = naive[scenario], fast[scenario]
            report["ratios"][scenario] = {
                "throughput": round(b["steps_per_s"] / max(a["steps_per_s"], 1e-9), 1),
                "p95_next_token_probs": round(
                    a["requests"]["next-token-probs"]["p95_ms"]
                    / max(b["requests"]["next-token-probs"]["p95_ms"], 1e-9),
                    1,
                ),
            }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    _chart(report, out_dir / "latest.png")
    print(format_table(report))
    print(f"\nwritten: {out_dir / 'latest.json'}, {out_dir / 'latest.png'}")
    return report


def format_table(report: dict[str, Any]) -> str:
    lines = [
        f"model {report['model']}, {report['machine']['cpus']} cores",
        "",
        "step latency (median, in-process)",
        f"{'context':>8} {'naive ms':>10} {'ours ms':>10} {'ratio':>7}",
    ]
    for row in report["in_process"]["steps"]:
        lines.append(
            f"{row['context']:>8} {row['naive_ms']:>10.1f} {row['ours_ms']:>10.1f} "
            f"{row['naive_ms'] / row['ours_ms']:>6.1f}x"
        )
    ip = report["in_process"]
    lines += [
        f"cache hit (repeated query, 64 tokens): {ip['cache_hit_ms']:.2f} ms "
        f"vs naive {ip['cache_hit_naive_ms']:.1f} ms "
        f"({ip['cache_hit_naive_ms'] / max(ip['cache_hit_ms'], 1e-9):.0f}x)",
        f"step at 512 / step at 8 (ours): {ip['step_512_over_8']}x",
    ]
    naive, fast = report["classroom"]["naive"], report["classroom"]["fast"]
    for scenario in SCENARIOS:
        if scenario not in fast:
            continue
        a, b = naive[scenario], fast[scenario]
        think = report.get("think_s") or [0, 0]
        pace = (
            f"each student thinks {think[0]:g}-{think[1]:g} s"
            if scenario == "paced"
            else "every student clicks again at once"
        )
        lines += [
            "",
            f"classroom over HTTP, {report['students']} students, {scenario}: {pace}",
            "(first-wheel: each student's first wheel, a prefill of the prompt, all at once;",
            " next-token-probs: every later wheel)",
        ]
        lines.append(f"{'':>24} {'naive':>10} {'ours':>10} {'ratio':>7}")
        lines.append(
            f"{'steps/s':>24} {a['steps_per_s']:>10.2f} {b['steps_per_s']:>10.2f} "
            f"{report['ratios'][scenario]['throughput']:>6.1f}x"
        )
        for kind in ("first-wheel", "next-token-probs", "append-token", "undo"):
            for q in ("p50_ms", "p95_ms"):
                x = a["requests"].get(kind, {}).get(q)
                y = b["requests"].get(kind, {}).get(q)
                if x is None or y is None:
                    continue
                lines.append(
                    f"{kind + ' ' + q[:3]:>24} {x:>10.1f} {y:>10.1f} {x / max(y, 1e-9):>6.1f}x"
                )
        lines.append(f"{'errors':>24} {str(a['errors']):>10} {str(b['errors']):>10}")
    lines += [
        "",
        f"peak RSS MB: naive {naive['peak_rss_mb']}, ours {fast['peak_rss_mb']}",
        f"server RSS after 30 sessions x 300 tokens (ours): "
        f"{fast['after_30x300']['rss_mb']} MB (peak {fast['after_30x300']['peak_rss_mb']} MB)",
    ]
    return "\n".join(lines)


def _chart(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (make bench installs it)")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = report["in_process"]["steps"]
    x = [r["context"] for r in rows]
    left.plot(x, [r["naive_ms"] for r in rows], "o-", label="naive (full forward)")
    left.plot(x, [r["ours_ms"] for r in rows], "o-", label="ours (KV prefix + cache)")
    left.set_xlabel("context (tokens)")
    left.set_ylabel("ms per step (median)")
    left.set_title("Step latency")
    left.legend()
    naive, fast = report["classroom"]["naive"], report["classroom"]["fast"]
    bars = [
        (f"{kind}\n{scenario}", scenario, kind)
        for scenario in SCENARIOS
        if scenario in fast
        for kind in ("next-token-probs", "append-token")
    ]
    width = 0.38
    for offset, (label, data) in enumerate((("naive", naive), ("ours", fast))):
        right.bar(
            [i + offset * width for i in range(len(bars))],
            [data[s]["requests"].get(k, {}).get("p95_ms", 0) for _, s, k in bars],
            width,
            label=label
            + ": "
            + ", ".join(f"{data[s]['steps_per_s']:.1f}" for s in SCENARIOS if s in fast)
            + " steps/s",
        )
    right.set_xticks([i + width / 2 for i in range(len(bars))], [b[0] for b in bars], fontsize=7)
    right.set_ylabel("p95 latency (ms)")
    right.set_yscale("log")
    right.set_title(f"Classroom over HTTP ({report['model']}, {report['students']} students)")
    right.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
