"""The unit tier's fake model side answers as the real registry does on the same logits.

``tests.fakes.FakeModels`` recomputes in plain Python what ``inference.distribution``
computes in torch; here both run on the fake's logits and must agree: the same tokens in
the same places, the same ranks, counts and landings, and probabilities equal up to the
last bits (a vectorized sum and ``math.fsum`` may round differently)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes import LOG_PROBABILITY_FLOOR, VOCAB, FakeModels, fake_logits
from tests.inference.fake_weights import RegistryOnFakeWeights
from tokenwheel.inference import distribution
from tokenwheel.inference.types import (
    EmptyOtherError,
    InvalidTokenError,
    SamplingRules,
    ScoredToken,
    TokenProbability,
    UnknownModelError,
    WheelLanding,
)

PROMPTS = ["The cat", "The cat sat on the mat.", " a big red hat", "é", "The dog ran"]
TEMPERATURES = [5e-324, 1e-3, 0.5, 1.0, 3.0, 10.0]
THRESHOLDS = [0.0, 0.01, 0.08, 0.2, 0.5, 1.0]
DRAWS = [i / 61 for i in range(61)] + [0.999999, math.nextafter(1.0, 0.0)]


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def same_token(fake: TokenProbability, real: TokenProbability) -> None:
    assert (fake.token_id, fake.token_text, fake.display_text) == (
        real.token_id,
        real.token_text,
        real.display_text,
    )
    assert (fake.partial_utf8, fake.special, fake.end_of_sequence) == (
        real.partial_utf8,
        real.special,
        real.end_of_sequence,
    )
    assert close(fake.probability, real.probability), (fake, real)
    assert close(fake.log_probability, real.log_probability), (fake, real)


def outcome(method: Callable[..., Any], *args: Any) -> Any:
    """The answer, or the error type and message: both sides must fail alike."""
    try:
        return method(*args)
    except (EmptyOtherError, InvalidTokenError, UnknownModelError) as exc:
        return type(exc), str(exc).split(" Known models:")[0]  # the fake knows only its own


@pytest.fixture
def both(fake_weights: RegistryOnFakeWeights) -> tuple[FakeModels, RegistryOnFakeWeights]:
    return FakeModels(), fake_weights


def test_the_fake_computes_on_the_logits_the_real_side_is_given(
    both: tuple[FakeModels, RegistryOnFakeWeights],
) -> None:
    fake, real = both
    assert LOG_PROBABILITY_FLOOR == distribution.LOG_PROBABILITY_FLOOR
    for prompt in PROMPTS:
        ids = fake.encode_prompt("fake", prompt)
        assert ids == real.encode_prompt("fake", prompt) and ids
        assert fake.logits("fake", ids) == real.logits("fake", ids).tolist() == fake_logits(ids)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_wheels_and_scores_agree(
    both: tuple[FakeModels, RegistryOnFakeWeights], temperature: float
) -> None:
    fake, real = both
    for prompt in PROMPTS:
        ids = fake.encode_prompt("fake", prompt)
        for threshold in THRESHOLDS:
            for top_k in (0, 3, 100):
                mine = fake.distribution("fake", ids, temperature, threshold, top_k)
                theirs = real.distribution("fake", ids, temperature, threshold, top_k)
                assert (mine.temperature, mine.threshold, mine.vocabulary_size) == (
                    theirs.temperature,
                    theirs.threshold,
                    theirs.vocabulary_size,
                )
                for a, b in (
                    (mine.above_threshold_tokens, theirs.above_threshold_tokens),
                    (mine.other_category.sample_tokens, theirs.other_category.sample_tokens),
                ):
                    assert [t.token_id for t in a] == [t.token_id for t in b]
                    for x, y in zip(a, b, strict=True):
                        same_token(x, y)
                assert mine.other_category.token_count == theirs.other_category.token_count
                assert close(
                    mine.other_category.total_probability, theirs.other_category.total_probability
                )
                assert close(
                    mine.total_above_threshold_probability, theirs.total_above_threshold_probability
                )
                assert math.isclose(mine.entropy_bits, theirs.entropy_bits, abs_tol=1e-12)
                for token_id in range(len(VOCAB)):
                    a_score = fake.score("fake", ids, token_id, temperature, threshold)
                    b_score = real.score("fake", ids, token_id, temperature, threshold)
                    assert scored_fields(a_score) == scored_fields(b_score)
                    for field in ("probability", "log_probability", "other_total_probability"):
                        assert close(getattr(a_score, field), getattr(b_score, field)), field


def scored_fields(s: ScoredToken) -> tuple[object, ...]:
    return (s.token_id, s.token_text, s.category, s.rank, s.other_token_count, s.rank_in_other)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_draws_land_on_the_same_tokens(
    both: tuple[FakeModels, RegistryOnFakeWeights], temperature: float
) -> None:
    fake, real = both
    for prompt in PROMPTS:
        ids = fake.encode_prompt("fake", prompt)
        for threshold in THRESHOLDS:
            for draw in DRAWS:
                asked = ("fake", ids, temperature, threshold, draw)
                mine, theirs = outcome(fake.other_token, *asked), outcome(real.other_token, *asked)
                assert mine == theirs, (prompt, threshold, draw)
                a, b = outcome(fake.land_on_wheel, *asked), outcome(real.land_on_wheel, *asked)
                if isinstance(a, WheelLanding) and isinstance(b, WheelLanding):
                    assert (a.draw, a.wedge, a.wedge_index, a.token_id, a.angle) == (
                        b.draw,
                        b.wedge,
                        b.wedge_index,
                        b.token_id,
                        b.angle,
                    ), (prompt, threshold, draw)
                    assert close(a.start_angle, b.start_angle) and close(a.end_angle, b.end_angle)
                else:
                    assert a == b, (prompt, threshold, draw)


def test_text_and_errors_agree(both: tuple[FakeModels, RegistryOnFakeWeights]) -> None:
    fake, real = both
    for token_id in range(len(VOCAB)):
        assert fake.token_info("fake", token_id) == real.token_info("fake", token_id)
        text = VOCAB[token_id]
        assert fake.token_id_for_text("fake", text) == real.token_id_for_text("fake", text)
    ids = fake.encode_prompt("fake", "The cat sat")
    assert fake.decode("fake", ids) == real.decode("fake", ids) == "The cat sat"
    assert fake.decode("fake", []) == real.decode("fake", []) == ""
    assert fake.max_context("fake") == real.max_context("fake")
    for call in (
        lambda m: m.token_id_for_text("fake", " nope"),
        lambda m: m.score("fake", ids, len(VOCAB), 1.0, 0.1),
        lambda m: m.score("fake", ids, -1, 1.0, 0.1),
        lambda m: m.get("gpt-17"),
        lambda m: m.distribution("gpt-17", ids, 1.0, 0.1, 10),
    ):
        assert outcome(call, fake) == outcome(call, real)
    assert fake.default_model() == real.default_model() == ("fake", None)


RULES = [
    SamplingRules(top_k=1),
    SamplingRules(top_k=4),
    SamplingRules(top_p=0.5),
    SamplingRules(top_p=0.9),
    SamplingRules(min_p=0.1),
    SamplingRules(min_p=0.6),
    SamplingRules(top_k=6, top_p=0.8, min_p=0.05),
]


@pytest.mark.parametrize("rules", RULES, ids=str)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_the_sampling_rules_agree(
    both: tuple[FakeModels, RegistryOnFakeWeights], temperature: float, rules: SamplingRules
) -> None:
    fake, real = both
    for prompt in PROMPTS:
        ids = fake.encode_prompt("fake", prompt)
        for threshold in (0.0, 0.08, 0.5):
            mine = fake.distribution("fake", ids, temperature, threshold, 100, rules)
            theirs = real.distribution("fake", ids, temperature, threshold, 100, rules)
            assert mine.sampling.kept_token_count == theirs.sampling.kept_token_count
            assert close(mine.sampling.kept_probability, theirs.sampling.kept_probability)
            assert mine.other_category.kept_token_count == theirs.other_category.kept_token_count
            assert close(
                mine.other_category.sampling_probability, theirs.other_category.sampling_probability
            )
            for a, b in (
                (mine.above_threshold_tokens, theirs.above_threshold_tokens),
                (mine.other_category.sample_tokens, theirs.other_category.sample_tokens),
            ):
                for x, y in zip(a, b, strict=True):
                    same_token(x, y)
                    assert x.kept == y.kept
                    assert close(x.sampling_probability, y.sampling_probability)
            for token_id in range(len(VOCAB)):
                a_score = fake.score("fake", ids, token_id, temperature, threshold, rules)
                b_score = real.score("fake", ids, token_id, temperature, threshold, rules)
                assert a_score.kept == b_score.kept
                assert close(a_score.sampling_probability, b_score.sampling_probability)
            for draw in DRAWS:
                asked = ("fake", ids, temperature, threshold, draw, rules)
                mine_o, theirs_o = (
                    outcome(fake.other_token, *asked),
                    outcome(real.other_token, *asked),
                )
                assert mine_o == theirs_o, (prompt, threshold, draw)
                a, b = outcome(fake.land_on_wheel, *asked), outcome(real.land_on_wheel, *asked)
                if isinstance(a, WheelLanding) and isinstance(b, WheelLanding):
                    assert (a.wedge, a.wedge_index, a.token_id) == (
                        b.wedge,
                        b.wedge_index,
                        b.token_id,
                    ), (prompt, threshold, draw)
                    assert close(a.start_angle, b.start_angle) and close(a.end_angle, b.end_angle)
                else:
                    assert a == b, (prompt, threshold, draw)
