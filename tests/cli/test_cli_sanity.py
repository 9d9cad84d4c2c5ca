"""`python main.py export sanity`: a real model file and image in, the figure and its sidecar out."""

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
    """The tiny 3-class convnet (cat, dog, owl) of tests/cli/conftest.py and its 30x40 PNG."""
    return cam_files()


def test_export_sanity_writes_figure_and_sidecar(files, tmp_path: Path) -> None:
    out = tmp_path / "sanity.png"
    code, stdout, err = run_args([*export_args("sanity", files, out), "--target", "dog", "--seed", "3"])
    assert code == 0, err
    assert out.exists() and sidecar_path(out).exists()
    side = json.loads(sidecar_path(out).read_text())["settings"]
    assert side["view"] == "sanity" and side["method"] == "gradcam" and side["order"] == "cascade"
    assert side["steps"] == ["original", "out", "conv2", "conv1"] and side["target"] == 1
    assert side["target_name"] == "dog" and side["seed"] == 3 and len(side["spearman"]) == 4
    assert side["figure"] == "sanity" and side["passed"] in (True, False)
    assert "export sanity" in side["command"] and "--seed 3" in side["command"]
    lines = stdout.strip().splitlines()
    assert lines[0] == str(out) and lines[-1].startswith(("passed: ", "failed: "))
    assert any(line.startswith("original") for line in lines)
    with Image.open(out) as im:
        assert im.size[0] > 300


def test_export_sanity_raw_writes_the_row_of_maps(files, tmp_path: Path) -> None:
    out = tmp_path / "row.png"
    code, _, err = run_args(
        [*export_args("sanity", files, out), "--method", "gradient", "--order", "independent", "--raw"]
    )
    assert code == 0, err
    values = np.load(
        out.with_suffix(".png.npy") if out.with_suffix(".png.npy").exists() else out.with_suffix(".npy")
    )
    assert values.shape == (4, 30, 40)
    with Image.open(out) as im:
        assert im.size[1] == 30 + 4 and im.size[0] > 5 * 40


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "sobel"], "invalid choice: 'sobel'"),
        (["--method", "gradient", "--layer", "conv2"], "--layer is the CAM layer"),
        (["--target", "zebra"], "unknown target 'zebra'"),
    ],
)
def test_bad_input_exits_2_with_one_line(files, tmp_path: Path, extra, message) -> None:
    """In this process (the real `python main.py` boundary: tests/cli/test_cli.py and
    test_cli_attribution.py::test_main_py_subprocess)."""
    out = tmp_path / "bad.png"
    code, _, err = run_args([*export_args("sanity", files, out), *extra])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not out.exists()
