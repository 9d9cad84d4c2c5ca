"""`python main.py export cam|saliency`: real files in, a PNG and its JSON sidecar out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_args
from PIL import Image

from engine.export import sidecar_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(cam_files) -> dict[str, Path]:
    """The tiny 3-class convnet (cat, dog, owl) of tests/cli/conftest.py and its 40x30 PNG."""
    return cam_files()


def test_export_cam_writes_png_and_sidecar(files, tmp_path: Path) -> None:
    out = tmp_path / "cam.png"
    code, stdout, err = run_args(
        [
            "export",
            "cam",
            "--model",
            str(files["model"]),
            "--image",
            str(files["image"]),
            "--target",
            "dog",
            "--method",
            "gradcam++",
            "--mapping",
            "gaussian",
            "--map-style",
            "signed",
            "--raw",
            "--out",
            str(out),
        ]
    )
    assert code == 0, err
    img = np.asarray(Image.open(out))
    assert img.shape == (30, 40, 3)  # on the photo's own grid
    sidecar = json.loads(sidecar_path(out).read_text())
    assert "export cam" in sidecar["command"]
    sidecar = sidecar["settings"]
    assert (
        sidecar["method"] == "gradcam++" and sidecar["mapping"] == "gaussian" and sidecar["layer"] == "conv2"
    )
    assert sidecar["targets"][0]["index"] == 1 and sidecar["targets"][0]["name"] == "dog"
    assert "target: dog (1)" in stdout and "field 5x5 px  stride 2x2" in stdout


def test_export_cam_compare_coarse_and_scores(files, tmp_path: Path) -> None:
    out = tmp_path / "two.png"
    code, stdout, err = run_args(
        [
            "export",
            "cam",
            "--model",
            str(files["model"]),
            "--image",
            str(files["image"]),
            "--target",
            "0",
            "--compare",
            "owl",
            "--coarse",
            "--scores",
            "--cmap",
            "magma",
            "--alpha",
            "0.7",
            "--raw",
            "--out",
            str(out),
        ]
    )
    assert code == 0, err
    img = np.asarray(Image.open(out))
    assert img.shape[1] > 2 * 40  # two overlays (plus the coarse maps)
    assert np.load(out.with_suffix(".npy")).shape == (2, 30, 40)  # --raw: both heatmaps
    sidecar = json.loads(sidecar_path(out).read_text())["settings"]
    assert [t["index"] for t in sidecar["targets"]] == [0, 2]
    assert len(sidecar["scores"]) == 2 and 0 <= sidecar["scores"][0]["deletion_auc"] <= 1
    assert "deletion AUC" in stdout
    assert sidecar["baseline"] == "blur" and sidecar["scores"][0]["baseline"] == "blur"  # the default


def test_export_cam_scores_against_a_chosen_baseline(files, tmp_path: Path) -> None:
    from engine.attribution.cam import cam
    from engine.attribution.metrics import deletion_auc
    from engine.images import load_image
    from engine.models import load_model

    common = ["export", "cam", "--model", str(files["model"]), "--image", str(files["image"]), "--scores"]
    sidecars = {}
    for baseline in ("black", "noise"):
        out = tmp_path / f"{baseline}.png"
        code, stdout, err = run_args([*common, "--baseline", baseline, "--out", str(out)])
        assert code == 0, err
        sidecars[baseline] = json.loads(sidecar_path(out).read_text())["settings"]
        assert sidecars[baseline]["baseline"] == baseline and f"baseline {baseline}" in stdout
        assert sidecars[baseline]["scores"][0]["baseline"] == baseline
    # the recorded AUC is the engine's for that baseline
    h = load_model(str(files["model"]))
    photo = load_image(str(files["image"]))
    res = cam(h, photo)
    expected = deletion_auc(h, photo, res.heatmap, res.target, baseline="noise").auc
    assert sidecars["noise"]["scores"][0]["deletion_auc"] == pytest.approx(expected, rel=1e-5)
    code, _, err = run_args([*common, "--baseline", "white", "--out", str(tmp_path / "w.png")])
    assert code != 0 and "invalid choice" in err


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_export_scorecam_records_its_precision(files, tmp_path: Path, precision: str) -> None:
    out = tmp_path / f"score-{precision}.png"
    argv = ["export", "cam", "--model", str(files["model"]), "--image", str(files["image"])]
    argv += ["--method", "scorecam", "--precision", precision, "--batch-size", "3", "--out", str(out)]
    code, _, err = run_args(argv)
    assert code == 0, err
    settings = json.loads(sidecar_path(out).read_text())["settings"]
    assert settings["method"] == "scorecam" and settings["precision"] == precision


def test_export_saliency(files, tmp_path: Path) -> None:
    out = tmp_path / "sal.png"
    code, stdout, err = run_args(
        [
            "export",
            "saliency",
            "--model",
            str(files["model"]),
            "--image",
            str(files["image"]),
            "--method",
            "smoothgrad",
            "--samples",
            "4",
            "--raw",
            "--out",
            str(out),
        ]
    )
    assert code == 0, err
    assert np.asarray(Image.open(out)).shape == (30, 40, 3)
    assert np.load(out.with_suffix(".npy")).shape == (30, 40)
    sidecar = json.loads(sidecar_path(out).read_text())["settings"]
    assert sidecar["method"] == "smoothgrad" and sidecar["map_style"] == "relu" and sidecar["samples"] == 4
    out2 = tmp_path / "layer.png"
    code, _, err = run_args(
        [
            "export",
            "saliency",
            "--model",
            str(files["model"]),
            "--image",
            str(files["image"]),
            "--layer",
            "conv2",
            "--target",
            "3",
            "--method",
            "integrated",
            "--steps",
            "4",
            "--out",
            str(out2),
        ]
    )
    assert code == 0, err
    assert json.loads(sidecar_path(out2).read_text())["settings"]["map_style"] == "signed"


def test_export_saliency_channel_is_layer_target(files, tmp_path: Path) -> None:
    """With --layer, --channel N explains channel N, as the old spelling --target N does."""
    base = ["export", "saliency", "--model", str(files["model"]), "--image", str(files["image"])]
    maps = []
    for name, pick in (("old.png", ["--target", "3"]), ("new.png", ["--channel", "3"])):
        out = tmp_path / name
        code, _, err = run_args([*base, "--layer", "conv2", *pick, "--raw", "--out", str(out)])
        assert code == 0, err
        assert json.loads(sidecar_path(out).read_text())["settings"]["target"] == 3
        maps.append(np.asarray(Image.open(out)))
    np.testing.assert_array_equal(maps[0], maps[1])
    for extra, message in (
        (["--channel", "3"], "need --layer"),
        (["--layer", "conv2", "--channel", "0,1"], "one --channel/--unit index"),
        (["--layer", "conv2", "--channel", "9"], "out of range"),
        (["--layer", "out", "--channel", "0"], "--channel needs a spatial layer"),
        (["--layer", "conv2", "--channel", "1", "--target", "1"], "not both"),
    ):
        code, _, err = run_args([*base, *extra, "--out", str(tmp_path / "x.png")])
        lines = [line for line in err.splitlines() if line.strip()]
        assert code != 0 and len(lines) == 1 and message in lines[0], (extra, err)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target", "9"], "out of range"),
        (["--target", "positive"], "single sigmoid"),
        (["--layer", "out"], "no spatial extent"),
        (["--layer", "nope"], "no layer"),
        (["--method", "magic"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line(files, tmp_path: Path, extra: list[str], message: str) -> None:
    code, _, err = run_args(
        [
            "export",
            "cam",
            "--model",
            str(files["model"]),
            "--image",
            str(files["image"]),
            *extra,
            "--out",
            str(tmp_path / "x.png"),
        ]
    )
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err


def test_refuses_to_overwrite(files, tmp_path: Path) -> None:
    out = tmp_path / "once.png"
    argv = [
        "export",
        "cam",
        "--model",
        str(files["model"]),
        "--image",
        str(files["image"]),
        "--out",
        str(out),
    ]
    assert run_args(argv)[0] == 0
    code, _, err = run_args(argv)
    assert code != 0 and "Traceback" not in err
    assert run_args([*argv, "--overwrite"])[0] == 0


def test_main_py_subprocess(files, tmp_path: Path) -> None:
    """The real entry point: the options are listed, and bad input is one line on stderr."""
    env = {k: v for k, v in os.environ.items() if k != "CONVSCOPE_DEBUG"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "export", "saliency", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0
    for flag in ("--method", "--layer", "--samples", "--steps", "--map-style", "--style", "--raw"):
        assert flag in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "main.py"),
            "export",
            "cam",
            "--model",
            str(files["model"]),
            "--image",
            str(files["image"]),
            "--mapping",
            "nearest",
            "--out",
            str(tmp_path / "x.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "invalid choice" in proc.stderr


def test_export_cam_figure_compare_has_a_row_per_target_and_the_maps_range(files, tmp_path: Path) -> None:
    """The figure: the photo, the overlay and the map per target, one colour bar of the maps' real
    values (what --raw's .npy holds); the raw export is the array image of before."""
    from engine.attribution.cam import cam
    from engine.attribution.figures import compare_overlays
    from engine.images import load_image
    from engine.models import load_model

    base = ["export", "cam", "--model", str(files["model"]), "--image", str(files["image"])]
    base += ["--target", "cat", "--compare", "owl"]
    png = tmp_path / "fig.png"
    code, _, err = run_args([*base, "--width", "700", "--out", str(png)])
    assert code == 0, err
    with Image.open(png) as im:
        assert im.size[0] == 700
    side = json.loads(sidecar_path(png).read_text())["settings"]
    assert side["figure"] == "cam" and side["rows"] == 2 and side["map_style"] == "relu"
    raw = tmp_path / "raw.png"
    code, _, err = run_args([*base, "--raw", "--out", str(raw)])
    assert code == 0, err
    heats = np.load(raw.with_suffix(".npy"))
    assert side["colorbar"]["min"] == pytest.approx(float(heats.min()))
    assert side["colorbar"]["max"] == pytest.approx(float(heats.max()))
    h = load_model(str(files["model"]))
    photo = load_image(str(files["image"]))
    expected = compare_overlays(photo, [cam(h, photo, t).heatmap_relu for t in ("cat", "owl")])
    np.testing.assert_array_equal(np.asarray(Image.open(raw)), expected)
    svg = tmp_path / "fig.svg"
    code, _, err = run_args([*base, "--style", "slide", "--out", str(svg)])
    assert code == 0, err
    assert "Grad-CAM at conv2" in svg.read_text()
