"""The command line: output files, sidecars, and one-line errors.

`proc` is a real `python main.py` process: the process boundary (exit code, stdout, an empty or
one-line stderr with TensorFlow's native logs kept off it) after a model has loaded. Everything
else runs engine.cli.main in this process (`cli`, cli_run.run_main), which saves a TensorFlow
import per command.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_run import Ran, run_main, run_process
from PIL import Image


def proc(*args: str) -> subprocess.CompletedProcess:
    """A real `python main.py ARGS` process."""
    return run_process(*args)


def cli(*args: str) -> Ran:
    """`python main.py ARGS` in this process."""
    return run_main(*args)


def _image(tmp_path) -> Path:
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
    return path


def test_info_prints_layer_table(nested_path):
    """A real process: the table on stdout and nothing on stderr once TensorFlow has loaded."""
    out = proc("info", str(nested_path))
    assert out.returncode == 0, out.stderr
    assert "base/block2_conv1" in out.stdout and "Conv2D" in out.stdout and "params" in out.stdout
    assert out.stderr == ""


def test_export_featuremaps_matches_engine_render(tiny_cnn_path, tmp_path):
    import engine
    from engine import render

    img = _image(tmp_path)
    out_file = tmp_path / "fm.png"
    res = cli(
        "export",
        "featuremaps",
        "--model",
        str(tiny_cnn_path),
        "--image",
        str(img),
        "--layer",
        "conv2",
        "--norm",
        "global",
        "--cmap",
        "viridis",
        "--raw",
        "--out",
        str(out_file),
    )
    assert res.returncode == 0, res.stderr
    h = engine.load_model(tiny_cnn_path)
    maps = engine.feature_maps(h, engine.load_image(img), ["conv2"])["conv2"]
    expected = render.feature_grid(maps, norm="global", cmap="viridis").image
    np.testing.assert_array_equal(np.asarray(Image.open(out_file).convert("RGB")), expected)
    side = json.loads(Path(str(out_file) + ".json").read_text())
    assert side["settings"]["layer"] == "conv2" and side["settings"]["norm"] == "global"
    # the figure's own fixed layout, recorded: --cols N reproduces it
    cols = render.feature_grid(maps, norm="global", cmap="viridis").geometry.cols
    assert side["settings"]["cols"] == cols and side["settings"]["layout"] == "fixed"
    assert "export featuremaps" in side["settings"]["command"] and "--raw" in side["settings"]["command"]
    np.testing.assert_array_equal(np.load(tmp_path / "fm.npy"), maps)  # --raw: the values beside it
    # never overwrite silently
    again = cli(
        "export",
        "featuremaps",
        "--model",
        str(tiny_cnn_path),
        "--image",
        str(img),
        "--layer",
        "conv2",
        "--out",
        str(out_file),
    )
    assert again.returncode != 0 and "exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    forced = cli(
        "export",
        "featuremaps",
        "--model",
        str(tiny_cnn_path),
        "--image",
        str(img),
        "--layer",
        "conv2",
        "--out",
        str(out_file),
        "--overwrite",
    )
    assert forced.returncode == 0, forced.stderr


def test_export_filters_first_layer_and_deeper(tiny_cnn_path, tmp_path):
    for layer in ("conv1", "conv2"):
        out_file = tmp_path / f"{layer}.tif"
        res = cli(
            "export", "filters", "--model", str(tiny_cnn_path), "--layer", layer, "--out", str(out_file)
        )
        assert res.returncode == 0, res.stderr
        assert Image.open(out_file).size[0] > 10


def test_export_filters_layout_options_match_engine_render_and_sidecar(tiny_cnn_path, tmp_path):
    import engine
    from engine import render

    w = engine.filters(engine.load_model(tiny_cnn_path), "conv1")  # (3, 3, 3, 4): RGB + R, G, B sections
    for extra, layout in [
        ((), {}),
        (("--cols", "4", "--sections-per-row", "4"), {"cols": 4, "sections_per_row": 4}),
    ]:
        out_file = tmp_path / f"filters{len(extra)}.png"
        args = (
            "export",
            "filters",
            "--model",
            str(tiny_cnn_path),
            "--layer",
            "conv1",
            "--raw",
            "--out",
            str(out_file),
        )
        res = cli(*args, *extra)
        assert res.returncode == 0, res.stderr
        expected = render.filter_grid(w, **layout)
        np.testing.assert_array_equal(np.asarray(Image.open(out_file).convert("RGB")), expected.image)
        settings = json.loads(Path(str(out_file) + ".json").read_text())["settings"]
        assert settings["layout"] == "fixed"
        assert {k: settings[k] for k in ("cols", "sections_per_row")} == expected.layout
        if not layout:
            assert expected.layout["sections_per_row"] == 1  # the default figure: sections stacked
    assert expected.image.shape[1] > 2 * expected.image.shape[0]  # four sections side by side
    bad = cli(*args[:-2], "--out", str(tmp_path / "bad.png"), "--cols", "0")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "/no/such/model.keras"], "not found"),
        (
            [
                "export",
                "featuremaps",
                "--model",
                "{model}",
                "--image",
                "{image}",
                "--layer",
                "nope",
                "--out",
                "{out}",
            ],
            "no layer 'nope'",
        ),
        (
            [
                "export",
                "featuremaps",
                "--model",
                "{model}",
                "--image",
                "{bad}",
                "--layer",
                "conv1",
                "--out",
                "{out}",
            ],
            "not an image",
        ),
        (["info", "{corrupt}"], "not a readable Keras model file|could not load"),
        (["export", "featuremaps", "--model", "{model}"], "required"),
        (
            ["export", "filters", "--model", "{model}", "--layer", "pool1", "--out", "{out}"],
            "no filter weights",
        ),
        (["export", "filters", "--model", "{model}", "--layer", "conv1", "--out", "{badout}"], "use one of"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(tiny_cnn_path, tmp_path, args, message):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image at all")
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"garbage" * 10)
    subs = {
        "{model}": str(tiny_cnn_path),
        "{image}": str(_image(tmp_path)),
        "{out}": str(tmp_path / "o.png"),
        "{bad}": str(bad),
        "{corrupt}": str(corrupt),
        "{badout}": str(tmp_path / "o.xyz"),
    }
    # one case as a real process: after TensorFlow and the model have loaded, still one line
    run = proc if message == "no layer 'nope'" else cli
    res = run(*[subs.get(a, a) for a in args])
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "o.png").exists()


def test_export_help_lists_one_layer_option_set():
    """Every export kind about a layer takes --layer; a channel is --channel and a unit --unit wherever
    one can be chosen, and `export --help` says so for each kind."""
    res = cli("export", "--help")
    assert res.returncode == 0 and "--channel" in res.stdout and "--unit" in res.stdout
    table = res.stdout.split("layer and image options of each kind:")[1].strip().splitlines()
    flags = {line.split()[0]: set(line.split()[1:]) for line in table}
    assert set(flags) >= {"featuremaps", "filters", "maximize", "dream", "cam", "saliency", "topk"}
    assert all("--layer" in f for f in flags.values()), flags
    assert {"--channel", "--unit"} <= flags["maximize"] and {"--channel", "--unit"} <= flags["dream"]
    kinds = res.stdout.split("positional arguments:")[1].split("options:")[0]
    for kind in flags:  # each kind has a one-line help (argparse may wrap it onto the next line)
        assert re.search(rf"^ +{kind}\s+\w", kinds, re.M), kind
    for kind in ("maximize", "dream"):
        sub = cli("export", kind, "--help").stdout
        assert "--layer" in sub and "--channel" in sub and "--unit" in sub
