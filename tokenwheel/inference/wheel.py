"""Where a spin lands on the wheel, in plain Python (no tensors, so it is easy to check).

The wheel is the above-threshold tokens, most likely first (the order next-token-probs
lists them), then the Other wedge, laid clockwise from the top. One uniform draw ``u`` in
[0, 1) is a point on the rim, ``u`` of a turn from the top: the wedge whose cumulative
span holds ``u`` is where the pointer stops. If that is the Other wedge, ``u`` rescaled
to the wedge, ``(u - head total) / other total``, picks a token inside the renormalized
tail (``distribution.other_token_for_draw``). Each token is therefore drawn with exactly
its probability, and the pointer's angle is inside the landed wedge by construction.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

_BELOW_ONE = math.nextafter(1.0, 0.0)


@dataclass(frozen=True)
class WedgeHit:
    """A draw's wedge. ``start`` and ``end`` are fractions of a turn from the top; the
    last wedge on the wheel ends at exactly 1 so that rounding never leaves a gap."""

    index: int  # 0 = most likely token; len(head) = the Other wedge
    other: bool
    start: float
    end: float
    draw_in_other: float | None  # the draw rescaled to [0, 1) inside the Other wedge


def wedge_for_draw(head: Sequence[float], other_total: float, draw: float) -> WedgeHit:
    """The wedge that ``draw`` falls in, for head probabilities (most likely first) and
    the Other wedge's total probability."""
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"a draw must lie in [0, 1), got {draw!r}")
    cumulative = list(itertools.accumulate(head))
    head_total = cumulative[-1] if cumulative else 0.0
    if other_total > 0.0:
        last = len(head)  # the Other wedge closes the wheel
    else:
        last = max((i for i, p in enumerate(head) if p > 0.0), default=-1)
        if last < 0:
            raise ValueError("the wheel holds no probability")
    # A draw past the head's sum with no Other wedge is in the rounding gap at the end of
    # the rim, which belongs to the last wedge that has any width.
    index = min(bisect.bisect_right(cumulative, draw), last)
    start = cumulative[index - 1] if index else 0.0
    end = 1.0 if index == last else cumulative[index]
    if index < len(head):
        return WedgeHit(index=index, other=False, start=start, end=end, draw_in_other=None)
    inside = min(max((draw - head_total) / other_total, 0.0), _BELOW_ONE)
    return WedgeHit(index=index, other=True, start=start, end=end, draw_in_other=inside)
