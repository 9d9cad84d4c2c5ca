"""`python main.py export maximize|dream`: files, sidecars, reports, one-line errors.

The command runs in this process (cli_run.run_main: exit code, stdout, stderr as `python main.py`
gives them); the real process boundary is tested in test_cli.py. Steps are capped by
CONVSCOPE_MAX_STEPS (10, from tests/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_run import Ran, run_main
from PIL import Image


def cli(*args: str) -> Ran:
    return run_main(*args)


def test_export_maximize_batch_as_png_grid_then_refuse_overwrite(tiny_cnn_path, tmp_path):
    out = tmp_path / "grid.png"
    args = [
        "export",
        "maximize",
        "--model",
        str(tiny_cnn_path),
        "--objective",
        "conv2:0..3",
        "--param",
        "fourier",
        "--regularizers",
        "tv",
        "blur:0.5:2",
        "--zoom",
        "2",
        "--raw",
        "--out",
        str(out),
    ]
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    img = np.asarray(Image.open(out))
    assert img.shape == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2, 3)  # 2x2 grid of 16x16 tiles, zoom 2, 2 px margins
    values = np.load(out.with_suffix(".npy"))  # --raw: the float images beside the grid
    assert values.shape == (4, 16, 16, 3) and values.dtype == np.float32
    side = json.loads(Path(str(out) + ".json").read_text())["settings"]
    assert side["view"] == "maximize" and side["objective"] == "conv2:0..3" and side["steps"] == 10
    assert side["transforms"] == ["jitter:1", "rotate:10", "scale:0.1"] and side["param"] == "fourier"
    assert side["regularizers"] == ["tv:0.05", "blur:0.5:2"]
    assert "export maximize" in side["command"] and len(side["final_objective"]) == 4
    assert "conv2:0: " in res.stdout and " -> " in res.stdout
    before = out.read_bytes()
    again = cli(*args)
    assert again.returncode != 0 and "exists" in again.stderr and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    assert out.read_bytes() == before


def test_export_maximize_class_as_npy_reports_prediction_and_crops_a_neuron(tiny_cnn_path, tmp_path):
    npy = tmp_path / "cls.npy"
    res = cli(
        "export", "maximize", "--model", str(tiny_cnn_path), "--objective", "class:2", "--out", str(npy)
    )
    assert res.returncode == 0, res.stderr
    assert "the network calls this" in res.stdout and "%" in res.stdout
    arr = np.load(npy)
    assert arr.shape == (1, 16, 16, 3) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
    side = json.loads(Path(str(npy) + ".json").read_text())["settings"]
    assert side["predictions"][0]["target"] == 2 and side["shape"] == [1, 16, 16, 3]
    crop = tmp_path / "neuron.npy"
    res = cli(
        "export",
        "maximize",
        "--model",
        str(tiny_cnn_path),
        "--objective",
        "conv1:0..3@5,5",
        "--transforms",
        "--pre-activation",
        "--crop",
        "--out",
        str(crop),
    )
    assert res.returncode == 0, res.stderr
    assert np.load(crop).shape == (4, 3, 3, 3)  # conv1 is 3x3: the changed pixels are its receptive field
    assert json.loads(Path(str(crop) + ".json").read_text())["settings"]["crop"] == [5, 5, 8, 8]


def test_export_maximize_gif_of_the_run(tiny_cnn_path, tmp_path):
    gif = tmp_path / "run.gif"
    res = cli(
        "export",
        "maximize",
        "--model",
        str(tiny_cnn_path),
        "--objective",
        "conv1:0",
        "conv1:1",
        "--transforms",
        "--out",
        str(gif),
    )
    assert res.returncode == 0, res.stderr
    with Image.open(gif) as im:
        assert im.n_frames == 11  # step 0 and each of the 10 steps
        assert im.size == (2 * 16 + 3 * 2, 16 + 2 * 2)
    assert json.loads(Path(str(gif) + ".json").read_text())["settings"]["frames"] == 11


def test_export_dream_keeps_the_photo_size(tiny_cnn_path, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "dream.png"
    res = cli(
        "export",
        "dream",
        "--model",
        str(tiny_cnn_path),
        "--image",
        str(photo),
        "--layers",
        "conv1",
        "0.5*conv2",
        "--octaves",
        "2",
        "--raw",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    assert np.asarray(Image.open(out)).shape == (40, 60, 3)
    side = json.loads(Path(str(out) + ".json").read_text())["settings"]
    assert side["view"] == "dream" and side["layers"] == "conv1 + 0.5*conv2" and side["octaves"] == 2
    assert "conv1 + 0.5*conv2: " in res.stdout


def test_bad_objective_is_one_line(tiny_cnn_path, tmp_path):
    res = cli(
        "export",
        "maximize",
        "--model",
        str(tiny_cnn_path),
        "--objective",
        "nope:1",
        "--out",
        str(tmp_path / "x.png"),
    )
    assert res.returncode != 0
    assert "no layer 'nope'" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["maximize", "--objective", "conv2:0", "--optimizer", "lbfgs", "--out", "x.png"],
            "unknown optimizer",
        ),
        (
            ["maximize", "--objective", "conv2:0", "--transforms", "spin", "--out", "x.png"],
            "unknown transform",
        ),
        (["maximize", "--objective", "conv2:0", "--regularizers", "tv:-1", "--out", "x.png"], "non-negative"),
        (["maximize", "--objective", "conv2:0", "--out", "x.bmp"], ".png"),
        (["dream", "--image", "missing.png", "--layers", "conv2", "--out", "d.png"], "not found"),
    ],
)
def test_bad_options_fail_fast_with_one_line(tiny_cnn_path, tmp_path, args, message):
    args = [a if not a.endswith((".png", ".bmp")) else str(tmp_path / a) for a in args]
    res = cli("export", args[0], "--model", str(tiny_cnn_path), *args[1:])
    assert res.returncode != 0
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_export_maximize_reads_before_the_activation_unless_post_activation(tiny_cnn_path, tmp_path):
    """--pre-activation reads units before their ReLU; --post-activation after it, and a unit that is
    silent from the start then stops early with a one-line explanation recorded in the sidecar. With
    neither, a first-layer conv (linear before its ReLU) is read after it and deeper layers before."""
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(black)  # the untrained conv1 (zero bias) is 0 here
    base = ["export", "maximize", "--model", str(tiny_cnn_path), "--objective", "conv1:0"]
    base += ["--init", "photo", "--image", str(black), "--transforms"]
    post = tmp_path / "post.npy"
    res = cli(*base, "--post-activation", "--out", str(post))
    assert res.returncode == 0, res.stderr
    assert "unit is silent from this start" in res.stdout and "over 3 steps" in res.stdout
    assert "read before the activation" in res.stdout  # the remedy is named
    side = json.loads(Path(str(post) + ".json").read_text())["settings"]
    assert side["pre_activation"] is False and side["stopped"] == "silent" and side["silent"] == [0]
    assert "--post-activation" in side["command"]
    pre = tmp_path / "pre.npy"
    res = cli(*base, "--pre-activation", "--out", str(pre))
    assert res.returncode == 0, res.stderr
    assert "silent" not in res.stdout and "over 10 steps" in res.stdout
    side = json.loads(Path(str(pre) + ".json").read_text())["settings"]
    assert side["pre_activation"] is True and "stopped" not in side and "--pre-activation" in side["command"]
    assert (
        side["final_objective"][0]
        > json.loads(Path(str(post) + ".json").read_text())["settings"]["final_objective"][0]
    )
    auto = tmp_path / "auto.npy"
    assert cli(*base, "--out", str(auto)).returncode == 0
    assert json.loads(Path(str(auto) + ".json").read_text())["settings"]["pre_activation"] is False
    deep = tmp_path / "deep.npy"
    deeper = [a if a != "conv1:0" else "conv2:0" for a in base]
    assert cli(*deeper, "--out", str(deep)).returncode == 0
    assert json.loads(Path(str(deep) + ".json").read_text())["settings"]["pre_activation"] is True
    both = cli(*base, "--pre-activation", "--post-activation", "--out", str(tmp_path / "x.npy"))
    assert both.returncode != 0 and len(both.stderr.strip().splitlines()) == 1


def _settings(path: Path) -> dict:
    return json.loads(Path(str(path) + ".json").read_text())["settings"]


def test_export_maximize_layer_channel_unit_build_the_objective(tiny_cnn_path, tmp_path):
    """--layer alone is the whole layer, --channel a channel of a conv layer, --unit a unit of a dense
    layer, --position a neuron: the same run as the --objective expression, recorded in the sidecar."""
    base = ["export", "maximize", "--model", str(tiny_cnn_path), "--steps", "4"]
    cases = [
        (["--layer", "conv2", "--channel", "1"], "conv2:1"),
        (["--layer", "fc", "--unit", "3"], "fc:3"),
        (["--layer", "conv2"], "conv2"),
        (["--layer", "conv2", "--channel", "0", "--position", "2,3"], "conv2:0@2,3"),
    ]
    for i, (flags, objective) in enumerate(cases):
        out = tmp_path / f"by_layer{i}.npy"
        res = cli(*base, *flags, "--out", str(out))
        assert res.returncode == 0, res.stderr
        side = _settings(out)
        assert side["objective"] == objective, flags
        assert " ".join(flags[:2]) in side["command"] and "--objective" not in side["command"]
        assert f"{objective}: " in res.stdout
    ref = tmp_path / "by_objective.npy"
    assert cli(*base, "--objective", "conv2:1", "--out", str(ref)).returncode == 0
    np.testing.assert_array_equal(np.load(tmp_path / "by_layer0.npy"), np.load(ref))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--layer", "conv2", "--unit", "1"], "use --channel"),
        (["--layer", "fc", "--channel", "1"], "use --unit"),
        (["--layer", "conv2", "--channel", "1", "--unit", "2"], "not both"),
        (["--layer", "conv2", "--channel", "one"], "use an index"),
        (["--layer", "conv2", "--position", "1,2"], "--position needs"),
        (["--objective", "conv2:0", "--channel", "1"], "need --layer"),
        (["--layer", "conv2", "--objective", "conv2:0"], "not allowed with"),
        (["--channel", "1"], "--layer --objective is required"),
    ],
)
def test_export_maximize_layer_options_refuse_mixups_in_one_line(tiny_cnn_path, tmp_path, flags, message):
    out = tmp_path / "x.png"
    res = cli("export", "maximize", "--model", str(tiny_cnn_path), *flags, "--out", str(out))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not out.exists()


def test_export_dream_takes_layer_and_channel(tiny_cnn_path, tmp_path):
    out = tmp_path / "dream.npy"
    args = ["export", "dream", "--model", str(tiny_cnn_path), "--image", "builtin:shape_star"]
    res = cli(*args, "--layer", "conv2", "--channel", "1", "--octaves", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    side = _settings(out)
    assert (
        side["layers"] == "conv2:1"
        and "--layer conv2" in side["command"]
        and "--channel 1" in side["command"]
    )
    two = cli(*args, "--layer", "conv1", "conv2", "--channel", "1", "--out", str(tmp_path / "two.npy"))
    assert two.returncode == 2 and "exactly one --layer" in two.stderr


def test_export_maximize_figure_labels_each_image_and_draws_the_curve(tiny_cnn_path, tmp_path):
    """Without --raw the PNG is the figure at the asked size; the SVG keeps its title as text; the
    canvas is --canvas (--size is the figure's size, as for every kind)."""
    base = ["export", "maximize", "--model", str(tiny_cnn_path), "--layer", "conv2", "--channel", "0,1"]
    base += ["--canvas", "20"]
    png = tmp_path / "fig.png"
    res = cli(*base, "--size", "3x2.5in", "--dpi", "100", "--out", str(png))
    assert res.returncode == 0, res.stderr
    with Image.open(png) as im:
        assert im.size == (300, 250)
    side = _settings(png)
    assert side["size"] == [20, 20] and side["figure"] == "maximize" and "--canvas 20" in side["command"]
    svg = tmp_path / "fig.svg"
    assert cli(*base, "--out", str(svg)).returncode == 0
    text = svg.read_text()
    assert "activation maximization" in text and "conv2:0" in text and "conv2:1" in text


def test_export_dream_figure_and_photo_size(tiny_cnn_path, tmp_path):
    out = tmp_path / "dream.pdf"
    args = ["export", "dream", "--model", str(tiny_cnn_path), "--image", "builtin:shape_star"]
    res = cli(*args, "--layer", "conv2", "--octaves", "1", "--photo-size", "24", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes().startswith(b"%PDF")
    side = _settings(out)
    assert side["figure"] == "dream" and side["size"] == [24, 24] and "--photo-size 24" in side["command"]
