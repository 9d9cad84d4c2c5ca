"""`python main.py export topk`, run as a real subprocess: the figure, its sidecar, the cache, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONVSCOPE_CACHE_DIR=str(cache))
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )


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
        "--out",
        str(out),
    ]
    res = cli(*args, cache=tmp_path / "cache")  # a real process: exit code, stdout, silent stderr
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
