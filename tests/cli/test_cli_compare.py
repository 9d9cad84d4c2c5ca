"""`python main.py export compare`: a real model file and image in, the figure and its sidecar out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_run import export_args, run_args
from PIL import Image

from engine.export import sidecar_path


@pytest.fixture(scope="module")
def files(cam_files) -> dict[str, Path]:
    """The tiny 3-class convnet (cat, dog, owl) of tests/cli/conftest.py and its 30x40 PNG with a
    bright patch at rows 5:20, columns 10:30."""
    return cam_files(patch=True)


def test_export_compare_writes_figure_sidecar_and_table(files, tmp_path: Path) -> None:
    out = tmp_path / "compare.png"
    argv = [*export_args("compare", files, out), "--methods", "gradcam,eigencam,gradient", "--target", "dog"]
    code, stdout, err = run_args([*argv, "--box", "10,5,30,20", "--steps", "4"])
    assert code == 0, err
    assert out.exists() and sidecar_path(out).exists()
    side = json.loads(sidecar_path(out).read_text())["settings"]
    assert side["view"] == "compare" and side["figure"] == "compare"
    assert side["methods"] == ["gradcam", "eigencam", "gradient"] and side["target"] == 1
    assert side["target_name"] == "dog" and side["box"] == [5, 10, 20, 30] and side["sanity"] is True
    assert side["layer"] == "conv2" and side["steps"] == 4
    for row in side["scores"]:
        assert 0 <= row["deletion_auc"] <= 1 and 0 <= row["insertion_auc"] <= 1
        assert row["pointing"] in (True, False) and 0 <= row["energy"] <= 1
        assert row["sanity_passed"] in (True, False) and row["sanity_verdict"]
    assert "export compare" in side["command"] and "--box 10,5,30,20" in side["command"]
    lines = stdout.strip().splitlines()
    assert lines[0] == str(out) and lines[2].split()[0] == "method"
    assert [line.split()[0] for line in lines[3:]] == ["Grad-CAM", "Eigen-CAM", "Gradient"]
    with Image.open(out) as im:
        assert im.size[0] > 300 and im.size[1] > im.size[0]


def test_export_compare_raw_writes_the_rows_and_the_maps(files, tmp_path: Path) -> None:
    out = tmp_path / "rows.png"
    code, stdout, err = run_args(
        [
            *export_args("compare", files, out),
            "--methods",
            "gradcam,integrated",
            "--no-sanity",
            "--steps",
            "2",
            "--raw",
        ]
    )
    assert code == 0, err
    npy = next(p for p in (out.with_suffix(".png.npy"), out.with_suffix(".npy")) if p.exists())
    assert np.load(npy).shape == (2, 30, 40)
    with Image.open(out) as im:
        assert im.size[0] >= 2 * 40 and im.size[1] >= 2 * 30
    side = json.loads(sidecar_path(out).read_text())["settings"]
    assert side["sanity"] is False and all(r["sanity_passed"] is None for r in side["scores"])
    assert all(r["pointing"] is None for r in side["scores"]) and stdout.count("-") >= 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "gradcam,sobel"], "unknown attribution method 'sobel'"),
        (["--box", "10,5,30"], "--box 10,5,30: write X0,Y0,X1,Y1"),
        (["--methods", "gradient", "--layer", "conv2"], "--layer is the CAM layer"),
        (["--methods", "gradcam", "--no-sanity", "--box", "100,100,120,120"], "does not overlap"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, tmp_path: Path, extra, message) -> None:
    """In this process (the real `python main.py` boundary: tests/cli/test_cli.py and
    test_cli_attribution.py::test_main_py_subprocess)."""
    out = tmp_path / "bad.png"
    code, _, err = run_args([*export_args("compare", files, out), *extra])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not out.exists()
