"""`python main.py export topk`: the figure, --raw, its sidecar, the cache, errors.

Every command runs in this process (cli_run.run_main); the real process boundary is tested in test_cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_run import Ran, run_main
from PIL import Image


def cli(*args: str, cache: Path) -> Ran:
    """The whole command with its own scan cache: (returncode, stdout, stderr)."""
    return run_main(*args, env={"CONVSCOPE_CACHE_DIR": str(cache)})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("topk-set")
    rng = np.random.default_rng(3)
    for cls in ("a", "b"):
        (root / cls).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (18, 20, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    (root / "b" / "broken.png").write_bytes(b"this is not a png")
    return root


def run_cli(capsys, monkeypatch, cache: Path, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (TensorFlow is already imported): (exit code, stdout, stderr)."""
    from engine.cli import main

    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(cache))
    monkeypatch.setenv("CONVSCOPE_DEBUG", "1")  # keep stderr on sys.stderr so capsys sees it
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_topk_writes_figure_and_sidecar(tiny_cnn_path, folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "topk.png"
    args = [
        "export",
        "topk",
        "--model",
        str(tiny_cnn_path),
        "--source",
        str(folder),
        "--layer",
        "conv2",
        "--k",
        "4",
        "--units",
        "0-3",
        "--cols",
        "2",
        "--raw",
        "--out",
        str(out),
    ]
    res = cli(*args, cache=tmp_path / "cache")  # exit code, stdout, silent stderr
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert out.exists() and str(out) in res.stdout
    assert "scanned 12 of 13 images" in res.stdout and "b/broken.png" in res.stdout
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    text = json.dumps(sidecar)
    assert "conv2" in text and str(folder) in text and "export topk" in text

    # same settings: the engine computes the same figure
    import engine
    from engine.dataset import render_units, scan

    result = scan(engine.load_model(tiny_cnn_path), str(folder), "conv2", k=4, cache=False)
    expected = render_units(result, [0, 1, 2, 3], cols=2, cell=48)
    np.testing.assert_array_equal(img[..., :3], expected)
    np.testing.assert_array_equal(np.load(out.with_suffix(".npy")), result.top_values[:4])  # what it shows

    # never overwrites silently; --overwrite replaces, and the cached scan makes it quick
    code, stdout, err = run_cli(capsys, monkeypatch, tmp_path / "cache", *args)
    assert code != 0 and err.count("\n") == 1 and "exists" in err
    code, stdout, err = run_cli(capsys, monkeypatch, tmp_path / "cache", *args, "--overwrite")
    assert code == 0, err
    assert "from cache" in stdout


def test_export_topk_dense_layer(tiny_cnn_path, folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "fc.png"
    code, stdout, err = run_cli(
        capsys,
        monkeypatch,
        tmp_path / "cache",
        "export",
        "topk",
        "--model",
        str(tiny_cnn_path),
        "--source",
        str(folder),
        "--layer",
        "fc",
        "--k",
        "2",
        "--out",
        str(out),
    )
    assert code == 0, err
    assert out.exists() and "scanned 12 of 13" in stdout


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--layer", "nope"], "nope"),
        (["--layer", "conv2", "--units", "99"], "out of range"),
        (["--layer", "conv2", "--channel", "99"], "out of range"),
        (["--layer", "conv2", "--unit", "0"], "--unit needs a dense layer"),
        (["--layer", "fc", "--channel", "0"], "--channel needs a spatial layer"),
        (["--layer", "conv2", "--channel", "0", "--units", "1"], "not both"),
        (["--layer", "conv2", "--k", "0"], "--k"),
        (["--layer", "conv2", "--source", "/no/such/folder"], "not found"),
    ],
)
def test_export_topk_bad_input_is_one_line(
    tiny_cnn_path, folder, tmp_path, capsys, monkeypatch, extra, needle
):
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        tmp_path / "cache",
        "export",
        "topk",
        "--model",
        str(tiny_cnn_path),
        "--source",
        str(folder),
        *extra,
        "--out",
        str(tmp_path / "x.png"),
    )
    assert code != 0
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def _run_command(command: str, out: Path, cache: Path) -> np.ndarray:
    """Run a sidecar's `python main.py export ...` line (FILE.png -> out)."""
    import shlex

    argv = shlex.split(command.replace("FILE.png", str(out)))
    assert argv[:2] == ["python", "main.py"]
    res = cli(*argv[2:], cache=cache)
    assert res.returncode == 0, res.stderr
    return np.asarray(Image.open(out))[..., :3]


def test_classes_page_command_reproduces_the_gui_figure(tiny_cnn_path, folder, tmp_path):
    """The GUI's Classes page export names a command; run, it writes the same heatmap bit for bit."""
    import engine
    from engine.dataset import figures, scan
    from engine.dataset.cli import topk_command
    from engine.plot.dataset import class_matrix

    cache = tmp_path / "cache"
    h = engine.load_model(tiny_cnn_path)
    result = scan(h, str(folder), "conv2", k=3, cache=False)
    for heatmap, stat in (("zscore", "mean"), ("raw", "max")):
        shown, _ = figures.class_heatmap(result, heatmap, stat)  # what the GUI's Classes page shows
        command = topk_command(
            result.model,
            result.source,
            result.layer,
            result.k,
            "classes",
            heatmap=heatmap,
            stat=stat,
            raw=True,
        )
        assert f"--page classes --heatmap {heatmap} --stat {stat} --raw" in command
        out = tmp_path / f"classes-{heatmap}.png"
        np.testing.assert_array_equal(_run_command(command, out, cache), shown)
        values = np.load(out.with_suffix(".npy"))
        np.testing.assert_array_equal(values, class_matrix(result, heatmap, stat))
        sidecar = json.loads(out.with_name(out.name + ".json").read_text())
        settings = sidecar["settings"]
        assert settings["page"] == "classes" and settings["heatmap"] == heatmap and settings["stat"] == stat
        assert "--page classes" in sidecar["command"]


