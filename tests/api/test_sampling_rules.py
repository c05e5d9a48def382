"""Sampling rules over HTTP on the real bundled model: the wheel's new fields, spins and
Other draws that keep to the kept tokens and record the rules, and bad values refused
with nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.api.conftest import Student

RULES = {"top_k": 8, "top_p": 0.9, "min_p": 0.02}


def test_the_wheel_marks_what_the_rules_keep(client: FlaskClient) -> None:
    student = Student(client)
    student.prompt("The cat sat on the")
    plain = student.probs(threshold=0.02, other_top_k=50)
    body = student.probs(threshold=0.02, other_top_k=50, **RULES)
    assert body["sampling"]["top_k"] == 8 and body["sampling"]["min_p"] == 0.02
    assert 1 <= body["sampling"]["kept_token_count"] <= 8
    assert body["entropy_bits"] == plain["entropy_bits"]  # before the rules
    listed = body["above_threshold_tokens"] + body["other_category"]["sample_tokens"]
    kept = [t for t in listed if t["kept"]]
    assert len(kept) == body["sampling"]["kept_token_count"]  # the kept are the likeliest
    total = body["sampling"]["kept_probability"]
    assert total == pytest.approx(sum(t["probability"] for t in kept), abs=1e-4)
    for token in listed:
        expected = token["probability"] / total if token["kept"] else 0.0
        assert token["sampling_probability"] == pytest.approx(expected, abs=1e-4)
    assert body["other_category"]["kept_token_count"] == sum(
        t["kept"] for t in body["other_category"]["sample_tokens"]
    )
    for token in plain["above_threshold_tokens"]:
        assert token["kept"] and token["sampling_probability"] == token["probability"]


def test_spins_and_other_draws_keep_to_the_kept_tokens_and_record_the_rules(
    client: FlaskClient,
) -> None:
    student = Student(client, seed=14)
    student.prompt("Once upon a time")
    for _ in range(6):
        wheel = student.probs(threshold=0.0, other_top_k=0, **RULES)
        kept = {t["token_id"]: t for t in wheel["above_threshold_tokens"] if t["kept"]}
        r = client.post(f"{student.url}/spin", json={"threshold": 0.0, **RULES})
        assert r.status_code == 200, r.json
        token = r.json["token_history"][-1]
        assert token["token_id"] in kept
        assert token["sampling_probability"] == pytest.approx(
            kept[token["token_id"]]["sampling_probability"], abs=1e-9
        )
        assert (token["top_k"], token["top_p"], token["min_p"]) == (8, 0.9, 0.02)
    wheel = student.probs(threshold=0.05, other_top_k=100, top_k=30)
    r = client.post(
        f"{student.url}/append-token", json={"category": "other", "threshold": 0.05, "top_k": 30}
    )
    assert r.status_code == 200, r.json
    drawn = r.json["appended_token"]["token_id"]
    assert drawn in {t["token_id"] for t in wheel["other_category"]["sample_tokens"] if t["kept"]}
    assert r.json["token_history"][-1]["top_k"] == 30


BAD = [{"top_p": 0}, {"top_k": -1}, {"min_p": 1}, {"top_p": 1.5}, {"min_p": -0.5}, {"top_k": 1.5}]


@pytest.mark.parametrize("bad", BAD, ids=str)
def test_bad_rules_are_400_and_nothing_is_stored(fake_client: FlaskClient, bad: Any) -> None:
    student = Student(fake_client)
    student.prompt("The cat")
    version = student.state()["version"]
    r = fake_client.get(f"{student.url}/next-token-probs", query_string=bad)
    assert r.status_code == 400, r.json
    for path, body in (("spin", {}), ("append-token", {"category": "other"})):
        r = fake_client.post(f"{student.url}/{path}", json={**body, **bad})
        assert r.status_code == 400, (path, r.json)
    r = fake_client.post(f"{student.url}/append-token", json={"token_id": 1, **bad})
    assert r.status_code == 400, r.json
    assert student.state()["version"] == version


def test_many_spins_with_rules_land_on_kept_tokens_as_renormalized(client: FlaskClient) -> None:
    """POST /sample on the real model: 10,000 spins with the rules, counted against the
    kept tokens' probabilities renormalized from the wheel's true probabilities."""
    student = Student(client)
    student.prompt("The cat sat on the")
    wheel = student.probs(threshold=0.001, other_top_k=0, **RULES)
    kept = {t["token_id"]: t["probability"] for t in wheel["above_threshold_tokens"] if t["kept"]}
    assert wheel["other_category"]["kept_token_count"] == 0  # every kept token has a wedge
    total = sum(kept.values())
    counts: dict[int, int] = {}
    for seed in range(10):
        body = {"n": 1000, "seed": seed, "threshold": 0.001, **RULES}
        r = client.post(f"{student.url}/sample", json=body)
        assert r.status_code == 200, r.json
        assert r.json["other"]["count"] == 0
        for token in r.json["tokens"]:
            counts[token["token_id"]] = counts.get(token["token_id"], 0) + token["count"]
    for token_id, count in counts.items():
        if token_id not in kept:
            assert count == 0
            continue
        p = kept[token_id] / total
        assert abs(count - 10_000 * p) <= 4 * (10_000 * p * (1 - p)) ** 0.5 + 1e-9, token_id
