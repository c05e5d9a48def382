"""The lab's comparison and scoring on the real bundled model, held to direct
computations on the model (a full forward pass per position, softmax in float64):
|dp| <= 1e-4, the tolerance the caches are held to."""

from __future__ import annotations

import math
from typing import Any

import torch
from flask.testing import FlaskClient

from tests.api.conftest import BUNDLED, Student
from tokenwheel.inference.registry import ModelRegistry

TOLERANCE = 1e-4


def direct_probs(registry: ModelRegistry, ids: list[int], temperature: float) -> torch.Tensor:
    """softmax(logits / T) in float64 from the plain full forward pass."""
    logits = registry.get(BUNDLED).logits(ids).to(torch.float64)
    return torch.softmax(logits / temperature, dim=-1)


def start_ids(client: FlaskClient, registry: ModelRegistry, student: Student) -> list[int]:
    state = student.state()
    prompt = registry.encode_prompt(BUNDLED, state["initial_prompt"])
    return prompt + [t["token_id"] for t in state["token_history"]]


def test_compare_greedy_is_the_argmax_of_each_step(
    client: FlaskClient, registry: ModelRegistry
) -> None:
    student = Student(client)
    student.prompt("The capital of France is")
    student.append(token_id=registry.encode_prompt(BUNDLED, " Paris")[0])
    before = student.state()
    start = start_ids(client, registry, student)
    r = client.post(f"{student.url}/compare", json={"steps": 8, "seed": 3, "temperature": 0.7})
    assert r.status_code == 200, r.json
    out = r.json
    ids = list(start)
    for token in out["greedy"]["tokens"]:
        probs = direct_probs(registry, ids, 0.7)
        assert token["token_id"] == int(torch.argmax(probs))
        assert abs(token["probability"] - float(probs[token["token_id"]])) <= TOLERANCE
        ids.append(token["token_id"])
    ids = list(start)
    for token in out["sampled"]["tokens"]:
        probs = direct_probs(registry, ids, 0.7)
        assert abs(token["probability"] - float(probs[token["token_id"]])) <= TOLERANCE
        ids.append(token["token_id"])
    for name in ("greedy", "sampled"):
        path = out[name]
        assert path["text"] == registry.decode(BUNDLED, [t["token_id"] for t in path["tokens"]])
        assert math.isclose(
            path["log_probability"],
            math.fsum(t["log_probability"] for t in path["tokens"]),
            abs_tol=1e-9,
        )
    assert out["current"]["text"] == " Paris"
    assert math.isclose(out["current"]["log_probability"], before["log_probability"])
    again = client.post(f"{student.url}/compare", json={"steps": 8, "seed": 3, "temperature": 0.7})
    assert again.json["sampled"] == out["sampled"]
    assert student.state()["version"] == before["version"]


def test_compare_steps_reuse_the_kv_prefix(client: FlaskClient, registry: ModelRegistry) -> None:
    """Each step after the wheel's is one new token per path: no full recompute."""
    student = Student(client)
    student.prompt("Once upon a time, in a small village by the sea, there lived")
    student.probs()  # the prompt's prefill
    stats = registry.engine.stats  # type: ignore[attr-defined]
    before = (stats.prefill_tokens, stats.recomputes)
    body: dict[str, Any] = {"steps": 20, "seed": 1, "top_p": 0.9}
    r = client.post(f"{student.url}/compare", json=body)
    assert r.status_code == 200, r.json
    tokens = len(r.json["greedy"]["tokens"]) + len(r.json["sampled"]["tokens"])
    assert stats.recomputes == before[1]
    assert stats.prefill_tokens - before[0] <= tokens


SCORED_TEXT = "The quick brown fox jumps over the lazy dog. It was a sunny day in the park."


def test_score_is_the_wheels_probability_and_rank_for_the_same_ids(
    client: FlaskClient, registry: ModelRegistry
) -> None:
    """One forward pass over the text against the wheel: the session's appends record
    the wheel's probability and rank at temperature 1 after the same ids."""
    passes = registry.forward_passes
    r = client.post("/api/score", json={"text": SCORED_TEXT})
    assert r.status_code == 200, r.json
    assert registry.forward_passes == passes + 1  # one pass for the whole text
    body = r.json
    ids = registry.encode_prompt(BUNDLED, SCORED_TEXT)
    assert [t["token_id"] for t in body["tokens"]] == ids
    assert body["model_name"] == BUNDLED and body["token_count"] == len(ids)
    assert body["tokens"][0]["probability"] is None  # SmolLM2 adds no BOS: no context
    student = Student(client)
    student.prompt(registry.decode(BUNDLED, ids[:1]))
    assert start_ids(client, registry, student) == ids[:1]
    logps = []
    for i, token in enumerate(body["tokens"][1:], start=1):
        appended = student.append(token_id=ids[i], threshold=0.01)["appended_token"]
        assert abs(token["probability"] - appended["probability"]) <= TOLERANCE, i
        probs = direct_probs(registry, ids[:i], 1.0)
        p = float(probs[ids[i]])
        assert abs(token["probability"] - p) <= TOLERANCE
        # the rank of a direct sort, up to tokens within the tolerance of this one
        low = int((probs > p + TOLERANCE).sum()) + 1
        high = int((probs > p - TOLERANCE).sum()) + 1
        assert low <= token["rank"] <= high, (i, token["rank"], low, high)
        top = torch.argsort(probs, descending=True, stable=True)[:5].tolist()
        shown = [a["token_id"] for a in token["alternatives"]]
        for a, b in zip(shown, top, strict=True):
            assert a == b or abs(float(probs[a]) - float(probs[b])) <= TOLERANCE
        logps.append(token["log_probability"])
    assert math.isclose(body["log_probability"], math.fsum(logps), rel_tol=1e-9)
    assert math.isclose(body["perplexity"], math.exp(-math.fsum(logps) / len(logps)))
