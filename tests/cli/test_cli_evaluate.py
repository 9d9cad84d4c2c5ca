"""`python main.py evaluate cam`: a folder with VOC boxes in, a table, a CSV and a bar chart PNG out."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_args
from PIL import Image

from engine.dataset.boxes import Box, write_voc
from engine.export import read_sidecar

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("boxes")
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray((rng.random((18, 20, 3)) * 255).astype(np.uint8)).save(root / f"img{i}.png")
        write_voc(root / f"img{i}.xml", f"img{i}.png", (20, 18), [Box(str(i), 2, 2, 15, 15)])
    return root


def _args(model: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return ["evaluate", "cam", "--model", str(model), "--source", str(source), "--out", str(out), *extra]


def test_writes_table_csv_and_png(tiny_cnn_path, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    extra = ("--methods", "gradcam,gradcampp", "--mappings", "gaussian,roi", "--steps", "2", "--limit", "2")
    code, stdout, err = run_args(_args(tiny_cnn_path, folder, out, *extra))
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith("| method | mapping | images | pointing % | energy %")
    assert len([line for line in lines if line.startswith("| gradcam")]) == 4
    rows = list(csv.DictReader(out.open()))
    assert [(r["method"], r["mapping"]) for r in rows] == [
        ("gradcam", "gaussian"),
        ("gradcam", "roi"),
        ("gradcam++", "gaussian"),
        ("gradcam++", "roi"),
    ]
    assert all(r["images"] == "2" and 0 <= float(r["pointing_pct"]) <= 100 for r in rows)
    png = tmp_path / "results.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 1000
    side = read_sidecar(png)
    assert side["command"].startswith(
        "python main.py evaluate cam --baseline blur --limit 2 --mappings gaussian,roi"
    )
    assert read_sidecar(out)["settings"]["evaluated"] == 2
    # never overwritten silently
    code, _, err = run_args(_args(tiny_cnn_path, folder, out, *extra))
    assert code == 2 and err.count("\n") == 1 and "--overwrite" in err


@pytest.mark.parametrize(
    "case, message",
    [
        ("method", "unknown"),
        ("no_images", "no images"),
        ("no_boxes", "no boxes for any image"),
        ("not_csv", "write the results as a .csv file"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_cnn_path, folder, tmp_path, case, message) -> None:
    source, out, extra = folder, tmp_path / "r.csv", ()
    if case == "method":
        extra = ("--methods", "gradcam,nosuchcam")
    elif case == "no_images":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "no_boxes":
        source = tmp_path / "plain"
        source.mkdir()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(source / "a.png")
    else:
        out = tmp_path / "r.txt"
    code, stdout, err = run_args(_args(tiny_cnn_path, source, out, *extra))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not out.exists()


def test_main_py_knows_the_command(tmp_path: Path) -> None:
    """Through main.py in a fresh process: `evaluate` is a command, not a window argument."""
    proc = subprocess.run(
        [sys.executable, "main.py", "evaluate", "cam", "--model", "builtin:shapes", "--source", str(tmp_path)]
        + ["--methods", "nosuchcam", "--out", str(tmp_path / "r.csv")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nosuchcam" in proc.stderr
