"""One number per token: the wheel, an append and a spin report the same probability."""

from __future__ import annotations

import math

import torch

from tokenwheel.inference import distribution
from tokenwheel.inference.tokens import TokenInfo


def info(token_id: int) -> TokenInfo:
    return TokenInfo(f"t{token_id}", f"t{token_id}", False, False, False)


def test_the_wheel_and_a_scored_append_agree_to_the_last_bit() -> None:
    # Random logits over a GPT-2-sized vocabulary, at several temperatures: a vectorized
    # exp and the C library's exp differ in the last bit for some of these values, which a
    # student sees as an append whose probability is not the one on the wheel.
    generator = torch.Generator().manual_seed(5)
    checked = 0
    for _ in range(20):
        logits = torch.randn(50257, generator=generator, dtype=torch.float32) * 4
        for temperature in (0.7, 1.0, 1.3):
            prepared = distribution.Prepared(logits, temperature)
            wheel = distribution.build_distribution(prepared, 0.001, 20, info)
            shown = [*wheel.above_threshold_tokens, *wheel.other_category.sample_tokens]
            again = distribution.Prepared(logits, temperature)  # computed again, apart
            for token in shown:
                scored = distribution.score_token(again, token.token_id, 0.001, lambda i: f"t{i}")
                assert scored.probability == token.probability, token.token_id
                assert scored.log_probability == token.log_probability, token.token_id
                checked += 1
    assert checked > 1000


def test_wedges_and_the_other_list_are_slices_of_one_order_even_with_ties() -> None:
    """The wheel finds its wedges and its Other list without sorting the vocabulary; a
    draw in the Other wedge walks the full sort. Both must put the same tokens in the same
    places, ties (which rounded logits make common) broken by id."""
    generator = torch.Generator().manual_seed(11)
    for _ in range(30):
        logits = torch.round(torch.randn(3000, generator=generator) * 2) / 2  # many ties
        prepared = distribution.Prepared(logits, 1.0)
        order = prepared.order.tolist()
        for threshold in (0.0, 0.001, 0.01, 0.05, 0.2, 1.0):
            above = prepared.above(threshold)
            n = int(above.sum())
            assert prepared.head_ids(above).tolist() == order[:n]
            for k in (0, 1, 10, 100):
                assert prepared.top_of_tail(above, k).tolist() == order[n : n + k]
            wheel = distribution.build_distribution(prepared, threshold, 10, info)
            assert [t.token_id for t in wheel.above_threshold_tokens] == order[:n]
            assert [t.token_id for t in wheel.other_category.sample_tokens] == order[n : n + 10]


def test_any_temperature_above_zero_gives_finite_numbers() -> None:
    """(x - max) / T overflows to -inf for the tiniest temperatures: the leader keeps
    probability one and every other token is reported at the floor, a finite number
    (JSON has no -Infinity), in the wheel, the Other list and a scored append alike."""
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(3)) * 4
    for temperature in (0.009, 1e-3, 1e-12, 1e-300, 5e-324):
        prepared = distribution.Prepared(logits, temperature)
        wheel = distribution.build_distribution(prepared, 0.5, 10, info)
        [top] = wheel.above_threshold_tokens
        assert top.probability > 0.99 and top.token_id == int(logits.argmax())
        samples = wheel.other_category.sample_tokens
        assert len(samples) == 10 and wheel.other_category.total_probability < 0.01
        assert all(math.isfinite(t.log_probability) for t in samples)
        least = distribution.score_token(prepared, int(logits.argmin()), 0.5, str)
        assert math.isfinite(least.log_probability) and least.probability == 0.0
    assert distribution.Prepared(logits, 1e-300).logp.min() == distribution.LOG_PROBABILITY_FLOOR
