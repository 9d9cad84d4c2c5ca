"""main.py: which arguments open the window, which run the CLI, and which are a mistyped command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--model", "builtin:shapes"],
        ["--model=builtin:shapes"],
        ["builtin:shape_star"],
        [str(ROOT / "resources" / "images" / "digit_7.png")],
        ["-platform", "offscreen", str(ROOT / "resources" / "images")],
    ],
)
def test_window_arguments_open_the_window(argv: list[str]) -> None:
    assert main.window_arguments_problem(argv) is None


def test_a_mistyped_command_is_named() -> None:
    assert main.window_arguments_problem(["evaluat", "cam", "--source", "x"]) == "unknown command 'evaluat'"
    missing = main.window_arguments_problem([str(ROOT / "README.md"), "/no/such/photo.png"])
    assert missing == "no such file: /no/such/photo.png"


def test_unknown_command_exits_2_with_one_line_listing_the_commands() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "evaluat", "cam", "--source", "x"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "unknown command 'evaluat'" in lines[0]
    for command in ("info", "export", "train"):
        assert command in lines[0]
    assert proc.stdout == ""
