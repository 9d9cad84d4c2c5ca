"""Every export kind writes a publication figure: at the size asked for, text as text, a colour bar
that reads the data's range, the bare image with --raw, and a sidecar command that reproduces it.

Each kind runs once per output on the tiny fixture model (CONVSCOPE_MAX_STEPS caps optimization);
the results are shared by the checks of that kind.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import Produced, build_parser, main
from engine.export import sidecar_path

# kinds whose figure builder is not there yet: xfail(strict=False) until it is
PENDING: set[str] = set()

KINDS = {
    "featuremaps": ["--image", "{image}", "--layer", "conv2", "--norm", "global"],
    "filters": ["--layer", "conv2"],
    "maximize": ["--layer", "conv2", "--channel", "0..1", "--steps", "4"],
    "dream": ["--image", "{image}", "--layer", "conv2", "--octaves", "1", "--steps", "2"],
    "cam": ["--image", "{image}", "--layer", "conv2"],
    "saliency": ["--image", "{image}"],
    "topk-units": ["--source", "{folder}", "--layer", "conv2", "--k", "2", "--page", "units"],
    "topk-classes": ["--source", "{folder}", "--layer", "conv2", "--k", "2", "--page", "classes"],
    "topk-images": [
        "--source",
        "{folder}",
        "--layer",
        "conv2",
        "--k",
        "2",
        "--page",
        "images",
        "--count",
        "4",
    ],
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("figures-in")
    rng = np.random.default_rng(7)
    image = root / "photo.png"
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(image)
    folder = root / "set"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / cls / f"{i}.png")
    return {"{image}": str(image), "{folder}": str(folder)}


def _argv(kind: str, model: Path, inputs: dict[str, str], out: Path, *extra: str) -> list[str]:
    name = kind.split("-")[0]
    args = [inputs.get(a, a) for a in KINDS[kind]]
    return ["export", name, "--model", str(model), *args, *extra, "--out", str(out)]


def _main(argv: list[str]) -> str:
    """main() in this process; the output lines, or a failure with its one error line."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setenv("CONVSCOPE_DEBUG", "1")  # stderr stays where redirect_stderr sees it
        code = main(argv)
    assert code == 0, f"{' '.join(argv)}\n{err.getvalue()}"
    return out.getvalue()


