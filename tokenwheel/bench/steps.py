"""In-process step latency: the naive forward pass against our engine, at each context."""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from .limits import step_floor

CONTEXTS = (8, 64, 256, 512)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def step_latencies(model_id: str, cache_dir: str, repeats: int) -> dict[str, Any]:
    """Median time of one step (the distribution after one more token) at each context."""
    import torch

    from ..inference.engine import InferenceEngine
    from ..inference.registry import ModelRegistry
    from ..inference.types import InferenceOptions

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
            # ours at the shortest context against the bytes it reads / the bandwidth
            "limit": step_floor(model.model, registry.engine.threads, rows[0]["ours_ms"]),
        }
    finally:
        engine.shutdown()
        registry.shutdown()
