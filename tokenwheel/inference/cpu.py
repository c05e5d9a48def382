"""What this CPU can do, and which dtypes it can run. Imports no torch at module
level (the server's parent process checks settings with it before forking workers, and
should not carry torch's memory); only :func:`check_dtype` imports it, in the processes
that load models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .types import DTYPE_NAMES, UnsupportedDtypeError

if TYPE_CHECKING:
    import torch


def bf16_supported(cpuinfo: str | None = None) -> bool:
    """Native bfloat16 matrix work: AVX512-BF16 or AMX. Elsewhere bf16 is emulated and
    tens of times slower than float32."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def dtype_problem(dtype: str, cpuinfo: str | None = None) -> str | None:
    """Why ``TOKENWHEEL_DTYPE=dtype`` cannot be used here, or None."""
    if dtype not in DTYPE_NAMES:
        return f"TOKENWHEEL_DTYPE={dtype!r}: use {' or '.join(DTYPE_NAMES)}"
    if dtype == "bfloat16" and not bf16_supported(cpuinfo):
        return (
            "TOKENWHEEL_DTYPE=bfloat16 needs a CPU with native bfloat16 support (avx512_bf16 "
            "or AMX in /proc/cpuinfo); this CPU has neither, and emulated bfloat16 is tens of "
            "times slower than float32. Unset TOKENWHEEL_DTYPE to use float32."
        )
    return None


def check_dtype(dtype: str, cpuinfo: str | None = None) -> torch.dtype:
    """The torch dtype named ``dtype``; UnsupportedDtypeError if it cannot be used here."""
    problem = dtype_problem(dtype, cpuinfo)
    if problem is not None:
        raise UnsupportedDtypeError(problem)
    import torch

    value: torch.dtype = getattr(torch, dtype)
    return value
