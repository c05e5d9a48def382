"""A whole text scored in one forward pass: at every position, the probability the model
gave the token there after the tokens before it, its rank, and the most likely tokens.

The full pass keeps the logits of every position (``logits_to_keep=0``); each row's
log-sum-exp is taken a chunk of positions at a time, as the wheel's softmax
(``distribution.log_probabilities`` at temperature 1: largest logit subtracted, the same
floor), and only numbers for the asked token and the top few cross back to the caller:
never a vocabulary-sized row per position.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from .distribution import LOG_PROBABILITY_FLOOR
from .model import LoadedModel
from .types import PositionNumbers


@dataclass
class PositionsRequest:
    """A text to score on the model thread; the future holds its positions."""

    model: LoadedModel
    ids: tuple[int, ...]
    alternatives: int
    future: Future[tuple[PositionNumbers, ...]] = field(default_factory=Future)


CHUNK = 64  # positions per float64 normalizer: 64 x 49,152 x 8 bytes = 25 MB for SmolLM2


def first_position(token_id: int) -> PositionNumbers:
    """The first token has no context: no probability, rank or alternatives."""
    return PositionNumbers(token_id, None, None, None, (), (), ())


def position_numbers(
    logits: torch.Tensor, ids: Sequence[int], alternatives: int
) -> tuple[PositionNumbers, ...]:
    """``logits[i]`` (float32, one row per position, vocabulary wide) predicts
    ``ids[i + 1]``. Only the normalizer is computed over the whole row in float64; the
    probabilities are read for the asked token and the top few. Ranks and the top few
    come from the float32 logits: softmax keeps their order, and distinct float32 logits
    stay distinct probabilities in float64, so the order (ties by id) is the wheel's.
    Whole chunks at a time: no Python loop over a row's alternatives."""
    results = [first_position(ids[0])]
    for start in range(0, len(ids) - 1, CHUNK):
        rows = logits[start : start + CHUNK]
        wide = rows.to(torch.float64)
        top = wide.max(dim=-1, keepdim=True).values
        normalizer = torch.logsumexp(wide - top, dim=-1, keepdim=True)
        targets = torch.tensor(ids[start + 1 : start + 1 + rows.shape[0]], dtype=torch.long)
        ranks = ((rows > rows.gather(1, targets[:, None])).sum(dim=1) + 1).tolist()
        chosen = _most_likely_rows(rows, min(alternatives, rows.shape[1]))
        target_logp = _log_probabilities(rows, top, normalizer, targets[:, None])[:, 0]
        chosen_logp = _log_probabilities(rows, top, normalizer, chosen)
        rows_out = zip(
            targets.tolist(),
            target_logp.exp().tolist(),
            target_logp.tolist(),
            ranks,
            chosen.tolist(),
            chosen_logp.exp().tolist(),
            chosen_logp.tolist(),
            strict=True,
        )
        for token_id, p, logp, rank, alt_ids, alt_p, alt_logp in rows_out:
            results.append(
                PositionNumbers(
                    token_id=token_id,
                    probability=p,
                    log_probability=logp,
                    rank=int(rank),
                    alternative_ids=tuple(alt_ids),
                    alternative_probabilities=tuple(alt_p),
                    alternative_log_probabilities=tuple(alt_logp),
                )
            )
    return tuple(results)


def _most_likely_rows(rows: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` most likely ids of every row, ties by id as on the wheel."""
    if k <= 0:
        return torch.empty((rows.shape[0], 0), dtype=torch.long)
    best = torch.topk(rows, min(k + 1, rows.shape[1]), dim=1)
    chosen = best.indices[:, :k].clone()
    tied = (best.values[:, 1:] == best.values[:, :-1]).any(dim=1)
    for row in torch.nonzero(tied).flatten().tolist():
        chosen[row] = _most_likely(rows[row], best.values[row], best.indices[row], k)
    return chosen


def _log_probabilities(
    rows: torch.Tensor, top: torch.Tensor, normalizer: torch.Tensor, index: torch.Tensor
) -> torch.Tensor:
    """``distribution.log_probabilities`` at temperature 1, read at ``index`` only: the
    largest logit subtracted, minus the row's log-sum-exp, floored."""
    picked = rows.gather(-1, index)
    return ((picked - top) - normalizer).clamp_(min=LOG_PROBABILITY_FLOOR)


def _most_likely(
    scores: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, k: int
) -> torch.Tensor:
    """The ``k`` most likely ids of a row of ``scores``, ties by id as on the wheel.
    ``topk``'s order among equal values is unspecified: where its first ``k + 1`` values
    hold a tie, sort the row (stable: the lower id first)."""
    if k <= 0:
        return indices[:0]
    if bool((values[1:] == values[:-1]).any()):
        return torch.argsort(scores, descending=True, stable=True)[:k]
    return indices[:k]


def score_positions(
    model: LoadedModel, ids: Sequence[int], alternatives: int
) -> tuple[PositionNumbers, ...]:
    """One forward pass over ``ids`` (no KV cache: it is used once), on the model thread."""
    with torch.inference_mode():
        input_ids = torch.tensor([list(ids)], dtype=torch.long)
        out = model.model(input_ids=input_ids, use_cache=False, logits_to_keep=0)
        logits = out.logits[0, :-1, : model.vocabulary_size].float()
        return position_numbers(logits, ids, alternatives)
