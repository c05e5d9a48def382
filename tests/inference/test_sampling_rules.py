"""Sampling rules (top-k, top-p, min-p) against transformers' own warpers on the same
logits, and spins that land only on kept tokens, as often as their renormalized
probabilities say."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
from transformers import MinPLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from tokenwheel.inference import distribution
from tokenwheel.inference.tokens import TokenInfo
from tokenwheel.inference.types import EmptyOtherError, SamplingRules

RULES = [
    SamplingRules(top_k=1),
    SamplingRules(top_k=5),
    SamplingRules(top_k=40),
    SamplingRules(top_k=10_000),
    SamplingRules(top_p=0.5),
    SamplingRules(top_p=0.9),
    SamplingRules(top_p=1e-9),
    SamplingRules(min_p=0.05),
    SamplingRules(min_p=0.5),
    SamplingRules(min_p=0.999),
    SamplingRules(top_k=20, top_p=0.8),
    SamplingRules(top_k=20, min_p=0.1),
    SamplingRules(top_p=0.95, min_p=0.02),
    SamplingRules(top_k=30, top_p=0.7, min_p=0.05),
]


def transformers_kept(scores: torch.Tensor, rules: SamplingRules) -> torch.Tensor:
    """What transformers keeps: its warpers (min_tokens_to_keep=1, their default) in
    the order generate() applies them, skipping the ones that are off."""
    row = scores.unsqueeze(0)
    ids = torch.zeros((1, 1), dtype=torch.long)
    if rules.top_k > 0:
        row = TopKLogitsWarper(top_k=rules.top_k, min_tokens_to_keep=1)(ids, row)
    if rules.top_p < 1.0:
        row = TopPLogitsWarper(top_p=rules.top_p, min_tokens_to_keep=1)(ids, row)
    if rules.min_p > 0.0:
        row = MinPLogitsWarper(min_p=rules.min_p, min_tokens_to_keep=1)(ids, row)
    return (row[0] > float("-inf")).clone()


def logits_rows() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(14)
    rows = [torch.randn(200, generator=generator, dtype=torch.float64) * s for s in (0.5, 2, 6)]
    # ties: every tie of the k-th score is kept by top-k, min-p compares values
    rows.append(torch.tensor([3.0, 1.0, 1.0, 1.0, 0.0, 0.0, -2.0, 1.0], dtype=torch.float64))
    return rows


@pytest.mark.parametrize("rules", RULES, ids=str)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_the_rules_keep_what_transformers_keeps(rules: SamplingRules, temperature: float) -> None:
    for logits in logits_rows():
        prepared = distribution.Prepared(logits, temperature)
        mine = distribution.kept_by_rules(prepared.logp, rules)
        # the warpers run after temperature, on the scaled logits
        theirs = transformers_kept(logits / temperature, rules)
        assert torch.equal(mine, theirs), (rules, temperature)
        assert bool(mine.any())


def info(token_id: int) -> TokenInfo:
    return TokenInfo(str(token_id), str(token_id), False, False, False)


@pytest.mark.parametrize("rules", RULES, ids=str)
def test_the_wheel_marks_kept_tokens_and_renormalizes(rules: SamplingRules) -> None:
    logits = logits_rows()[1]
    prepared = distribution.Prepared(logits, 1.0)
    shown = distribution.build_distribution(prepared, 0.02, 100, info, rules)
    kept = transformers_kept(logits, rules)
    probs = torch.softmax(logits, dim=-1)
    kept_total = float(probs[kept].sum())
    assert shown.sampling.kept_token_count == int(kept.sum())
    assert shown.sampling.kept_probability == pytest.approx(kept_total, abs=1e-4)
    listed = shown.above_threshold_tokens + shown.other_category.sample_tokens
    for token in listed:
        assert token.kept == bool(kept[token.token_id])
        expected = float(probs[token.token_id]) / kept_total if token.kept else 0.0
        assert token.sampling_probability == pytest.approx(expected, abs=1e-4)
    head = {t.token_id for t in shown.above_threshold_tokens}
    tail_kept = sum(1 for i in range(logits.numel()) if kept[i] and i not in head)
    assert shown.other_category.kept_token_count == tail_kept
    # entropy is before the rules
    expected_entropy = float(-(probs * probs.log()).sum()) / math.log(2)
    assert shown.entropy_bits == pytest.approx(expected_entropy, abs=1e-4)


@pytest.mark.parametrize(
    "rules",
    [SamplingRules(top_k=6), SamplingRules(top_p=0.6), SamplingRules(top_k=12, min_p=0.1)],
    ids=str,
)
def test_spins_land_only_on_kept_tokens_as_often_as_renormalized(rules: SamplingRules) -> None:
    """10,000 seeded draws on the landing function: every count within 4 sigma of the
    renormalized probability; a token the rules cut is never drawn."""
    logits = logits_rows()[1][:40]
    prepared = distribution.Prepared(logits, 1.0)
    kept = transformers_kept(logits, rules)
    probs = torch.softmax(logits, dim=-1)
    expected = torch.where(kept, probs, 0.0) / float(probs[kept].sum())
    draws = random.Random(2026)
    spins = 10_000
    counts = Counter(
        distribution.land_on_wheel(prepared, 0.05, draws.random(), rules).token_id
        for _ in range(spins)
    )
    assert all(bool(kept[token_id]) for token_id in counts)
    for token_id in range(logits.numel()):
        p = float(expected[token_id])
        sigma = math.sqrt(spins * p * (1 - p))
        assert abs(counts[token_id] - spins * p) <= 4 * sigma + 1e-9, (token_id, p)
    # Other draws too: only kept tokens of the tail (or none at all, when the rules cut it)
    if not bool((kept & (probs < 0.05)).any()):
        with pytest.raises(EmptyOtherError):
            distribution.other_token_for_draw(prepared, 0.05, 0.5, rules)
        return
    others = Counter(
        distribution.other_token_for_draw(prepared, 0.05, draws.random(), rules)
        for _ in range(2_000)
    )
    assert all(bool(kept[token_id]) and float(probs[token_id]) < 0.05 for token_id in others)


def test_with_every_rule_off_nothing_changes() -> None:
    logits = logits_rows()[0]
    prepared = distribution.Prepared(logits, 1.0)
    off = SamplingRules()
    for draw in [i / 97 for i in range(97)]:
        assert distribution.land_on_wheel(prepared, 0.01, draw) == distribution.land_on_wheel(
            prepared, 0.01, draw, off
        )
    shown = distribution.build_distribution(prepared, 0.01, 10, info)
    for token in shown.above_threshold_tokens:
        assert token.kept and token.sampling_probability == token.probability
    assert shown.sampling.kept_token_count == logits.numel()
