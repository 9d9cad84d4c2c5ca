"""`python main.py export sanity`: a real model file and image in, the figure and its sidecar out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.export import sidecar_path

ROOT = Path(__file__).resolve().parents[2]
layers = keras.layers


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny 3-class convnet saved as .keras with class names beside it, and a 30x40 PNG."""
    root = tmp_path_factory.mktemp("sanity_cli")
    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 24, 3))
    x = layers.Conv2D(6, 3, activation="relu", name="conv1")(inp)
    x = layers.Conv2D(8, 3, strides=2, activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(3, activation="softmax", name="out")(x)
    model_path = root / "tiny.keras"
    keras.Model(inp, out, name="tiny").save(model_path)
    (root / "tiny.classes.txt").write_text("cat\ndog\nowl\n")
    img = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)
    image_path = root / "photo.png"
    Image.fromarray(img).save(image_path)
    return {"model": model_path, "image": image_path}


@pytest.fixture(autouse=True)
def _in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVSCOPE_DEBUG", "1")


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _base(files: dict[str, Path], out: Path) -> list[str]:
    return [
        "export",
        "sanity",
        "--model",
        str(files["model"]),
        "--image",
        str(files["image"]),
        "--out",
        str(out),
    ]


def test_export_sanity_writes_figure_and_sidecar(files, tmp_path: Path, capsys) -> None:
    out = tmp_path / "sanity.png"
    code, stdout, err = _run([*_base(files, out), "--target", "dog", "--seed", "3"], capsys)
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


def test_export_sanity_raw_writes_the_row_of_maps(files, tmp_path: Path, capsys) -> None:
    out = tmp_path / "row.png"
    code, _, err = _run(
        [*_base(files, out), "--method", "gradient", "--order", "independent", "--raw"], capsys
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
    out = tmp_path / "bad.png"
    env = {**os.environ, "CONVSCOPE_DEBUG": ""}
    proc = subprocess.run(
        [sys.executable, "main.py", *_base(files, out), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not out.exists()
