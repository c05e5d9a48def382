"""Guess-first rounds on both bundled models: a guess is scored as the next word after the
round's prompt, with the prompt's ids as the model sees them (Gemma's BOS first, none for
SmolLM2), and its numbers equal a direct forward pass (|dp| <= 1e-4)."""

from __future__ import annotations

import math

import pytest
import torch
from flask import Flask

from tests.api.conftest import make_app
from tests.api.teacher_client import TOKEN
from tests.conftest import BUNDLED, GEMMA
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.settings import Settings

AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROMPT = "The cat sat on the"
TOLERANCE = 1e-4


def direct_probs(registry: ModelRegistry, model: str, ids: list[int]) -> torch.Tensor:
    logits = registry.get(model).logits(ids).to(torch.float64)
    return torch.softmax(logits, dim=-1)


@pytest.mark.parametrize("model", [BUNDLED, GEMMA])
def test_guesses_are_scored_after_the_prompt_as_the_model_sees_it(
    settings: Settings, registry: ModelRegistry, model: str
) -> None:
    registry.get(model)
    app: Flask = make_app(settings.with_overrides(teacher_token=TOKEN), registry)
    client = app.test_client()
    code = client.post("/api/teacher/classes", json={"name": "7b"}, headers=AUTH).json["class_code"]
    r = client.post(
        f"/api/teacher/classes/{code}/rounds",
        json={"prompt": PROMPT, "model_name": model, "temperature": 1.0},
        headers=AUTH,
    )
    assert r.status_code == 201, r.json
    rid = r.json["round_id"]
    tokenizer = registry.get(model).tokenizer
    prompt_ids = registry.encode_prompt(model, PROMPT)
    has_bos = tokenizer.bos_token_id is not None and prompt_ids[0] == tokenizer.bos_token_id
    assert has_bos == (model == GEMMA)

    for nickname, word in [("Ana", "mat"), ("Ben", "hippopotamus")]:
        joined = client.post("/api/sessions", json={"class_code": code, "nickname": nickname})
        assert joined.status_code == 201, joined.json
        sid = joined.json["session_id"]
        r = client.post(f"/api/sessions/{sid}/guess", json={"round_id": rid, "text": word})
        assert r.status_code == 201, r.json
        scored = r.json
        # the next word as the model writes it: " word", no second BOS, and the prompt's
        # own ids unchanged in front of it
        together = registry.encode_prompt(model, PROMPT + " " + word)
        assert together[: len(prompt_ids)] == prompt_ids
        assert scored["token_ids"] == together[len(prompt_ids) :]
        assert tokenizer.bos_token_id not in scored["token_ids"]
        ids = list(prompt_ids)
        chances = []
        for token_id in scored["token_ids"]:
            chances.append(float(direct_probs(registry, model, ids)[token_id]))
            ids.append(token_id)
        first = direct_probs(registry, model, prompt_ids)
        assert abs(scored["first_token_probability"] - chances[0]) <= TOLERANCE
        rank = int((first > first[scored["token_ids"][0]]).sum()) + 1
        assert scored["first_token_rank"] == rank
        assert math.isclose(scored["text_probability"], math.prod(chances), rel_tol=1e-3)
        assert scored["single_token"] == (len(scored["token_ids"]) == 1)

    revealed = client.post(f"/api/teacher/classes/{code}/rounds/{rid}/reveal", headers=AUTH).json
    wheel = revealed["wheel"]
    first = direct_probs(registry, model, prompt_ids)
    for token in wheel["above_threshold_tokens"]:
        assert abs(token["probability"] - float(first[token["token_id"]])) <= TOLERANCE
    counted = sum(t["guess_count"] for t in wheel["above_threshold_tokens"])
    counted += wheel["other_category"]["guess_count"]
    singles = sum(1 for g in revealed["unlisted_guesses"] if not g["single_token"])
    assert counted + singles == 2
    app.extensions["tokenwheel.engine"].dispose()
