"""Helpers shared by the benchmark scripts: what machine a table was measured on.

Every benchmark prints one line naming the CPU, its thread count and the SIMD flags that decide
TensorFlow's speed (AVX2/AVX-512/bf16/AMX), so a table in bench/RESULTS.md can be compared
with a later run. Only the standard library is used (importing this never imports TensorFlow).
"""

from __future__ import annotations

import os
import platform

# the flags that change which kernels oneDNN / XLA pick on x86, in the order they are printed
SIMD_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
)


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; ("", empty set) where it cannot be read."""
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if not name and line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif not flags and line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                if name and flags:
                    break
    except OSError:
        pass
    return name, flags


def cpu_flags() -> list[str]:
    """The SIMD flags of SIMD_FLAGS this CPU has, in that order."""
    return [f for f in SIMD_FLAGS if f in _cpuinfo()[1]]


def machine_line() -> str:
    """One line: CPU model, thread count, SIMD flags, load average, Python version."""
    name, _ = _cpuinfo()
    name = name or platform.processor() or platform.machine()
    flags = " ".join(cpu_flags()) or "none of " + "/".join(SIMD_FLAGS[:3])
    try:
        load = "load " + " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = "load n/a"
    return f"{name}, {os.cpu_count()} CPU threads, flags: {flags}; {load}; Python {platform.python_version()}"