@pytest.fixture(scope="module", params=list(KINDS))
def exported(request, tiny_cnn_path, inputs, tmp_path_factory) -> dict:
    """One kind: the files the CLI writes for it, and what its runner produced for one of them (the
    SVG, which takes no figure option: the runner's own arguments are the defaults)."""
    from engine.cli import _RUNNERS

    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    argv = lambda name, *extra: _argv(kind, tiny_cnn_path, inputs, root / name, *extra)  # noqa: E731
    name = build_parser().parse_args(argv("runner.png")).kind
    runner, seen = _RUNNERS[name], []

    def recording(args):
        """The kind's runner, unchanged; what it returns is kept (main() runs each kind once per file)."""
        seen.append(runner(args))
        return seen[-1]

    files = {
        "sized": root / "sized.png",
        "wide": root / "wide.png",
        "svg": root / "fig.svg",
        "pdf": root / "fig.pdf",
        "tif": root / "fig.tif",
        "raw": root / "raw.png",
    }
    _main(argv("sized.png", "--size", "3x2in", "--dpi", "100"))
    _main(argv("wide.png", "--width", "640", "--style", "slide"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(_RUNNERS, name, recording)
        _main(argv("fig.svg"))
    assert len(seen) == 1
    produced = Produced.of(seen[0])
    _main(argv("fig.pdf", "--style", "slide"))
    _main(argv("fig.tif", "--dpi", "150"))
    _main(argv("raw.png", "--raw"))
    return {"kind": kind, "produced": produced, "files": files, "root": root}


def _xfail_pending(exported: dict) -> None:
    if exported["kind"].split("-")[0] in PENDING and exported["produced"].figure is None:
        pytest.xfail("figure pending")


def test_png_has_the_requested_pixel_size(exported) -> None:
    _xfail_pending(exported)
    assert exported["produced"].figure is not None, "no figure for this kind"
    with Image.open(exported["files"]["sized"]) as im:
        assert im.size == (300, 200)  # 3x2 in at 100 dpi
    with Image.open(exported["files"]["wide"]) as im:
        assert im.size[0] == 640 and im.size[1] > 16
    side = json.loads(sidecar_path(exported["files"]["sized"]).read_text())["settings"]
    assert side["pixels"] == [300, 200] and side["figure_dpi"] == 100 and side["figure_style"] == "paper"


def test_svg_keeps_the_title_as_text(exported) -> None:
    _xfail_pending(exported)
    spec = exported["produced"].figure
    svg = exported["files"]["svg"].read_text()
    texts = " ".join(re.sub(r"<[^>]+>", "", t) for t in re.findall(r"<text\b.*?</text>", svg, re.S))
    import html

    texts = html.unescape(texts)
    words = [w for w in re.split(r"\s+", spec.title) if w]
    assert words and all(w in texts for w in words), (spec.title, texts[:300])


def _ticks(cax) -> list[tuple[float, float]]:
    """(position, the value its label reads) of each tick label drawn inside the colour bar."""
    lo, hi = sorted(cax.get_ylim())
    out = []
    for tick in cax.yaxis.get_major_ticks():
        loc, text = tick.get_loc(), tick.label2.get_text() or tick.label1.get_text()
        if lo - 1e-9 * abs(hi - lo) <= loc <= hi + 1e-9 * abs(hi - lo) and text.strip():
            out.append((float(loc), float(text.replace("\u2212", "-"))))
    return out


def test_colour_bar_reads_the_data_range(exported) -> None:
    _xfail_pending(exported)
    from engine.plot import compose, parse_size

    spec = exported["produced"].figure
    if spec.colorbar is None:
        assert not any(p.cmap for p in spec.panels if np.ndim(p.image) == 2), "value maps need a colour bar"
        return
    bar = spec.colorbar
    fig = compose(spec, "paper", parse_size(None, 100))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    caxes = [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]
    assert len(caxes) == 1
    lo, hi = sorted(caxes[0].get_ylim())
    assert lo == pytest.approx(bar.vmin, rel=1e-5, abs=1e-6) and hi == pytest.approx(
        bar.vmax, rel=1e-5, abs=1e-6
    )
    ticks = _ticks(caxes[0])
    assert len(ticks) >= 2
    span = bar.vmax - bar.vmin
    offset = caxes[0].yaxis.get_offset_text().get_text()
    assert not offset, f"tick labels need the offset {offset!r} to read right"
    for loc, value in ticks:  # each label reads its own position: real values, no hidden factor
        assert value == pytest.approx(loc, abs=0.02 * span), ticks
    values_read = [v for _, v in ticks]
    assert max(values_read) - min(values_read) >= 0.4 * span  # the ticks cover the range
    side = json.loads(sidecar_path(exported["files"]["sized"]).read_text())["settings"]
    assert side["colorbar"]["min"] == pytest.approx(bar.vmin) and side["colorbar"]["max"] == pytest.approx(
        bar.vmax
    )
    # real values: the bar's scale is the values' own, not 0..1 of a normalization
    values = np.load(exported["files"]["raw"].with_suffix(".npy"))
    finite = values[np.isfinite(values)]
    peak = float(np.abs(finite).max())
    assert max(abs(bar.vmin), abs(bar.vmax)) <= peak * 1.001 + 1e-6
    assert bar.vmin <= float(finite.max()) and bar.vmax >= float(finite.min())
    assert max(abs(bar.vmin), abs(bar.vmax)) >= 0.25 * peak


def test_raw_is_the_runners_array_image_and_its_values(exported) -> None:
    produced: Produced = exported["produced"]
    raw = exported["files"]["raw"]
    with Image.open(raw) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), produced.image[..., :3])
    if produced.values is not None:
        np.testing.assert_array_equal(np.load(raw.with_suffix(".npy")), np.asarray(produced.values))
    assert "--raw" in json.loads(sidecar_path(raw).read_text())["command"]


def test_sidecar_command_reproduces_the_png(exported) -> None:
    _xfail_pending(exported)
    first = exported["files"]["sized"]
    command = json.loads(sidecar_path(first).read_text())["settings"]["command"]
    argv = shlex.split(command)
    assert argv[:3] == ["python", "main.py", "export"]
    argv = argv[2:]
    again = exported["root"] / "again.png"
    argv[argv.index("--out") + 1] = str(again)
    _main(argv)
    assert again.read_bytes() == first.read_bytes()


def test_pdf_and_tiff_open(exported) -> None:
    _xfail_pending(exported)
    pdf = exported["files"]["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF") and b"%%EOF" in pdf[-64:]
    assert (
        json.loads(sidecar_path(exported["files"]["pdf"]).read_text())["settings"]["figure_style"] == "slide"
    )
    with Image.open(exported["files"]["tif"]) as im:
        assert im.format == "TIFF" and im.size[0] == round(3.5 * 150)
        im.load()


def test_bad_figure_options_fail_before_the_model_loads(tmp_path, capsys) -> None:
    out = tmp_path / "x.png"
    base = ["export", "featuremaps", "--model", "/no/such/model.keras", "--image", "x.png", "--layer", "c"]
    cases = [
        (["--size", "3xin"], "--size"),
        (["--size", "2x2in", "--width", "300"], "not both"),
        (["--dpi", "0"], "--dpi"),
        (["--raw", "--dpi", "100"], "shape a figure"),
        (["--raw"], None),  # .svg below
    ]
    for extra, message in cases:
        target = tmp_path / "x.svg" if message is None else out
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CONVSCOPE_DEBUG", "1")
            code = main([*base, *extra, "--out", str(target)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert (message or "--raw writes") in err and "not found" not in err
    assert not out.exists()
