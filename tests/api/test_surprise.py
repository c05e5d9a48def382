"""Surprise on the real bundled model: the wheel's entropy, each token's surprisal and the
text's log-probability, each against a direct computation."""

from __future__ import annotations

import math

import pytest
import torch
from flask.testing import FlaskClient

from tests.api.conftest import Student
from tokenwheel.inference.registry import ModelRegistry

PROMPT = "The cat sat on the"


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_the_wheel_reports_the_entropy_of_the_whole_distribution(
    client: FlaskClient, registry: ModelRegistry, temperature: float
) -> None:
    student = Student(client)
    student.prompt(PROMPT)
    student.append(token_id=student.probs()["above_threshold_tokens"][0]["token_id"])
    state = student.state()
    body = student.probs(temperature=temperature, threshold=0.05)

    model = state["model_name"]
    ids = registry.encode_prompt(model, PROMPT) + [t["token_id"] for t in state["token_history"]]
    logp = torch.log_softmax(registry.logits(model, ids).double() / temperature, dim=-1)
    p = logp.exp()
    expected = float(-(p[p > 0] * logp[p > 0]).sum()) / math.log(2)

    assert body["entropy_bits"] == pytest.approx(expected, abs=1e-4)
    assert body["effective_choices"] == pytest.approx(2 ** body["entropy_bits"], rel=1e-12)
    assert 1.0 <= body["effective_choices"] <= body["vocabulary_size"]


def test_history_surprisal_and_the_texts_log_probability(client: FlaskClient) -> None:
    student = Student(client)
    student.prompt(PROMPT)
    assert student.state()["log_probability"] == 0.0
    student.append(token_id=student.probs()["above_threshold_tokens"][0]["token_id"])
    student.append(category="other", temperature=1.5)
    last = student.append(token_id=student.probs()["above_threshold_tokens"][-1]["token_id"])

    state = student.state()
    history = state["token_history"]
    assert len(history) == 3
    for entry in history + last["token_history"]:
        assert entry["surprisal_bits"] == pytest.approx(
            -math.log2(entry["probability"]), abs=1e-4, rel=1e-9
        )
    assert state["log_probability"] == pytest.approx(
        sum(math.log(t["probability"]) for t in history), abs=1e-4
    )
    assert state["log_probability"] == math.fsum(t["log_probability"] for t in history)
