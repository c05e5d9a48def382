"""The lab's heavy answers, timed on the server side: ``sample`` (n = 1000), ``compare``
(20 steps) and ``score`` (a 300-token text), median of several runs each.

Run: ``python -m tokenwheel.bench.lab [--model smollm2-135m] [--repeats 7]``. The app is
built as ``tokenwheel serve`` builds it (forward passes in the inference process, the
fast engine) on a throwaway SQLite database, and requests go through Flask's test client:
the time is the server's (parsing, the service, the model, JSON), without the network.
Each run asks a fresh text, so no cached logits make a later run cheaper than a first:
``compare`` runs after the session's wheel was shown (as a student would ask it), so
its first step is the wheel's cached distribution and every other step one new token
per path; ``score`` is one full forward pass (it uses no cache).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PARAGRAPH = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, carrying a "
    "small brass lamp and a notebook in which she wrote the weather, the ships she saw "
    "and the birds that rested on the railing. Over forty years the notebooks filled a "
    "whole shelf, and the village children liked to read them aloud on winter nights. "
)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def _timed(client: Any, path: str, body: dict[str, Any], status: int = 200) -> tuple[float, Any]:
    start = time.perf_counter()
    r = client.post(path, json=body)
    elapsed = time.perf_counter() - start
    assert r.status_code == status, (path, r.status_code, r.json)
    return elapsed, r.json


def run(model: str, repeats: int, engine: str = "fast") -> dict[str, Any]:
    """The lab's three answers on ``engine``: ours (``fast``, as ``tokenwheel serve``
    runs it) or the seed's ``naive`` way (every step a whole forward pass in the server's
    process, no caches, no batching)."""
    from tokenwheel import create_app
    from tokenwheel.settings import Settings
    from tokenwheel.store import migrate

    folder = Path(tempfile.mkdtemp(prefix="tokenwheel-bench-lab-"))
    settings = Settings.from_env().with_overrides(
        instance_path=folder,
        database_url=f"sqlite:///{folder / 'bench.sqlite3'}",
        scheduler_enabled=False,
        offline=True,
        default_model=model,
        rate_limit="",
        sessions_per_hour=0,
        low_threshold_rate_limit="",
        engine=engine,
    )
    app = create_app(settings)
    migrate.upgrade(app.extensions["tokenwheel.engine"])
    client = app.test_client()
    registry = app.extensions["tokenwheel.models"]
    try:
        ids = registry.encode_prompt(model, PARAGRAPH * 6)
        sample, compare, score, steps_done = [], [], [], []
        for i in range(repeats + 1):  # the first run of each warms up and is not counted
            _, created = _timed(client, "/api/sessions", {"model_name": model}, status=201)
            sid = created["session_id"]
            url = f"/api/sessions/{sid}"
            prompt = f"Story number {i}. Once upon a time, in a village by the sea,"
            client.post(f"{url}/set-prompt", json={"prompt": prompt})
            client.get(f"{url}/next-token-probs")  # the wheel the student sees first
            t_sample, _ = _timed(client, f"{url}/sample", {"n": 1000, "seed": i})
            t_compare, out = _timed(client, f"{url}/compare", {"steps": 20, "seed": i})
            text = registry.decode(model, ids[i : i + 300])
            t_score, scored = _timed(client, "/api/score", {"text": text})
            if i:
                sample.append(t_sample)
                compare.append(t_compare)
                score.append(t_score)
                steps_done.append(len(out["greedy"]["tokens"]) + len(out["sampled"]["tokens"]))
        return {
            "model": model,
            "engine": engine,
            "repeats": repeats,
            "cpu_count": os.cpu_count(),
            "load_average_after": os.getloadavg(),
            "sample_n1000_median_ms": _median_ms(sample),
            "compare_steps20_median_ms": _median_ms(compare),
            "compare_tokens_per_run": statistics.median(steps_done),
            "score_300_tokens_median_ms": _median_ms(score),
            "score_token_count": scored["token_count"],
            "all_ms": {
                "sample": [round(x * 1000, 1) for x in sample],
                "compare": [round(x * 1000, 1) for x in compare],
                "score": [round(x * 1000, 1) for x in score],
            },
        }
    finally:
        registry.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--engine", choices=("fast", "naive"), default="fast")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print(json.dumps(run(args.model, args.repeats, args.engine), indent=2))


if __name__ == "__main__":
    main()
