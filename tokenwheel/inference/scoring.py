"""A whole text scored in one forward pass: at every position, the probability the model
gave the token there after the tokens before it, its rank, and the most likely tokens.

The full pass keeps the logits of every position (``logits_to_keep=0``); the softmax is
done in float64 a chunk of positions at a time, as the wheel's (``distribution.
log_probabilities`` at temperature 1: largest logit subtracted, the same floor), and only
numbers for the asked token and the top few cross back to the caller: never a
vocabulary-sized row per position.
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


CHUNK = 64  # positions per float64 softmax: 64 x 49,152 x 8 bytes = 25 MB for SmolLM2


def first_position(token_id: int) -> PositionNumbers:
    """The first token has no context: no probability, rank or alternatives."""
    return PositionNumbers(token_id, None, None, None, (), (), ())


def position_numbers(
    logits: torch.Tensor, ids: Sequence[int], alternatives: int
) -> tuple[PositionNumbers, ...]:
    """``logits[i]`` (one row per position, vocabulary wide) predicts ``ids[i + 1]``."""
    results = [first_position(ids[0])]
    for start in range(0, len(ids) - 1, CHUNK):
        rows = logits[start : start + CHUNK].to(torch.float64)
        shifted = rows - rows.max(dim=-1, keepdim=True).values
        logp = (shifted - torch.logsumexp(shifted, dim=-1, keepdim=True)).clamp_(
            min=LOG_PROBABILITY_FLOOR
        )
        probs = logp.exp()
        targets = torch.tensor(ids[start + 1 : start + 1 + rows.shape[0]], dtype=torch.long)
        chosen = probs.gather(1, targets[:, None])
        ranks = ((probs > chosen).sum(dim=1) + 1).tolist()
        k = min(alternatives, probs.shape[1])
        top = torch.topk(probs, min(k + 1, probs.shape[1]), dim=1)
        for row in range(rows.shape[0]):
            best = _most_likely(probs[row], top.values[row], top.indices[row], k)
            results.append(
                PositionNumbers(
                    token_id=int(targets[row]),
                    probability=float(chosen[row, 0]),
                    log_probability=float(logp[row, targets[row]]),
                    rank=int(ranks[row]),
                    alternative_ids=tuple(best.tolist()),
                    alternative_probabilities=tuple(probs[row, best].tolist()),
                    alternative_log_probabilities=tuple(logp[row, best].tolist()),
                )
            )
    return tuple(results)


def _most_likely(
    probs: torch.Tensor, values: torch.Tensor, indices: torch.Tensor, k: int
) -> torch.Tensor:
    """The ``k`` most likely ids, ties by id as on the wheel. ``topk``'s order among equal
    values is unspecified: where its first ``k + 1`` values hold a tie, sort the row."""
    if k <= 0:
        return indices[:0]
    if bool((values[1:] == values[:-1]).any()):
        return torch.argsort(probs, descending=True, stable=True)[:k]
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
