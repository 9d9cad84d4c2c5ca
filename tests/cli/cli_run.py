"""Run the command line in this process: engine.cli.main with what `python main.py ...` would print.

A real `python main.py` pays a TensorFlow import (5-10 s) per call; here TensorFlow is imported once
for the whole run. CONVSCOPE_DEBUG=1 keeps fd 2 where it is (engine.cli.quiet_native_stderr would
send it to /dev/null), as the other in-process CLI tests do. The process boundary itself (exit code
and one-line stderr of `python main.py`, TensorFlow's native logs kept off it) stays tested by the
few real subprocess tests: tests/cli/test_cli.py, test_cli_attribution.py, test_cli_evaluate.py
and test_main_dispatch.py.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ran:
    """What a finished command gives back, named as subprocess.CompletedProcess names it."""

    returncode: int
    stdout: str
    stderr: str


def run_main(*args: str, env: dict[str, str] | None = None) -> Ran:
    """`python main.py ARGS` in this process: (exit code, stdout, stderr), argparse's --help included."""
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setenv("CONVSCOPE_DEBUG", "1")
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # --help, as sys.exit(main()) in main.py would end
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Ran(code, out.getvalue(), err.getvalue())


def export_args(kind: str, files: dict[str, Path], out: Path) -> list[str]:
    """`export KIND --model M --image I --out OUT` for the cam_files fixture's model and photo."""
    return ["export", kind, "--model", str(files["model"]), "--image", str(files["image"]), "--out", str(out)]


def run_args(argv: list[str]) -> tuple[int, str, str]:
    """run_main of an argument list, as (exit code, stdout, stderr)."""
    ran = run_main(*argv)
    return ran.returncode, ran.stdout, ran.stderr


def run_process(
    *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """`python main.py ARGS` as a real process (pays a TensorFlow import when the command loads a model)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )
