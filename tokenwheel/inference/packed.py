"""Linear layers on weights laid out once for the CPU's matrix kernels (oneDNN).

PyTorch's ``linear`` hands each product to MKL with the weights as they are stored, and on
the few rows a step has (one session, or a batch of a class's sessions) MKL runs far below
what the memory allows: measured on 2 cores (AMD EPYC, PyTorch 2.13, one thread),
SmolLM2's output layer (49,152 x 576, 113 MB) took 7.5 ms for one row, 14.6 ms for two and
26.9 ms for thirty. The same weights reordered once into oneDNN's blocked layout
(``torch.ops.mkldnn._reorder_linear_weight``, what PyTorch's compiler does when it freezes a
model for the CPU) and multiplied by oneDNN (``_linear_pointwise``) took 4.2, 3.6 and
9.9 ms. A whole SmolLM2 step, measured A/B in one process: one row 47 -> 31 ms, two rows
76 -> 36 ms, eight 84 -> 42 ms, thirty 157 -> 77 ms.

The layout is made for 32 rows (the engine's largest batch); a whole one-row step on it
was no slower than on a layout made for one row (31.0 against 35.5 ms). The plain copy of
a weight is dropped from its layer once the packed copy exists, except where another
module shares it (a tied output layer is the input embedding, which looks rows up in the
plain layout): that one is kept, and its packed copy is extra (113 MB for SmolLM2, 671 MB
for Gemma 3). The dropped copies were read from the converted-weights file through a
memory map, which the kept embedding holds open, so their pages stay in the process's RSS
as clean file pages (docs/operations.md gives the measured RSS). The products sum in
another order than MKL's: probabilities move by float32 rounding (at most 8e-6 over
those steps).

Only float32 layers are packed (the layout was measured for float32 only), and only where
PyTorch was built with oneDNN; elsewhere ``linear`` stays. The naive engine (the seed's
design, the benchmark's baseline) keeps plain ``linear``.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn

PACKED_FOR_ROWS = 32


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(  # type: ignore[no-any-return]
        x, self.packed_weight, self.bias, "none", [], ""
    )


def packing_available() -> bool:
    return bool(torch.backends.mkldnn.is_available())


def pack_linears(model: Any) -> int:
    """Give each float32 ``nn.Linear`` of ``model`` a packed weight and the forward above;
    how many. A weight no other module shares is dropped from the module."""
    if not packing_available():
        return 0
    layers = [m for m in model.modules() if type(m) is nn.Linear]
    shared = _shared_weights(model, layers)
    count = 0
    for layer in layers:
        if layer.weight.dtype != torch.float32:
            continue
        packed = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), PACKED_FOR_ROWS)
        layer.register_buffer("packed_weight", packed, persistent=False)
        if id(layer.weight) not in shared:
            del layer.weight  # the packed copy replaces it
            layer.register_parameter("weight", None)
        layer.forward = types.MethodType(_forward, layer)  # type: ignore[method-assign]
        count += 1
    return count


def _shared_weights(model: Any, layers: list[nn.Linear]) -> set[int]:
    """Ids of the linear layers' weights that some other module also holds."""
    owners: dict[int, int] = {}
    for module in model.modules():
        for parameter in module.parameters(recurse=False):
            owners[id(parameter)] = owners.get(id(parameter), 0) + 1
    return {id(layer.weight) for layer in layers if owners.get(id(layer.weight), 0) > 1}
