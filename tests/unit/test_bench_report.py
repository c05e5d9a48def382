"""The benchmark's report: every figure it prints comes from the run's own numbers."""

from __future__ import annotations

from typing import Any

from tokenwheel import bench


def scenario(steps_per_s: float, p95: float) -> dict[str, Any]:
    kinds = ("next-token-probs", "append-token", "undo")
    return {
        "steps": int(steps_per_s * 30),
        "seconds": 30.0,
        "steps_per_s": steps_per_s,
        "requests": {k: {"count": 10, "p50_ms": p95 / 2, "p95_ms": p95} for k in kinds},
        "errors": {},
    }


def test_the_table_prints_both_classrooms_and_their_ratios() -> None:
    report: dict[str, Any] = {
        "model": "smollm2-135m",
        "machine": {"cpus": 2},
        "students": 30,
        "think_s": [1.0, 3.0],
        "in_process": {
            "steps": [
                {"context": 8, "naive_ms": 60.0, "ours_ms": 50.0},
                {"context": 512, "naive_ms": 900.0, "ours_ms": 60.0},
            ],
            "cache_hit_ms": 1.5,
            "cache_hit_naive_ms": 200.0,
            "step_512_over_8": 1.2,
        },
        "classroom": {
            "naive": {
                "saturated": scenario(4.0, 2000.0),
                "paced": scenario(4.0, 9000.0),
                "spinning": scenario(4.0, 1000.0),
                "peak_rss_mb": 1200,
            },
            "fast": {
                "saturated": scenario(60.0, 500.0),
                "paced": scenario(12.0, 150.0),
                "paced-no-prefetch": scenario(11.0, 300.0),
                "spinning": scenario(4.0, 10.0),
                "peak_rss_mb": 1500,
                "after_30x300": {"rss_mb": 2000, "peak_rss_mb": 2100},
            },
        },
        "ratios": {"steps": [1.2, 15.0]},
    }
    for name in bench.SCENARIOS:
        a, b = report["classroom"]["naive"][name], report["classroom"]["fast"][name]
        report["ratios"][name] = {"throughput": round(b["steps_per_s"] / a["steps_per_s"], 1)}
    table = bench.format_table(report)
    assert "saturated: every student clicks again at once" in table
    assert "paced: each student thinks 1-3 s" in table
    assert "15.0x" in table and "3.0x" in table  # 60/4 and 12/4 steps/s
    assert "60.0x" in table  # paced p95 9000 / 150
    assert "2000 MB" in table
    assert "spinning: each student thinks 1-3 s, spins and watches the spin for 4.5 s" in table


def test_the_table_sets_ours_without_prefetch_beside_ours() -> None:
    naive = {"paced": scenario(4.0, 9000.0), "peak_rss_mb": 1}
    fast = {
        "paced": scenario(12.0, 20.0),
        "paced-no-prefetch": scenario(12.0, 180.0),
        "peak_rss_mb": 1,
        "after_30x300": {"rss_mb": 1, "peak_rss_mb": 1},
    }
    report: dict[str, Any] = {
        "model": "m",
        "machine": {"cpus": 2},
        "students": 30,
        "think_s": [1.0, 3.0],
        "in_process": {"steps": [], "cache_hit_ms": 1, "cache_hit_naive_ms": 1},
        "classroom": {"naive": naive, "fast": fast},
    }
    report["in_process"]["step_512_over_8"] = 1.0
    report["ratios"] = bench.ratios(report)
    assert report["ratios"]["paced"]["prefetch"] == {"p50_ms": 9.0, "p95_ms": 9.0}
    table = bench.format_table(report)
    assert "no prefetch" in table and "9x / 9x faster than ours without it" in table
    assert "      180.0       20.0" in table  # the p95 row: ours without, then with


def test_ratios_survive_a_naive_run_that_answered_no_later_wheel() -> None:
    """A short run can end before the naive server answered any wheel after the first
    (seen with 30 students for 20 s): the run must still report, not raise KeyError."""
    slow = scenario(0.5, 20000.0)
    del slow["requests"]["next-token-probs"]
    report: dict[str, Any] = {
        "in_process": {"steps": [{"context": 8, "naive_ms": 60.0, "ours_ms": 50.0}]},
        "classroom": {
            "naive": {"saturated": scenario(1.0, 30000.0), "paced": slow},
            "fast": {"saturated": scenario(50.0, 500.0), "paced": scenario(10.0, 200.0)},
        },
    }
    ratios = bench.ratios(report)
    assert ratios["saturated"] == {"throughput": 50.0, "p95_next_token_probs": 60.0}
    assert ratios["paced"] == {"throughput": 20.0, "p95_next_token_probs": None}


