"""Scoring a text's positions on small tensors: the wheel's probabilities, ranks and the
most likely tokens (ties by id), chunk boundaries included."""

from __future__ import annotations

import torch

from tokenwheel.inference import distribution, scoring


def test_each_position_is_the_wheels_distribution_after_the_tokens_before_it() -> None:
    generator = torch.Generator().manual_seed(3)
    vocabulary, length = 300, scoring.CHUNK * 2 + 7  # three chunks
    logits = torch.randn(length - 1, vocabulary, generator=generator) * 3
    ids = torch.randint(0, vocabulary, (length,), generator=generator).tolist()
    positions = scoring.position_numbers(logits, ids, 5)
    assert len(positions) == length
    assert positions[0] == scoring.first_position(ids[0]) and positions[0].probability is None
    for i, position in enumerate(positions[1:]):
        prepared = distribution.Prepared(logits[i], 1.0)
        target = ids[i + 1]
        assert position.token_id == target
        assert position.probability is not None and position.log_probability is not None
        assert abs(position.probability - float(prepared.probs[target])) <= 1e-12
        assert abs(position.log_probability - float(prepared.logp[target])) <= 1e-12
        assert position.rank == int((prepared.probs > prepared.probs[target]).sum()) + 1
        assert list(position.alternative_ids) == prepared.order[:5].tolist()
        assert position.alternative_probabilities == tuple(
            prepared.probs[list(position.alternative_ids)].tolist()
        )


def test_ties_among_the_most_likely_go_by_id() -> None:
    row = torch.zeros(1, 10)
    row[0, [7, 2, 9]] = 5.0  # three tokens tied at the top
    row[0, [4, 1]] = 3.0
    positions = scoring.position_numbers(row, [0, 4], 4)
    assert positions[1].alternative_ids == (2, 7, 9, 1)
    assert positions[1].rank == 4  # three tokens are more likely than token 4
