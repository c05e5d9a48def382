"""The benchmark's floor for a step: the bytes a step reads and the bandwidth it reads
them at, both measured, never assumed."""

from __future__ import annotations

import pytest
import torch

from tokenwheel.bench.limits import read_bandwidth_gbs, step_floor, weight_bytes


class Tied(torch.nn.Module):
    """An embedding shared with the output projection, as SmolLM2's is."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(100, 8)
        self.head = torch.nn.Linear(8, 100, bias=False)
        self.head.weight = self.embed.weight
        self.norm = torch.nn.LayerNorm(8)
        self.register_buffer("scale", torch.ones(3, dtype=torch.float64))


def test_a_shared_tensor_counts_once_and_buffers_count() -> None:
    # 100 x 8 float32 once, the norm's weight and bias (8 + 8), a float64 buffer of 3
    assert weight_bytes(Tied()) == 100 * 8 * 4 + 16 * 4 + 3 * 8
    assert weight_bytes(Tied().to(torch.bfloat16)) == (100 * 8 + 16) * 2 + 3 * 2


def test_the_bandwidth_and_the_floor_come_from_a_measurement() -> None:
    bandwidth = read_bandwidth_gbs(threads=1, megabytes=16, repeats=3)
    assert 0.1 < bandwidth < 10_000  # GB/s: a real reading, not a constant
    layer = torch.nn.Linear(2048, 2048, bias=False)  # 16.8 MB: a floor of a few ms
    floor = step_floor(layer, threads=1, step_ms=20.0, megabytes=64)
    assert floor["weight_mb"] == 16.8
    expected_ms = 2048 * 2048 * 4 / (floor["bandwidth_gbs"] * 1e9) * 1000
    assert floor["floor_ms"] == pytest.approx(expected_ms, rel=0.01, abs=0.01)
    assert floor["step_over_floor"] == pytest.approx(20.0 / expected_ms, rel=0.01)


def test_the_bench_measures_the_quantized_engine_only_where_it_can_run() -> None:
    from tokenwheel.bench import quantized_problem
    from tokenwheel.inference.quantized import llama_cpp_problem

    assert quantized_problem("gpt2") == "gpt2 has no GGUF file for the quantized engine"
    assert quantized_problem("nope") == "nope is not a bundled model"
    # a bundled GGUF model: measured exactly when llama-cpp-python is installed
    assert quantized_problem("smollm2-135m") == llama_cpp_problem()
