"""The figure layer: sizes, styles, colour bars with real values, crisp rasters, reproducible bytes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from engine.errors import EngineError
from engine.export import ExportExists
from engine.plot import (
    ColorBar,
    Curve,
    FigureSpec,
    Panel,
    compose,
    figure_bytes,
    parse_size,
    raw_export,
    value_panels,
    write_figure,
)


def _spec(n: int = 6, shared: bool = True) -> FigureSpec:
    rng = np.random.default_rng(0)
    maps = [rng.random((9, 7)).astype(np.float32) * (i + 1) - 2.0 for i in range(n)]
    panels, bar = value_panels(maps, [f"ch {i}" for i in range(n)], "viridis", shared=shared)
    return FigureSpec(
        "featuremaps",
        "tiny · conv1 · a test image",
        panels,
        colorbar=ColorBar("viridis", bar.vmin, bar.vmax, "activation"),
    )


@pytest.mark.parametrize(
    ("size", "dpi", "width", "pixels"),
    [
        ("3x2in", 100, None, (300, 200)),
        ("3x2", 150, None, (450, 300)),
        ("1200x800px", 300, None, (1200, 800)),
        ("640x480px", None, None, (640, 480)),
    ],
)
def test_the_png_has_the_requested_pixels(size, dpi, width, pixels):
    png = figure_bytes(_spec(), "png", size=parse_size(size, dpi, width))
    assert Image.open(io.BytesIO(png)).size == pixels


def test_a_width_alone_sets_the_width_and_the_layout_the_height():
    tall = Image.open(io.BytesIO(figure_bytes(_spec(12), size=parse_size(width=640)))).size
    wide = Image.open(io.BytesIO(figure_bytes(_spec(2), size=parse_size(width=640)))).size
    assert tall[0] == wide[0] == 640 and tall[1] > wide[1]


@pytest.mark.parametrize("bad", ["3 by 2", "0x2in", "90000x20px", "abc"])
def test_bad_sizes_say_how_to_write_them(bad):
    with pytest.raises(EngineError, match="--size"):
        parse_size(bad)
    with pytest.raises(EngineError, match="--dpi"):
        parse_size("3x2", dpi=5)
    with pytest.raises(EngineError, match="style"):
        parse_size(style="poster")


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf", "tiff"])
def test_the_same_figure_gives_the_same_bytes(fmt):
    assert figure_bytes(_spec(), fmt) == figure_bytes(_spec(), fmt)


def test_svg_keeps_the_title_as_text():
    svg = figure_bytes(_spec(), "svg").decode()
    assert "<text" in svg and "tiny · conv1 · a test image" in svg


def test_the_colour_bar_shows_the_real_data_range():
    spec = _spec()
    fig = compose(spec)
    figure_bytes(spec)  # draws it once as a file would
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    cax = [ax for ax in fig.axes if ax.get_label() == "colorbar"][0]
    lo, hi = sorted(cax.get_ylim())
    values = np.concatenate([np.ravel(p.image) for p in spec.panels])
    assert lo == pytest.approx(values.min()) and hi == pytest.approx(values.max())
    labelled = [
        (float(t.get_text().replace("−", "-")), loc)
        for t, loc in zip(cax.get_yticklabels(), cax.get_yticks())
    ]
    shown = [value for value, loc in labelled if lo <= loc <= hi]  # the ticks inside the bar
    assert all(value == pytest.approx(loc) for value, loc in labelled)  # a label says its position's value
    span = hi - lo
    assert len(shown) >= 3 and min(shown) < lo + span / 4 and max(shown) > hi - span / 4
    assert min(shown) < 0 < max(shown)  # the maps span -2 .. +4: real values, not 0..1


def test_per_map_scaling_records_each_gain():
    panels, bar = value_panels([np.full((3, 3), 1.0), np.full((3, 3), 4.0)], ["a", "b"], "gray", shared=False)
    assert [p.gain for p in panels] == [pytest.approx(4.0), pytest.approx(1.0)]
    assert bar.vmax == pytest.approx(4.0)


def test_raster_cells_stay_crisp():
    checker = np.indices((8, 8)).sum(0) % 2 * 255
    spec = FigureSpec("t", "", (Panel(np.stack([checker] * 3, -1).astype(np.uint8)),))
    rgb = np.asarray(Image.open(io.BytesIO(figure_bytes(spec, size=parse_size("2x2in", 200)))).convert("L"))
    inner = rgb[
        rgb.shape[0] // 2 - 20 : rgb.shape[0] // 2 + 20, rgb.shape[1] // 2 - 20 : rgb.shape[1] // 2 + 20
    ]
    assert set(np.unique(inner)) <= {0, 255}  # nearest neighbour: no grey blends inside the panel


def test_a_curve_and_heatmap_tick_labels_are_drawn():
    heat = np.arange(6, dtype=np.float32).reshape(2, 3)
    spec = FigureSpec(
        "classes",
        "means",
        (
            Panel(
                heat, "classes × units", "magma", 0, 5, xticks=("u0", "u1", "u2"), yticks=("circle", "star")
            ),
        ),
        colorbar=ColorBar("magma", 0.0, 5.0),
        curve=Curve(np.arange(4), (("objective", np.array([0.0, 1.0, 1.5, 1.7])),), "step", "value"),
    )
    fig = compose(spec)
    labels = {t.get_text() for ax in fig.axes for t in ax.get_yticklabels() + ax.get_xticklabels()}
    assert {"circle", "star", "u0", "u2"} <= labels


def test_write_figure_is_atomic_with_a_sidecar_and_never_overwrites(tmp_path):
    out = tmp_path / "fig.pdf"
    written = write_figure(
        out, _spec(), {"command": "python main.py export ..."}, size=parse_size("3x2in", 100)
    )
    assert [p.name for p in written] == ["fig.pdf", "fig.pdf.json"]
    side = json.loads((tmp_path / "fig.pdf.json").read_text())
    assert side["settings"]["figure_style"] == "paper" and side["settings"]["pixels"] == [300, 200]
    assert side["settings"]["colorbar"]["max"] == pytest.approx(_spec().colorbar.vmax)
    with pytest.raises(ExportExists):
        write_figure(out, _spec(), {})
    with pytest.raises(EngineError, match="figure"):
        write_figure(tmp_path / "fig.bmp", _spec(), {})


def test_raw_export_is_the_array_bit_for_bit_plus_its_values(tmp_path):
    image = (np.arange(48, dtype=np.uint8).reshape(4, 4, 3)) * 5
    values = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
    raw_export(tmp_path / "maps.png", image, values, {"view": "t"})
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "maps.png")), image)
    np.testing.assert_array_equal(np.load(tmp_path / "maps.npy", allow_pickle=False), values)
    (tmp_path / "other.npy").write_bytes(b"")
    with pytest.raises(ExportExists):  # its .npy exists: nothing is written
        raw_export(tmp_path / "other.png", image, values, {})
    assert not (tmp_path / "other.png").exists()
