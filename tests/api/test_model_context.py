"""The model sees prompt ids + generated ids, never re-tokenized text."""

from __future__ import annotations

import torch
from flask.testing import FlaskClient

from tests.api.conftest import BUNDLED, Student
from tokenwheel.inference.registry import ModelRegistry


def direct_probabilities(registry: ModelRegistry, ids: list[int]) -> torch.Tensor:
    """One forward pass straight through the transformers model, no Token Wheel code."""
    model = registry.get(BUNDLED).model
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return torch.softmax(logits, dim=-1)


def test_next_distribution_uses_the_id_sequence(
    client: FlaskClient, registry: ModelRegistry
) -> None:
    loaded = registry.get(BUNDLED)
    tok = loaded.tokenizer
    prompt = "The cat sat on the"
    prompt_ids = tok(prompt)["input_ids"]
    # " m" + "at" spells " mat", which the tokenizer writes as one token
    pieces = [loaded.token_id_for_text(" m"), loaded.token_id_for_text("at")]
    retokenized = tok(prompt + " mat")["input_ids"]
    assert retokenized != prompt_ids + pieces  # the texts agree, the id sequences do not

    s = Student(client)
    s.prompt(prompt)
    for piece in pieces:
        s.append(token_id=piece)
    assert s.state()["current_text"] == "The cat sat on the mat"
    served = s.probs(threshold=0.0, other_top_k=0)["above_threshold_tokens"]
    served_probs = torch.zeros(49152, dtype=torch.float64)
    for t in served:
        served_probs[t["token_id"]] = t["probability"]

    expected = direct_probabilities(registry, prompt_ids + pieces)
    assert float((served_probs - expected).abs().max()) <= 1e-5
    wrong = direct_probabilities(registry, retokenized)
    assert float((served_probs - wrong).abs().max()) > 1e-3  # re-tokenizing would differ


def test_current_text_decodes_split_characters_whole(
    student: Student, registry: ModelRegistry
) -> None:
    tok = registry.get(BUNDLED).tokenizer
    ids = tok(" café 😀", add_special_tokens=False)["input_ids"]
    student.prompt("Say")
    for token_id in ids:
        student.append(token_id=token_id)
    state = student.state()
    assert state["current_text"] == "Say café 😀"
    # some single tokens are only part of a character; the text still shows it whole
    assert any("\ufffd" in t["token_text"] for t in state["token_history"])
