"""One-token steps on the optional quantized engine (llama.cpp on the GGUF file as
shipped) against our float32 torch engine, in the same process run: one sequence alone,
and batches of 8 and 30 sequences stepping at once (a class). Needs
``make install-quantized``. ``python -m tokenwheel.bench.quantized [model ...]``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from typing import Any

from .limits import floor, read_bandwidth_gbs, weight_bytes

BATCHES = (1, 8, 30)
CONTEXT = 64  # tokens of each sequence before its step


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def quantized_steps(model_id: str, cache_dir: str, repeats: int = 10) -> dict[str, Any]:
    """Median milliseconds of a step of ``n`` sequences at once, per engine."""
    import torch

    from ..inference.engine import InferenceEngine
    from ..inference.loading import gguf_path
    from ..inference.quantized import LlamaEngine
    from ..inference.registry import ModelRegistry
    from ..inference.types import InferenceOptions

    torch_side = ModelRegistry(InferenceOptions(cache_dir=cache_dir, offline=True))
    model = torch_side.get(model_id)
    threads = torch_side.engine.threads
    engines: dict[str, Any] = {
        "torch_float32": InferenceEngine(threads=threads),
        "llama_cpp": LlamaEngine(threads=threads),
    }
    quantized = engines["llama_cpp"].load(model.spec, torch_side.options, torch.float32)
    assert quantized.facts.output_rows >= model.vocabulary_size
    rng = random.Random(0)
    base = model.encode_prompt(" ".join(["lesson"] * 200))[:CONTEXT]
    rows: list[dict[str, Any]] = []
    try:
        for n in BATCHES:
            # n students, each on their own sequence (they differ in the last token)
            sequences = [[*base[:-1], 1000 + i] for i in range(n)]
            row: dict[str, Any] = {"sequences": n}
            for name, engine in engines.items():
                for ids in sequences:
                    engine.logits(model, ids)  # each student's prefill, paid once
                samples = []
                for _ in range(repeats):
                    for ids in sequences:
                        ids.append(rng.randrange(1000, 20000))
                    started = time.perf_counter()
                    futures = [engine.submit(model, ids) for ids in sequences]
                    for future in futures:
                        future.result()
                    samples.append(time.perf_counter() - started)
                row[f"{name}_ms"] = _median_ms(samples)
                for ids in sequences:
                    del ids[-repeats:]
            row["speedup"] = round(row["torch_float32_ms"] / row["llama_cpp_ms"], 1)
            rows.append(row)
        # the floor of a one-sequence step on each engine: the float32 weights, or about
        # the GGUF file as shipped (its tensors are what llama.cpp reads)
        shipped = gguf_path(model.spec, torch_side.options).stat().st_size
        bandwidth = read_bandwidth_gbs(threads)
        limits = {
            "torch_float32": floor(
                weight_bytes(model.model), bandwidth, rows[0]["torch_float32_ms"]
            ),
            "llama_cpp": floor(shipped, bandwidth, rows[0]["llama_cpp_ms"]),
        }
        return {
            "model": model_id,
            "context": CONTEXT,
            "threads": threads,
            "steps": rows,
            "limits": limits,
        }
    finally:
        for engine in engines.values():
            engine.shutdown()
        torch_side.shutdown()


if __name__ == "__main__":  # pragma: no cover - a measurement, run by hand
    cache = os.environ.get("TOKENWHEEL_MODEL_CACHE_DIR", "instance/model-cache")
    for model_id in sys.argv[1:] or ["smollm2-135m", "gemma-3-270m"]:
        print(json.dumps(quantized_steps(model_id, cache)), flush=True)
