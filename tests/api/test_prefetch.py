"""Prefetch on the real model (issue 16, item 1): the wheel after an append or a spin is
computed before it is asked for, and asking for it then costs no forward pass."""

from __future__ import annotations

import time

from flask.testing import FlaskClient

from tests.api.conftest import BUNDLED, Student
from tokenwheel.inference.registry import ModelRegistry

PROMPT = "The cat sat on the"


def prefetched(registry: ModelRegistry, ids: list[int], timeout: float = 30.0) -> bool:
    key = (BUNDLED, registry.options.dtype, tuple(ids))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if key in registry.local_wheels.cache:
            return True
        time.sleep(0.01)
    return False


def test_the_wheel_after_an_append_and_a_spin_costs_no_forward_pass(
    client: FlaskClient, registry: ModelRegistry
) -> None:
    student = Student(client, model=BUNDLED)
    student.prompt(PROMPT)
    wheel = student.probs()
    ids = registry.encode_prompt(BUNDLED, PROMPT)
    for change in ("append", "spin"):
        if change == "append":
            token_id = wheel["above_threshold_tokens"][0]["token_id"]
            student.append(token_id=token_id)
        else:
            r = client.post(f"{student.url}/spin", json={"seed": 5})
            assert r.status_code == 200, r.json
            token_id = r.json["appended_token"]["token_id"]
        ids.append(token_id)
        assert prefetched(registry, ids), change  # it lands without being asked for
        passes = registry.forward_passes
        wheel = student.probs(temperature=0.7, threshold=0.02)
        assert registry.forward_passes == passes, change  # a cache hit
        assert wheel["current_text"] == student.state()["current_text"]
