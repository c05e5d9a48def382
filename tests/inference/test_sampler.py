"""The torch sampler (``inference.distribution``): where a draw lands on a known
distribution, and frequencies over many draws that match the probabilities, on the real
registry run on the fake model's logits."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch

from tests.fakes import VOCAB
from tests.inference.fake_weights import RegistryOnFakeWeights
from tests.unit.test_spin import SPINS, TEMPERATURE, THRESHOLD, chi_square, chi_square_bound
from tokenwheel.inference import distribution, wheel
from tokenwheel.inference.tokens import TokenInfo


def known_logits() -> torch.Tensor:
    """Token ids 0..3 with probabilities 0.1, 0.5, 0.15, 0.25 (at temperature 1)."""
    return torch.tensor([0.1, 0.5, 0.15, 0.25], dtype=torch.float64).log()


@pytest.mark.parametrize(
    ("draw", "token_id", "wedge", "index"),
    [
        (0.0, 1, "token", 0),  # wedge 0: id 1 (0.5), angles 0..180
        (0.49, 1, "token", 0),
        (0.5, 3, "token", 1),  # wedge 1: id 3 (0.25), angles 180..270
        (0.74, 3, "token", 1),
        (0.75, 2, "other", 2),  # Other 0.25 = ids 2 (0.15), 0 (0.1): renormalized 0.6, 0.4
        (0.89, 2, "other", 2),  # (0.89 - 0.75) / 0.25 = 0.56 < 0.6
        (0.91, 0, "other", 2),  # 0.64 >= 0.6
        (0.999, 0, "other", 2),
    ],
)
def test_the_landed_token_matches_the_draw_on_a_known_distribution(
    draw: float, token_id: int, wedge: str, index: int
) -> None:
    landing = distribution.land_on_wheel(distribution.Prepared(known_logits(), 1.0), 0.2, draw)
    assert (landing.token_id, landing.wedge, landing.wedge_index) == (token_id, wedge, index)
    assert landing.angle == pytest.approx(360 * draw)
    assert landing.start_angle <= landing.angle < landing.end_angle


def test_the_wheel_is_laid_out_as_next_token_probs_lists_it() -> None:
    def info(token_id: int) -> TokenInfo:
        return TokenInfo(str(token_id), str(token_id), False, False, False)

    shown = distribution.build_distribution(
        distribution.Prepared(known_logits(), 1.0), 0.2, 0, info
    )
    assert [t.token_id for t in shown.above_threshold_tokens] == [1, 3]
    start = 0.0
    for index, token in enumerate(shown.above_threshold_tokens):
        end = start + 360 * token.probability
        landing = distribution.land_on_wheel(
            distribution.Prepared(known_logits(), 1.0), 0.2, (start + end) / 720
        )
        assert landing.wedge_index == index and landing.token_id == token.token_id
        assert math.isclose(landing.start_angle, start) and math.isclose(landing.end_angle, end)
        start = end


# ---------------------------------------------------------------- the sampler in numbers
# The same distribution as tests/unit/test_spin.py's (the fake model after "The cat"),
# drawn here by the torch code, with uniform draws from a fixed seed: never flaky.


def observed_frequencies(registry: RegistryOnFakeWeights) -> Counter[int]:
    ids = registry.encode_prompt("fake", "The cat")
    draws = random.Random(0)
    counts: Counter[int] = Counter()
    for _ in range(SPINS):
        landing = registry.land_on_wheel("fake", ids, TEMPERATURE, THRESHOLD, draws.random())
        counts[landing.token_id] += 1
    return counts


def full_probabilities(registry: RegistryOnFakeWeights) -> dict[int, float]:
    ids = registry.encode_prompt("fake", "The cat")
    shown = registry.distribution("fake", ids, TEMPERATURE, THRESHOLD, 100)
    tokens = shown.above_threshold_tokens + shown.other_category.sample_tokens
    assert len(tokens) == len(VOCAB)
    assert len(shown.above_threshold_tokens) == 3 and shown.other_category.total_probability > 0.3
    return {t.token_id: t.probability for t in tokens}


def test_over_many_draws_frequencies_match_the_probabilities(
    fake_weights: RegistryOnFakeWeights,
) -> None:
    statistic, df = chi_square(
        observed_frequencies(fake_weights), full_probabilities(fake_weights), SPINS
    )
    assert df >= 10
    assert statistic < chi_square_bound(df)


def uniform_over_wedges(head: list[float], other: float, draw: float) -> wheel.WedgeHit:
    return wheel.wedge_for_draw([1 / (len(head) + 1)] * len(head), 1 / (len(head) + 1), draw)


def other_not_rescaled(head: list[float], other: float, draw: float) -> wheel.WedgeHit:
    hit = wheel.wedge_for_draw(head, other, draw)
    return hit if not hit.other else wheel.WedgeHit(hit.index, True, hit.start, hit.end, draw)


def uniform_inside_other(
    prepared: distribution.Prepared, n_above: int, draw: float, probs: object = None
) -> int:
    """The Other wedge's draw spread evenly over its tokens, ignoring their sizes."""
    tail = prepared.order[n_above:]
    return int(tail[min(int(draw * tail.numel()), tail.numel() - 1)])


@pytest.mark.parametrize(
    ("name", "wrong"),
    [
        ("wedge_for_draw", uniform_over_wedges),
        ("wedge_for_draw", other_not_rescaled),
        ("_tail_token", uniform_inside_other),
    ],
    ids=["uniform_over_wedges", "other_not_rescaled", "uniform_inside_other"],
)
def test_a_wrong_sampler_fails_the_same_bound(
    fake_weights: RegistryOnFakeWeights,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    wrong: Callable[..., Any],
) -> None:
    monkeypatch.setattr(distribution, name, wrong)
    statistic, df = chi_square(
        observed_frequencies(fake_weights), full_probabilities(fake_weights), SPINS
    )
    assert statistic > chi_square_bound(df)
