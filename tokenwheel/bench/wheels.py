"""Where a wheel is built: in the server process from the vocabulary's logits (as before
issue 16's item 2), or in the inference process next to them (ours), timed in one run.

Run: ``python -m tokenwheel.bench.wheels [--model smollm2-135m] [--repeats 30]``. One
registry with the inference process, as ``tokenwheel serve`` runs it. Every wheel is
asked at a new temperature after logits already in the inference process's cache (so no
forward pass is timed, only what differs): "in the server" fetches the logits over the
pipe and does the float64 softmax, split, sums and descriptions on this thread (one
torch thread, as the server's request threads did); "in the inference process" asks the
question and gets the answer. Both wall time and this thread's CPU time are medians: the
CPU time is what a request thread takes from the GIL-bound server process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

PROMPTS = (
    "The lighthouse keeper climbed the spiral stairs",
    "def fibonacci(n):",
    "Once upon a time, in a small village by the sea,",
)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def run(model_id: str, cache_dir: str, repeats: int) -> dict[str, Any]:
    from ..inference import distribution as dist
    from ..inference.registry import ModelRegistry
    from ..inference.types import InferenceOptions
    from ..inference.wheels import one_torch_thread

    registry = ModelRegistry(
        InferenceOptions(cache_dir=cache_dir, offline=True, inference_process=True)
    )
    try:
        model = registry.get(model_id)
        texts = [model.encode_prompt(p) for p in PROMPTS]
        for ids in texts:
            registry.logits(model_id, ids)  # the forward passes, paid before timing
        timings: dict[str, dict[str, list[float]]] = {
            way: {"wall": [], "cpu": []} for way in ("server", "inference_process")
        }
        for i in range(repeats):
            ids = texts[i % len(texts)]
            temperature = 0.5 + i / 100  # a new temperature: nothing prepared yet
            wall, cpu = time.perf_counter(), time.thread_time()
            with one_torch_thread():
                prepared = dist.Prepared(registry.logits(model_id, ids), temperature)
                dist.build_distribution(prepared, 0.01, 10, model.token_info)
            timings["server"]["wall"].append(time.perf_counter() - wall)
            timings["server"]["cpu"].append(time.thread_time() - cpu)
            wall, cpu = time.perf_counter(), time.thread_time()
            registry.distribution(model_id, ids, temperature, 0.01, 10)
            timings["inference_process"]["wall"].append(time.perf_counter() - wall)
            timings["inference_process"]["cpu"].append(time.thread_time() - cpu)
        result: dict[str, Any] = {"model": model_id, "vocabulary": model.vocabulary_size}
        for way, samples in timings.items():
            result[f"{way}_wall_ms"] = _median_ms(samples["wall"])
            result[f"{way}_cpu_ms"] = _median_ms(samples["cpu"])
        result["server_cpu_ratio"] = round(
            result["server_cpu_ms"] / max(result["inference_process_cpu_ms"], 1e-6), 1
        )
        return result
    finally:
        registry.shutdown()


def main() -> None:
    from ..settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    cache_dir = str(Settings.from_env().cache_dir)
    print(json.dumps(run(args.model, cache_dir, args.repeats), indent=2))


if __name__ == "__main__":
    main()
