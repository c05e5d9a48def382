"""The output layer on a few rows at once, as the CPU's matrix library runs it fastest.

A one-token step reads every weight once; for one row PyTorch's ``linear`` is a
matrix-vector product that streams the weights at about the memory's speed. For two to
eight rows (the steps of a few sessions batched together) it becomes a general matrix
product ``x @ W.T`` that is much slower per byte. Measured on 2 cores (AMD EPYC,
PyTorch 2.13's MKL, one thread) on SmolLM2's output layer (49,152 x 576, 113 MB):
one row 7.4 ms; two rows 15.3 ms as ``linear`` and 4.9 ms as ``(W @ x.T).T``; four rows
12.8 against 5.8 ms; eight rows 15.4 against 12.6 ms; thirty rows 33 against 44 ms. So
the weight-first order serves two to eight rows and ``linear`` everything else.

Only the output layer: it is the largest matrix of a small model and its result is the
logits themselves, so the other summation order changes them by float32 rounding only
(about 1e-6 of a logit). Inside the layers the same trick also paid on some batch sizes
and cost on others, and its rounding, carried through 30 layers, moved a probability by
1.5e-4 against a full recompute (the tests allow 1e-4); it is not used there.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

SKINNY_ROWS = range(2, 9)  # rows for which the weight-first order is faster (above)


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    if rows not in SKINNY_ROWS:
        return nn.functional.linear(x, self.weight, self.bias)
    out = torch.mm(self.weight, x.reshape(rows, x.shape[-1]).t()).t()
    if self.bias is not None:
        out = out + self.bias
    return out.reshape(*x.shape[:-1], self.weight.shape[0])


def use_skinny_output(model: Any) -> bool:
    """Give ``model``'s output layer the forward above, if it is a float32 ``nn.Linear``
    (the order was measured on float32 only); whether it did."""
    layer = model.get_output_embeddings()
    if type(layer) is not nn.Linear or layer.weight.dtype != torch.float32:
        return False
    layer.forward = types.MethodType(_forward, layer)  # type: ignore[method-assign]
    return True