def test_images_page_and_unlabelled_classes(tiny_cnn_path, folder, tmp_path, capsys, monkeypatch):
    import engine
    from engine.dataset import figures, scan
    from engine.dataset.jobs import strongest_maps_of

    out = tmp_path / "images.png"
    base = ["export", "topk", "--model", str(tiny_cnn_path), "--source", str(folder), "--layer", "conv2"]
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        tmp_path / "cache",
        *base,
        "--page",
        "images",
        "--first",
        "4",
        "--count",
        "5",
        "--raw",
        "--out",
        str(out),
    )
    assert code == 0, err
    h = engine.load_model(tiny_cnn_path)
    result = scan(h, str(folder), "conv2", k=9, cache=False)
    ids = figures.page_image_ids(result, 4, 5)
    assert len(ids) == 5 or result.skipped  # the broken file is left out
    maps = strongest_maps_of(h, result, ids)
    np.testing.assert_array_equal(np.asarray(Image.open(out))[..., :3], figures.maps_figure(maps))
    np.testing.assert_array_equal(np.load(out.with_suffix(".npy")), np.stack([sm.map for sm in maps.maps]))
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert "--page images" in sidecar["command"] and "--first 4" in sidecar["command"]

    files = tmp_path / "list.txt"  # a file list has no labels: the classes page says so in one line
    files.write_text("\n".join(str(p) for p in sorted((folder / "a").glob("*.png"))))
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        tmp_path / "cache",
        "export",
        "topk",
        "--model",
        str(tiny_cnn_path),
        "--source",
        str(files),
        "--layer",
        "conv2",
        "--page",
        "classes",
        "--out",
        str(tmp_path / "c.png"),
    )
    assert code != 0 and err.count("\n") == 1 and "no labels" in err


def test_export_topk_channel_is_units(tiny_cnn_path, folder, tmp_path, capsys, monkeypatch):
    """--channel (spatial layer) picks the units as the old --units does, in unit_args' grammar."""
    base = ["export", "topk", "--model", str(tiny_cnn_path), "--source", str(folder), "--layer", "conv2"]
    images = []
    for name, pick in (("old.png", ["--units", "1-2"]), ("new.png", ["--channel", "1..2"])):
        out = tmp_path / name
        code, _, err = run_cli(capsys, monkeypatch, tmp_path / "cache", *base, *pick, "--out", str(out))
        assert code == 0, err
        assert json.loads(out.with_name(name + ".json").read_text())["settings"]["units"] == [1, 2]
        images.append(np.asarray(Image.open(out)))
    np.testing.assert_array_equal(images[0], images[1])


def test_export_topk_figures_sized_vector_and_reproducible(
    tiny_cnn_path, folder, tmp_path, capsys, monkeypatch
):
    """Without --raw each page is a figure: at the size asked for, SVG with its title as text, and
    the sidecar's command writes the same PNG byte for byte."""
    cache = tmp_path / "cache"
    base = ["export", "topk", "--model", str(tiny_cnn_path), "--source", str(folder), "--layer", "conv2"]
    sized = tmp_path / "units.png"
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        cache,
        *base,
        "--channel",
        "0..2",
        "--size",
        "3x2.5in",
        "--dpi",
        "100",
        "--out",
        str(sized),
    )
    assert code == 0, err
    assert Image.open(sized).size == (300, 250)
    assert not sized.with_suffix(".npy").exists()  # the values come with --raw only
    sidecar = json.loads(sized.with_name(sized.name + ".json").read_text())
    assert "tiny" in json.dumps(sidecar) and sidecar["settings"]["page"] == "units"

    for page in ("classes", "images"):
        svg = tmp_path / f"{page}.svg"
        code, _, err = run_cli(capsys, monkeypatch, cache, *base, "--page", page, "--out", str(svg))
        assert code == 0, err
        text = svg.read_text()
        assert "<text" in text and "conv2" in text and "images" in text  # the title stays text

    wide = tmp_path / "classes.png"
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        cache,
        *base,
        "--page",
        "classes",
        "--heatmap",
        "raw",
        "--width",
        "640",
        "--out",
        str(wide),
    )
    assert code == 0, err
    assert Image.open(wide).size[0] == 640
    command = json.loads(wide.with_name(wide.name + ".json").read_text())["command"]
    again = tmp_path / "again.png"
    import shlex

    argv = shlex.split(command)
    argv[argv.index("--out") + 1] = str(again)
    res = cli(*argv[2:], cache=cache)
    assert res.returncode == 0, res.stderr
    assert again.read_bytes() == wide.read_bytes()
