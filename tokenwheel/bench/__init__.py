"""``tokenwheel bench``: the naive way and ours, on the same model, in one run.

The naive way is the seed's implementation note: every request runs the whole forward
pass over the whole context, with no caches and no batching (we feed it the id sequence;
re-tokenizing the text as the seed does costs well under a millisecond more and would
change the context, see docs/api.md). Ours is the default engine: logits cache, shared
KV prefixes, batched one-token steps.

Five parts, all printed as ratios against the naive way measured in the same process:
1. step latency at a context of 8, 64, 256 and 512 tokens (median of repeats), and a
   repeated query (cache hit), in-process;
2. a classroom over HTTP: N simulated students against a real ``tokenwheel serve`` on
   127.0.0.1, once with ``TOKENWHEEL_ENGINE=naive`` and once with ours (the paced and
   spinning classes twice with ours: without prefetch and with it);
3. the server's peak RSS, and its RSS after 30 sessions of 300 tokens each;
4. the lab's answers (sample n = 1000, compare 20 steps, score 300 tokens), server-side
   medians, naive and ours (``tokenwheel.bench.lab``), and a wheel built from cached
   logits in the server process (before issue 16's item 2) and in the inference process
   (ours), wall and server CPU time (``tokenwheel.bench.wheels``);
5. the optional quantized engine (llama.cpp on the GGUF file as shipped) against our
   float32 torch engine, one to 30 sequences a step (``tokenwheel.bench.quantized``),
   when llama-cpp-python is installed (``make bench`` installs it).
Beside the one-token steps, the floor under them: the bytes a step reads over the memory
bandwidth measured in the same run (``tokenwheel.bench.limits``).
Results go to ``bench/results/latest.json`` and ``latest.png``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from . import lab, quantized, wheels
from .classroom import (
    SCENARIOS,
    SHARED_PROMPT,
    SPIN_WATCH_S,
    ClassroomResult,
    classroom,
    memory_phase,
)
from .report import _chart, format_table, ratios
from .server import ROOT, Server, request
from .steps import CONTEXTS, step_latencies

__all__ = [
    "CONTEXTS",
    "ROOT",
    "SCENARIOS",
    "SHARED_PROMPT",
    "ClassroomResult",
    "Server",
    "classroom",
    "format_table",
    "ratios",
    "memory_phase",
    "request",
    "run",
    "step_latencies",
]


def run(
    model_id: str,
    students: int,
    seconds: float,
    repeats: int,
    out_dir: Path,
    cache_dir: str,
    think: tuple[float, float] | None = (1.0, 3.0),
    lab_repeats: int = 3,
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
    print(f"[1/5] step latency in-process ({model_id}, {repeats} repeats)...", flush=True)
    report["in_process"] = step_latencies(model_id, cache_dir, repeats)
    report["classroom"] = {}
    for engine in ("naive", "fast"):
        result: dict[str, Any] = {}
        for scenario in SCENARIOS:
            pause = think if scenario != "saturated" else None
            if scenario != "saturated" and pause is None:
                continue
            watch = SPIN_WATCH_S if scenario == "spinning" else None
            pace = f"think {pause[0]:g}-{pause[1]:g} s" if pause else "no pause"
            pace += f", watch each spin {watch:g} s" if watch else ""
            # ours with a class at work runs twice: without prefetch (as before issue 16)
            # and with it (the default), so the report compares them in one run
            for prefetch in (False, True) if engine == "fast" and pause else (True,):
                name = scenario if prefetch else f"{scenario}-no-prefetch"
                print(
                    f"[2/5] classroom over HTTP ({engine}, {name}): {students} students, "
                    f"{seconds:g} s, {pace}, on a fresh server...",
                    flush=True,
                )
                with Server(engine, model_id, cache_dir, prefetch=prefetch) as server:
                    summary = classroom(
                        server.port, students, seconds, think=pause, spin_watch=watch
                    ).summary()
                    summary.update(server.rss_mb())
                    result[name] = summary
        result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in result.values())
        report["classroom"][engine] = result
    print("[3/5] memory: 30 sessions of 300 tokens on a fresh server...", flush=True)
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
    report["lab"] = {}
    for engine in ("naive", "fast"):
        print(f"[4/5] the lab's answers ({engine}, {lab_repeats} repeats)...", flush=True)
        report["lab"][engine] = lab.run(model_id, lab_repeats, engine)
    print("[4/5] a wheel built in the server and in the inference process...", flush=True)
    report["wheels"] = wheels.run(model_id, cache_dir, 30)
    problem = quantized_problem(model_id)
    if problem:
        report["quantized"] = {"skipped": problem}
    else:
        print("[5/5] the quantized engine against float32 torch, in-process...", flush=True)
        report["quantized"] = quantized.quantized_steps(model_id, cache_dir)
    report["ratios"] = ratios(report)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    _chart(report, out_dir / "latest.png")
    print(format_table(report))
    print(f"\nwritten: {out_dir / 'latest.json'}, {out_dir / 'latest.png'}")
    return report


def quantized_problem(model_id: str) -> str | None:
    """Why the quantized engine cannot be measured on ``model_id`` here (None: it can)."""
    from ..inference.catalog import CATALOG
    from ..inference.quantized import quantized_problem as problem

    spec = next((spec for spec in CATALOG if spec.id == model_id), None)
    return f"{model_id} is not a bundled model" if spec is None else problem(spec)
