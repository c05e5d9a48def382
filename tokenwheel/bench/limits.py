"""The floor under a one-token step: the bytes it must read over this machine's memory
bandwidth, measured in the same run.

A one-token step reads every weight once (a tied embedding once, as the output
projection); at the benchmark's contexts the KV cache it also reads is under 1% of that.
The weights are far larger than the CPU's caches, so a step cannot take less than
``weight bytes / bandwidth``; how far a measured step sits above that floor says how much
is left to win without reading fewer bytes (quantized weights, issue 16 item 5).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

BANDWIDTH_MB = 512  # read per measurement: far larger than any CPU cache here
BANDWIDTH_REPEATS = 7


def weight_bytes(module: Any) -> int:
    """Bytes of the module's parameters and buffers a step reads, a tensor shared by two
    names once. A packed linear layer (inference/packed.py) is read in its packed copy;
    the plain weight it keeps for a tied input embedding is read a row at a time, so it
    is not counted."""
    looked_up = {
        id(m.weight)
        for m in module.modules()
        if getattr(m, "packed_weight", None) is not None and m.weight is not None
    }
    seen: set[int] = set()
    total = 0
    for tensor in (*module.parameters(), *module.buffers()):
        # a packed tensor has no data pointer; it belongs to one layer
        key = id(tensor) if tensor.is_mkldnn else tensor.data_ptr()
        if id(tensor) in looked_up or key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def read_bandwidth_gbs(
    threads: int, megabytes: int = BANDWIDTH_MB, repeats: int = BANDWIDTH_REPEATS
) -> float:
    """Memory read bandwidth in GB/s (10**9 bytes) with ``threads`` torch threads: the
    median time to sum a float32 tensor of ``megabytes`` MB that is already in memory."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
        data.sum()  # touch every page once before timing
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            data.sum()
            times.append(time.perf_counter() - t)
        return data.numel() * 4 / statistics.median(times) / 1e9
    finally:
        torch.set_num_threads(before)


def floor(size_bytes: int, bandwidth_gbs: float, step_ms: float) -> dict[str, float]:
    """The floor for a step that reads ``size_bytes`` and how far ``step_ms`` is above it."""
    floor_ms = size_bytes / (bandwidth_gbs * 1e9) * 1000
    return {
        "weight_mb": round(size_bytes / 1e6, 1),
        "bandwidth_gbs": round(bandwidth_gbs, 2),
        "floor_ms": round(floor_ms, 2),
        "step_ms": step_ms,
        "step_over_floor": round(step_ms / floor_ms, 2),
    }


def step_floor(
    module: Any, threads: int, step_ms: float, megabytes: int = BANDWIDTH_MB
) -> dict[str, float]:
    """The floor for one step of the torch ``module``, bandwidth measured now."""
    return floor(weight_bytes(module), read_bandwidth_gbs(threads, megabytes), step_ms)
