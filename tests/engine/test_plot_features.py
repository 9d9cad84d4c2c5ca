"""engine.plot.features: the feature-map and filter figures show what the screen shows, in real units."""

from __future__ import annotations

import numpy as np
import pytest

from engine import render
from engine.errors import EngineError
from engine.plot.features import featuremaps_figure, filters_figure


def _maps(signed: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    maps = rng.random((5, 7, 4)).astype(np.float32) * np.array([1.0, 3.0, 0.5, 2.0], np.float32)
    if signed:
        maps -= 0.4
    maps[..., 2] = 0.0  # a dead channel
    return maps


def _as01(panel, bar) -> np.ndarray:
    """Where the panel's values fall on the colour bar, 0..1 (what the colormap is looked up with)."""
    return np.clip((panel.image - bar.vmin) / (bar.vmax - bar.vmin), 0, 1)


@pytest.mark.parametrize("norm", ["global", "per_map", "standardize", "raw"])
@pytest.mark.parametrize("signed", [False, True])
def test_featuremaps_match_the_screens_normalization(norm: str, signed: bool) -> None:
    maps = _maps(signed)
    spec = featuremaps_figure(maps, "conv2", "tiny", "photo.png", norm, "viridis")
    expected, factors = render.normalize(maps, norm)
    assert [p.label for p in spec.panels] == ["0", "1", "2", "3"]
    bar = spec.colorbar
    assert bar is not None and bar.cmap == "viridis"
    for k, panel in enumerate(spec.panels):
        assert (panel.vmin, panel.vmax, panel.cmap) == (bar.vmin, bar.vmax, "viridis")
        np.testing.assert_allclose(_as01(panel, bar), expected[..., k], atol=1e-5)
        if norm == "per_map":
            assert panel.gain == pytest.approx(float(factors[k]))
        else:
            assert panel.gain is None


def test_featuremaps_colour_bar_is_in_activations() -> None:
    maps = _maps()
    top = float(np.abs(maps).max())
    glob = featuremaps_figure(maps, "conv2", norm="global").colorbar
    assert (glob.vmin, glob.vmax) == (pytest.approx(float(maps.min())), pytest.approx(float(maps.max())))
    per = featuremaps_figure(maps, "conv2", norm="per_map").colorbar
    assert (per.vmin, per.vmax) == (0.0, pytest.approx(top)) and "gain" in per.label
    signed = featuremaps_figure(_maps(True), "conv2", norm="per_map").colorbar
    assert signed.vmin == pytest.approx(-signed.vmax)
    std = featuremaps_figure(maps, "conv2", norm="standardize").colorbar
    assert (std.vmin, std.vmax) == (-2.0, pytest.approx(127 / 64)) and "σ" in std.label


def test_featuremaps_title_caption_and_settings() -> None:
    spec = featuremaps_figure(_maps()[None], "block/conv2", "tiny", "photo.png", "per_map", "gray", cols=3)
    assert spec.kind == "featuremaps" and spec.cols == 3
    for part in ("tiny", "block/conv2", "5×7×4", "photo.png"):
        assert part in spec.title
    assert "0–3" in spec.caption and "gain" in spec.caption
    assert spec.settings == {"norm": "per_map", "cmap": "gray", "maps": 4}
    with pytest.raises(EngineError, match="normalization"):
        featuremaps_figure(_maps(), "conv2", norm="nope")
    with pytest.raises(EngineError, match="feature maps"):
        featuremaps_figure(np.zeros((2, 3, 4, 5)), "conv2")


def test_dense_layer_is_one_panel_of_unit_cells() -> None:
    v = np.array([0.0, 1.0, 4.0, 2.0, 0.5], np.float32)
    spec = featuremaps_figure(v, "fc", "tiny", "x.png", "per_map", "magma")
    (panel,) = spec.panels
    assert panel.image.shape == (2, 3)  # 5 units, 3 per row; the sixth cell is blank
    np.testing.assert_array_equal(panel.image.ravel()[:5], v)
    assert np.isnan(panel.image.ravel()[5])
    assert (spec.colorbar.vmin, spec.colorbar.vmax) == (0.0, 4.0) and "gain" not in spec.colorbar.label
    assert "(5)" in spec.title and featuremaps_figure(v, "fc", cols=5).panels[0].image.shape == (1, 5)


def _kernel(cin: int, cout: int = 5) -> np.ndarray:
    w = np.random.default_rng(1).normal(size=(3, 3, cin, cout)).astype(np.float32)
    w[..., 1] *= 0.1  # a weak filter
    return w


@pytest.mark.parametrize("shared", [True, False])
def test_rgb_filters_match_the_screen(shared: bool) -> None:
    w = _kernel(3)
    spec = filters_figure(w, "conv1", "tiny", shared_scale=shared)
    peak = float(np.abs(w).max())
    assert spec.kind == "filters" and len(spec.panels) == 5 and "3×3×3×5" in spec.title
    bar = spec.colorbar
    assert (bar.vmin, bar.vmax, bar.cmap) == (pytest.approx(-peak), pytest.approx(peak), "gray")
    grid = render.filter_grid(w, shared_scale=shared)
    for k, panel in enumerate(spec.panels):
        assert panel.cmap is None and panel.image.shape == (3, 3, 3)
        own = peak if shared else float(np.abs(w[..., k]).max())
        np.testing.assert_allclose(panel.image, 0.5 + 0.5 * w[..., k] / own, atol=1e-6)
        assert panel.gain == (None if shared else pytest.approx(float(grid.factors[k])))
    assert "grey = zero" in spec.caption


def test_deeper_filters_are_signed_maps_of_every_input_channel() -> None:
    w = _kernel(4)
    spec = filters_figure(w, "conv2", "tiny", shared_scale=True)
    peak = float(np.abs(w).max())
    bar = spec.colorbar
    assert bar.cmap == "signed" and bar.vmin == pytest.approx(-bar.vmax) and bar.vmax == pytest.approx(peak)
    panel = spec.panels[3]
    assert panel.cmap == "signed" and panel.image.shape == (7, 7)  # 2x2 kernels, one blank line between
    np.testing.assert_array_equal(panel.image[4:7, 0:3], w[:, :, 2, 3])  # input channel 2: row 1, col 0
    assert np.isnan(panel.image[3]).all() and np.isnan(panel.image[:, 3]).all()
    assert "input channels 0–3" in spec.caption and "blue < 0 < red" in spec.caption


def test_filter_caps_per_filter_gains_and_single_channel() -> None:
    w = _kernel(40, 12)
    spec = filters_figure(w, "conv3", shared_scale=False, max_out=8, max_in=32)
    assert len(spec.panels) == 8 and "8 of 12 filters" in spec.caption and "32 of 40 input" in spec.caption
    grid = render.filter_grid(w, shared_scale=False, max_out=8, max_in=32)
    assert [p.gain for p in spec.panels] == pytest.approx(list(grid.factors))
    one = filters_figure(_kernel(1), "conv1")
    assert one.panels[0].image.shape == (3, 3) and one.panels[0].cmap == "signed"
    with pytest.raises(EngineError):
        filters_figure(np.zeros((3, 3, 2)), "conv1")


def test_figures_of_a_real_model_draw_reproducibly(tiny) -> None:
    import engine
    from engine.plot import figure_bytes, parse_size

    img = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    maps = engine.feature_maps(tiny, img, ["conv2"])["conv2"]
    size = parse_size("3x2.5in", 80)
    for spec in (
        featuremaps_figure(maps, "conv2", tiny.name, "noise", "per_map", "viridis"),
        filters_figure(engine.filters(tiny, "conv1"), "conv1", tiny.name),
        filters_figure(engine.filters(tiny, "conv2"), "conv2", tiny.name, shared_scale=False),
    ):
        png = figure_bytes(spec, "png", "paper", size)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == figure_bytes(spec, "png", "paper", size)
        assert spec.title in figure_bytes(spec, "svg", "paper", size).decode()