def test_the_lab_part_prints_naive_ours_and_their_ratio() -> None:
    report: dict[str, Any] = {
        "classroom": {"naive": {}, "fast": {}},
        "in_process": {"steps": [{"context": 8, "naive_ms": 60.0, "ours_ms": 50.0}]},
        "lab": {
            "naive": {
                "sample_n1000_median_ms": 90.0,
                "compare_steps20_median_ms": 6000.0,
                "score_300_tokens_median_ms": 800.0,
            },
            "fast": {
                "sample_n1000_median_ms": 9.0,
                "compare_steps20_median_ms": 1200.0,
                "score_300_tokens_median_ms": 800.0,
            },
        },
    }
    got = bench.ratios(report)["lab"]
    assert got == {
        "sample_n1000_median_ms": 10.0,
        "compare_steps20_median_ms": 5.0,
        "score_300_tokens_median_ms": 1.0,
    }


def test_the_table_sets_a_step_beside_its_floor_when_the_run_measured_it() -> None:
    fast = {"peak_rss_mb": 1, "after_30x300": {"rss_mb": 1, "peak_rss_mb": 1}}
    report: dict[str, Any] = {
        "model": "m",
        "machine": {"cpus": 2},
        "in_process": {
            "steps": [],
            "cache_hit_ms": 1,
            "cache_hit_naive_ms": 1,
            "step_512_over_8": 1.0,
            "limit": {
                "weight_mb": 538.2,
                "bandwidth_gbs": 12.5,
                "floor_ms": 43.06,
                "step_ms": 47.7,
                "step_over_floor": 1.11,
            },
        },
        "classroom": {"naive": {"peak_rss_mb": 1}, "fast": fast},
        "ratios": {},
    }
    line = "floor of a step: 538 MB of weights read at 12.5 GB/s (measured) = 43.1 ms"
    assert line + "; ours at 8 tokens 47.7 ms = 1.1x it" in bench.format_table(report)
    del report["in_process"]["limit"]  # a report from before the floor was measured
    assert "floor of a step" not in bench.format_table(report)


def test_the_quantized_engine_is_set_beside_torch_the_naive_pass_and_its_floor() -> None:
    limit = {
        "weight_mb": 92.0,
        "bandwidth_gbs": 10.0,
        "floor_ms": 9.2,
        "step_ms": 6.7,
        "step_over_floor": 0.73,
    }
    report: dict[str, Any] = {
        "in_process": {"steps": [{"context": 64, "naive_ms": 67.0, "ours_ms": 48.0}]},
        "quantized": {
            "context": 64,
            "steps": [
                {"sequences": 1, "torch_float32_ms": 47.7, "llama_cpp_ms": 6.7, "speedup": 7.1},
                {"sequences": 30, "torch_float32_ms": 300.0, "llama_cpp_ms": 60.0, "speedup": 5.0},
            ],
            "limits": {"llama_cpp": limit},
        },
    }
    text = "\n".join(bench.report.quantized_lines(report))
    assert "         1       47.7        6.7    7.1x" in text
    assert "        30      300.0       60.0    5.0x" in text
    assert "naive full pass at 64 tokens: 67.0 ms (10.0x llama.cpp's one-sequence step)" in text
    assert "floor of a step (llama_cpp): 92 MB read at 10.0 GB/s = 9.2 ms; measured" in text
    report["quantized"] = {"skipped": "llama-cpp-python is not installed"}
    assert bench.report.quantized_lines(report) == [
        "",
        "quantized engine: not measured (llama-cpp-python is not installed)",
    ]
    del report["quantized"]
    assert bench.report.quantized_lines(report) == []


def test_the_wheels_lines_come_from_the_run() -> None:
    from tokenwheel.bench.report import wheel_lines

    assert wheel_lines({}) == []
    lines = "\n".join(
        wheel_lines(
            {
                "wheels": {
                    "server_wall_ms": 3.25,
                    "server_cpu_ms": 2.5,
                    "inference_process_wall_ms": 1.75,
                    "inference_process_cpu_ms": 0.25,
                    "server_cpu_ratio": 10.0,
                }
            }
        )
    )
    assert "built in the server    3.25 / 2.50" in lines
    assert "in the inference process    1.75 / 0.25" in lines and "10x less server CPU" in lines
