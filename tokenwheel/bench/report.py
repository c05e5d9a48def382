"""The report: the text table and the chart of a run's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .classroom import SCENARIOS

# the lab's answers (tokenwheel.bench.lab), naive against ours
LAB_KEYS = ("sample_n1000_median_ms", "compare_steps20_median_ms", "score_300_tokens_median_ms")


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """Ours against naive: per context step, and per classroom scenario."""
    naive, fast = report["classroom"]["naive"], report["classroom"]["fast"]
    result: dict[str, Any] = {
        "steps": [round(r["naive_ms"] / r["ours_ms"], 1) for r in report["in_process"]["steps"]],
    }
    for scenario in SCENARIOS:
        if scenario in fast:
            a, b = naive[scenario], fast[scenario]
            # a short run can end before the naive server answered any later wheel
            wheels = [r["requests"].get("next-token-probs") for r in (a, b)]
            result[scenario] = {
                "throughput": round(b["steps_per_s"] / max(a["steps_per_s"], 1e-9), 1),
                "p95_next_token_probs": round(
                    wheels[0]["p95_ms"] / max(wheels[1]["p95_ms"], 1e-9), 1
                )
                if all(wheels)
                else None,
            }
            without = fast.get(f"{scenario}-no-prefetch")
            if without is not None:  # what prefetch buys: ours without it over ours with it
                wheel, off = b["requests"].get("next-token-probs"), without["requests"]
                result[scenario]["prefetch"] = {
                    q: round(off["next-token-probs"][q] / max(wheel[q], 1e-9), 1)
                    for q in ("p50_ms", "p95_ms")
                    if wheel and "next-token-probs" in off
                }
    if "lab" in report:
        naive_lab, ours_lab = report["lab"]["naive"], report["lab"]["fast"]
        result["lab"] = {
            key: round(naive_lab[key] / max(ours_lab[key], 1e-9), 1) for key in LAB_KEYS
        }
    return result


def format_table(report: dict[str, Any]) -> str:
    lines = [
        f"model {report['model']}, {report['machine']['cpus']} cores",
        "",
        "step latency (median, in-process)",
        f"{'context':>8} {'naive ms':>10} {'ours ms':>10} {'ratio':>7}",
    ]
    for row in report["in_process"]["steps"]:
        lines.append(
            f"{row['context']:>8} {row['naive_ms']:>10.1f} {row['ours_ms']:>10.1f} "
            f"{row['naive_ms'] / row['ours_ms']:>6.1f}x"
        )
    ip = report["in_process"]
    lines += [
        f"cache hit (repeated query, 64 tokens): {ip['cache_hit_ms']:.2f} ms "
        f"vs naive {ip['cache_hit_naive_ms']:.1f} ms "
        f"({ip['cache_hit_naive_ms'] / max(ip['cache_hit_ms'], 1e-9):.0f}x)",
        f"step at 512 / step at 8 (ours): {ip['step_512_over_8']}x",
    ]
    if "limit" in ip:  # reports written before the floor was measured have none
        floor = ip["limit"]
        lines.append(
            f"floor of a step: {floor['weight_mb']:.0f} MB of weights read at "
            f"{floor['bandwidth_gbs']:.1f} GB/s (measured) = {floor['floor_ms']:.1f} ms; "
            f"ours at 8 tokens {floor['step_ms']:.1f} ms = {floor['step_over_floor']:.1f}x it"
        )
    naive, fast = report["classroom"]["naive"], report["classroom"]["fast"]
    for scenario in SCENARIOS:
        if scenario not in fast:
            continue
        a, b = naive[scenario], fast[scenario]
        off = fast.get(f"{scenario}-no-prefetch")  # ours without prefetch, same run
        think = report.get("think_s") or [0, 0]
        pace = {
            "saturated": "every student clicks again at once",
            "paced": f"each student thinks {think[0]:g}-{think[1]:g} s, picks, asks at once",
            "spinning": f"each student thinks {think[0]:g}-{think[1]:g} s, spins and "
            "watches the spin for 4.5 s",
        }[scenario]
        lines += [
            "",
            f"classroom over HTTP, {report['students']} students, {scenario}: {pace}",
            "(first-wheel: each student's first wheel, a prefill of the prompt, all at once;",
            " next-token-probs: every later wheel)",
        ]
        extra = f" {'no prefetch':>12}" if off else ""
        lines.append(f"{'':>24} {'naive':>10}{extra} {'ours':>10} {'ratio':>7}")
        extra = f" {off['steps_per_s']:>12.2f}" if off else ""
        lines.append(
            f"{'steps/s':>24} {a['steps_per_s']:>10.2f}{extra} {b['steps_per_s']:>10.2f} "
            f"{report['ratios'][scenario]['throughput']:>6.1f}x"
        )
        for kind in ("first-wheel", "next-token-probs", "append-token", "spin", "undo"):
            for q in ("p50_ms", "p95_ms"):
                x = a["requests"].get(kind, {}).get(q)
                y = b["requests"].get(kind, {}).get(q)
                if x is None or y is None:
                    continue
                z = off["requests"].get(kind, {}).get(q) if off else None
                extra = f" {z:>12.1f}" if z is not None else (" " * 13 if off else "")
                lines.append(
                    f"{kind + ' ' + q[:3]:>24} {x:>10.1f}{extra} {y:>10.1f} "
                    f"{x / max(y, 1e-9):>6.1f}x"
                )
        extra = f" {str(off['errors']):>12}" if off else ""
        lines.append(f"{'errors':>24} {str(a['errors']):>10}{extra} {str(b['errors']):>10}")
        gain = report["ratios"][scenario].get("prefetch")
        if gain:
            lines.append(
                f"{'prefetch: wheel p50/p95':>24} {gain['p50_ms']:g}x / {gain['p95_ms']:g}x "
                "faster than ours without it"
            )
    if "lab" in report:
        lines += [
            "",
            "the lab's answers, server-side median ms",
            f"{'':>24} {'naive':>10} {'ours':>10} {'ratio':>7}",
        ]
        for key in LAB_KEYS:
            x, y = report["lab"]["naive"][key], report["lab"]["fast"][key]
            lines.append(
                f"{key.split('_median')[0]:>24} {x:>10.1f} {y:>10.1f} "
                f"{report['ratios']['lab'][key]:>6.1f}x"
            )
    lines += wheel_lines(report)
    lines += quantized_lines(report)
    lines += [
        "",
        f"peak RSS MB: naive {naive['peak_rss_mb']}, ours {fast['peak_rss_mb']}",
        f"server RSS after 30 sessions x 300 tokens (ours): "
        f"{fast['after_30x300']['rss_mb']} MB (peak {fast['after_30x300']['peak_rss_mb']} MB)",
    ]
    return "\n".join(lines)


def quantized_lines(report: dict[str, Any]) -> list[str]:
    """The quantized engine's steps beside float32 torch's and the naive full pass."""
    q = report.get("quantized")
    if not q:
        return []
    if "skipped" in q:
        return ["", f"quantized engine: not measured ({q['skipped']})"]
    naive = {row["context"]: row["naive_ms"] for row in report["in_process"]["steps"]}
    lines = [
        "",
        f"one-token steps at {q['context']} tokens, median ms: llama.cpp on the GGUF file "
        "as shipped against float32 torch (ours)",
        f"{'sequences':>10} {'torch ms':>10} {'llama ms':>10} {'ratio':>7}",
    ]
    for row in q["steps"]:
        lines.append(
            f"{row['sequences']:>10} {row['torch_float32_ms']:>10.1f} "
            f"{row['llama_cpp_ms']:>10.1f} {row['speedup']:>6.1f}x"
        )
    if q["context"] in naive:
        one = q["steps"][0]["llama_cpp_ms"]
        lines.append(
            f"naive full pass at {q['context']} tokens: {naive[q['context']]:.1f} ms "
            f"({naive[q['context']] / one:.1f}x llama.cpp's one-sequence step)"
        )
    for engine, limit in q.get("limits", {}).items():
        lines.append(
            f"floor of a step ({engine}): {limit['weight_mb']:.0f} MB read at "
            f"{limit['bandwidth_gbs']:.1f} GB/s = {limit['floor_ms']:.1f} ms; "
            f"measured {limit['step_ms']:.1f} ms = {limit['step_over_floor']:.1f}x it"
        )
    return lines


def _chart(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (make bench installs it)")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rows = report["in_process"]["steps"]
    x = [r["context"] for r in rows]
    left.plot(x, [r["naive_ms"] for r in rows], "o-", label="naive (full forward)")
    left.plot(x, [r["ours_ms"] for r in rows], "o-", label="ours (KV prefix + cache)")
    left.set_xlabel("context (tokens)")
    left.set_ylabel("ms per step (median)")
    left.set_title("Step latency")
    left.legend()
    naive, fast = report["classroom"]["naive"], report["classroom"]["fast"]
    bars = [
        (f"{kind}\n{scenario}", scenario, kind)
        for scenario in SCENARIOS
        if scenario in fast
        for kind in ("next-token-probs", "append-token")
    ]
    width = 0.38
    for offset, (label, data) in enumerate((("naive", naive), ("ours", fast))):
        right.bar(
            [i + offset * width for i in range(len(bars))],
            [data[s]["requests"].get(k, {}).get("p95_ms", 0) for _, s, k in bars],
            width,
            label=label
            + ": "
            + ", ".join(f"{data[s]['steps_per_s']:.1f}" for s in SCENARIOS if s in fast)
            + " steps/s",
        )
    right.set_xticks([i + width / 2 for i in range(len(bars))], [b[0] for b in bars], fontsize=7)
    right.set_ylabel("p95 latency (ms)")
    right.set_yscale("log")
    right.set_title(f"Classroom over HTTP ({report['model']}, {report['students']} students)")
    right.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def wheel_lines(report: dict[str, Any]) -> list[str]:
    """Where a wheel is built (``tokenwheel.bench.wheels``): median ms per wheel."""
    w = report.get("wheels")
    if not w:
        return []
    return [
        "",
        "a wheel from cached logits, median ms: wall / the server thread's CPU",
        f"{'built in the server':>24} {w['server_wall_ms']:>7.2f} / {w['server_cpu_ms']:.2f}",
        f"{'in the inference process':>24} {w['inference_process_wall_ms']:>7.2f} / "
        f"{w['inference_process_cpu_ms']:.2f}   ({w['server_cpu_ratio']:g}x less server CPU)",
    ]
