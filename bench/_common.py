"""Helpers shared by the benchmark scripts: what machine a table was measured on.

Every benchmark prints one line naming the CPU, its thread count and the SIMD flags that decide
TensorFlow's speed (AVX2/AVX-512/bf16/AMX), so a table in bench/RESULTS.md can be compared
with a later run. Only the standard library is used (importing this never imports TensorFlow).
"""

from __future__ import annotations

import os
import platform
import sys

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


# ----- the instruction set TensorFlow may use (issue 14: fast on every CPU, not only on AVX-512) -------------
ISA_CAPS = {"full": None, "avx2": "AVX2"}


def apply_isa(isa: str) -> None:
    """Cap the instruction set before TensorFlow loads: "avx2" imitates an AVX2-only CPU.

    Sets ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's convolutions and matmuls) and adds
    --xla_cpu_max_isa=AVX2 to XLA_FLAGS (XLA's own code generation); "full" leaves both unset.
    Must run before the first `import tensorflow`.
    """
    if "tensorflow" in sys.modules:
        raise RuntimeError("apply_isa must run before TensorFlow is imported")
    cap = ISA_CAPS[isa]
    if cap is None:
        os.environ.pop("ONEDNN_MAX_CPU_ISA", None)
        return
    os.environ["ONEDNN_MAX_CPU_ISA"] = cap
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_max_isa" not in flags:
        os.environ["XLA_FLAGS"] = (flags + f" --xla_cpu_max_isa={cap}").strip()


def isa_line() -> str:
    """The machine line plus the ISA cap in force (ONEDNN_MAX_CPU_ISA / XLA_FLAGS)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    what = f"ISA capped: ONEDNN_MAX_CPU_ISA={cap}" if cap else "full ISA (no cap)"
    if "xla_cpu_max_isa" in os.environ.get("XLA_FLAGS", ""):
        what += ", XLA_FLAGS=" + os.environ["XLA_FLAGS"].strip()
    return f"{machine_line()}; {what}"


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB (resource.getrusage; Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rerun_per_isa(isas: list[str], argv: list[str] | None = None) -> int:
    """Run this script again once per ISA in a fresh process (TensorFlow reads the cap at import),
    each with `--isa NAME`, printing their output in turn; returns the worst exit code."""
    import subprocess

    argv = list(sys.argv if argv is None else argv)
    worst = 0
    for isa in isas:
        cmd = [sys.executable, *argv, "--isa", isa]
        print(f"\n## --isa {isa}: {' '.join(cmd[1:])}\n", flush=True)
        worst = max(worst, subprocess.run(cmd, check=False).returncode)
    return worst
