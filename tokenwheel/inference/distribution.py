"""From next-token logits to what the wheel shows, and to what an append records.

probabilities = softmax(logits / temperature) over the whole vocabulary, in float64
(students read these numbers). The Other total is the sum of the tail, not one minus the
head, so head + tail + counts always add up.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .tokens import TokenInfo
from .types import (
    Distribution,
    EmptyOtherError,
    InvalidTokenError,
    OtherCategory,
    ScoredToken,
    TokenProbability,
    WheelLanding,
)
from .wheel import wedge_for_draw

TokenText = Callable[[int], str]
TokenInfoOf = Callable[[int], TokenInfo]


# JSON has no -Infinity: a token with no chance at all (a -inf logit, or a temperature so
# low that (logit - max) / temperature overflows) is reported at this log-probability.
# Sums of a few thousand of them stay finite, so statistics never overflow to -inf.
LOG_PROBABILITY_FLOOR = -1e300


def log_probabilities(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / T) in float64, one row of vocabulary size.

    The largest logit is subtracted before dividing, so any temperature above zero works:
    the leaders stay at exactly 0 and the rest can only fall towards -inf, which is
    floored at :data:`LOG_PROBABILITY_FLOOR` (probability 0 either way)."""
    shifted = logits.to(torch.float64)
    shifted = (shifted - shifted.max()) / temperature
    logp = shifted - torch.logsumexp(shifted, dim=-1)
    return logp.clamp_(min=LOG_PROBABILITY_FLOOR)


def _token(
    token_id: int, logp: torch.Tensor, probs: torch.Tensor, info_of: TokenInfoOf
) -> TokenProbability:
    """A wheel token. Its probability is read from ``probs`` (the vectorized exp), never
    recomputed with ``math.exp``: the two differ in the last bit for some values, and an
    append or a spin (``score_token``) must record the very number the wheel showed."""
    info = info_of(token_id)
    return TokenProbability(
        token_id=token_id,
        token_text=info.text,
        probability=float(probs[token_id]),
        log_probability=float(logp[token_id]),
        display_text=info.display_text,
        partial_utf8=info.partial_utf8,
        special=info.special,
        end_of_sequence=info.end_of_sequence,
    )


def _head_ids(probs: torch.Tensor, above_mask: torch.Tensor) -> torch.Tensor:
    """The wheel's token wedges in order: most likely first, ties by id."""
    above_ids = torch.nonzero(above_mask).flatten()
    order = torch.argsort(probs[above_ids], descending=True, stable=True)
    return above_ids[order]


def build_distribution(
    logits: torch.Tensor,
    temperature: float,
    threshold: float,
    other_top_k: int,
    info_of: TokenInfoOf,
) -> Distribution:
    logp = log_probabilities(logits, temperature)
    probs = logp.exp()
    above_mask = probs >= threshold
    above_ids = _head_ids(probs, above_mask)
    tail_mask = ~above_mask
    tail_count = int(tail_mask.sum())
    tail_total = float(probs[tail_mask].sum())
    samples: list[TokenProbability] = []
    if other_top_k > 0 and tail_count > 0:
        tail_logp = torch.where(tail_mask, logp, torch.full_like(logp, -torch.inf))
        k = min(other_top_k, tail_count)
        _, ids = torch.topk(tail_logp, k)
        samples = [_token(int(i), logp, probs, info_of) for i in ids]
    above = tuple(_token(int(i), logp, probs, info_of) for i in above_ids)
    return Distribution(
        temperature=temperature,
        threshold=threshold,
        above_threshold_tokens=above,
        other_category=OtherCategory(
            total_probability=tail_total, token_count=tail_count, sample_tokens=tuple(samples)
        ),
        total_above_threshold_probability=float(probs[above_mask].sum()),
        vocabulary_size=int(probs.numel()),
    )


def score_token(
    logits: torch.Tensor, token_id: int, temperature: float, threshold: float, text: TokenText
) -> ScoredToken:
    """Where ``token_id`` sits in the distribution at these settings."""
    logp = log_probabilities(logits, temperature)
    if not 0 <= token_id < logp.numel():
        raise InvalidTokenError(
            f"token_id {token_id} is outside the vocabulary (0..{logp.numel() - 1})"
        )
    probs = logp.exp()
    p = probs[token_id]
    above = bool(p >= threshold)
    tail_mask = probs < threshold
    rank_in_other = None if above else int((probs[tail_mask] > p).sum()) + 1
    return ScoredToken(
        token_id=token_id,
        token_text=text(token_id),
        probability=float(p),
        log_probability=float(logp[token_id]),
        category="above_threshold" if above else "other",
        rank=int((probs > p).sum()) + 1,
        other_total_probability=float(probs[tail_mask].sum()),
        other_token_count=int(tail_mask.sum()),
        rank_in_other=rank_in_other,
    )


def other_token_for_draw(
    logits: torch.Tensor, temperature: float, threshold: float, draw: float
) -> int:
    """The Other-wedge token that a uniform ``draw`` in [0, 1) lands on.

    The tail is renormalized to sum to one and laid out from the most to the least
    likely token (ties by id), so a draw maps to a token by inverse CDF: the same draw
    always gives the same token, which makes seeded spins reproducible.
    """
    return _tail_token(log_probabilities(logits, temperature).exp(), threshold, draw)


def _tail_token(probs: torch.Tensor, threshold: float, draw: float) -> int:
    tail_mask = probs < threshold
    tail_ids = torch.nonzero(tail_mask).flatten()
    if tail_ids.numel() == 0:
        raise EmptyOtherError("The Other wedge is empty at this threshold.")
    tail_probs = probs[tail_ids]
    total = float(tail_probs.sum())
    if total <= 0.0:
        raise EmptyOtherError("The Other wedge holds no probability at these settings.")
    order = torch.argsort(tail_probs, descending=True, stable=True)
    cumulative = torch.cumsum(tail_probs[order], dim=0) / total
    index = int(
        torch.searchsorted(cumulative, torch.tensor([draw], dtype=torch.float64), right=True).item()
    )
    index = min(index, order.numel() - 1)
    # never land on a zero-probability token at the very end of the tail
    while index > 0 and float(tail_probs[order[index]]) == 0.0:
        index -= 1
    return int(tail_ids[order[index]])


def land_on_wheel(
    logits: torch.Tensor, temperature: float, threshold: float, draw: float
) -> WheelLanding:
    """Where a spin's uniform ``draw`` stops the pointer, and the token it gives (see
    ``wheel``): a token wedge, or the Other wedge and then a token of its renormalized
    tail."""
    probs = log_probabilities(logits, temperature).exp()
    above_mask = probs >= threshold
    head_ids = _head_ids(probs, above_mask)
    other_total = float(probs[~above_mask].sum())
    hit = wedge_for_draw(probs[head_ids].tolist(), other_total, draw)
    if hit.draw_in_other is None:
        token_id = int(head_ids[hit.index])
    else:
        token_id = _tail_token(probs, threshold, hit.draw_in_other)
    return WheelLanding(
        draw=draw,
        angle=360.0 * draw,
        wedge="other" if hit.other else "token",
        wedge_index=hit.index,
        start_angle=360.0 * hit.start,
        end_angle=360.0 * hit.end,
        token_id=token_id,
    )
