"""engine.render: normalization, colormaps, tiling geometry, grids, overlays and boxes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import render
from engine.errors import EngineError


def _is_rgb_uint8(img: np.ndarray) -> bool:
    return img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.flags.c_contiguous


# --------------------------------------------------------------------------- normalize


def test_global_is_min_max_over_the_whole_stack() -> None:
    maps = np.zeros((2, 2, 2), np.float32)
    maps[..., 0] = [[0, 1], [2, 3]]
    maps[..., 1] = [[4, 5], [6, 8]]
    values, factors = render.normalize(maps, "global")
    assert values.dtype == np.float32 and values.shape == maps.shape
    np.testing.assert_allclose(values[..., 0], [[0, 1 / 8], [2 / 8, 3 / 8]], rtol=1e-6)
    np.testing.assert_allclose(values[..., 1], [[4 / 8, 5 / 8], [6 / 8, 1]], rtol=1e-6)
    np.testing.assert_array_equal(factors, [1, 1])


def test_per_map_non_negative_divides_by_own_max_and_reports_factor() -> None:
    maps = np.zeros((1, 3, 3), np.float32)
    maps[0, :, 0] = [0, 6, 12]  # max 12: the strongest map
    maps[0, :, 1] = [0, 1, 2]  # max 2: amplified x6
    maps[0, :, 2] = [0, 0, 0]  # dead map
    values, factors = render.normalize(maps, "per_map")
    np.testing.assert_allclose(values[0, :, 0], [0, 0.5, 1])
    np.testing.assert_allclose(values[0, :, 1], [0, 0.5, 1])
    np.testing.assert_array_equal(values[0, :, 2], [0, 0, 0])
    np.testing.assert_allclose(factors, [1, 6, 1])
    assert factors.dtype == np.float32 and factors.shape == (3,)


def test_per_map_signed_stack_is_symmetric_about_one_half() -> None:
    maps = np.zeros((1, 3, 2), np.float32)
    maps[0, :, 0] = [-4, 0, 2]  # max |x| = 4
    maps[0, :, 1] = [0, 0, 0]
    values, factors = render.normalize(maps, "per_map")
    np.testing.assert_allclose(values[0, :, 0], [0, 0.5, 0.75])
    np.testing.assert_allclose(values[0, :, 1], [0.5, 0.5, 0.5])  # zero stays the zero level
    np.testing.assert_allclose(factors, [1, 1])


def test_per_map_factor_for_a_signed_stack() -> None:
    maps = np.stack([np.array([[-10.0, 5.0]]), np.array([[0.5, -2.5]])], axis=-1)
    _, factors = render.normalize(maps, "per_map")
    np.testing.assert_allclose(factors, [1.0, 4.0])


def test_standardize_follows_the_keras_recipe() -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(3, 2, size=(5, 6, 2)).astype(np.float32)
    values, factors = render.normalize(maps, "standardize")
    for k in range(2):
        m = maps[..., k]
        expected = np.clip(((m - m.mean()) / m.std() * 64 + 128) / 255, 0, 1)
        np.testing.assert_allclose(values[..., k], expected, atol=1e-5)
    np.testing.assert_array_equal(factors, [1, 1])


def test_raw_clips() -> None:
    values, _ = render.normalize(np.array([[[-1.0], [0.25], [3.0]]]), "raw")
    np.testing.assert_allclose(values[0, :, 0], [0, 0.25, 1])


@pytest.mark.parametrize("mode", render.NORMALIZATIONS)
@pytest.mark.parametrize("level", [0.0, 7.5, -2.0])
def test_constant_maps_do_not_divide_by_zero(mode: str, level: float) -> None:
    maps = np.full((4, 4, 3), level, np.float32)
    values, factors = render.normalize(maps, mode)
    assert np.isfinite(values).all() and np.isfinite(factors).all()
    assert values.min() >= 0 and values.max() <= 1
    np.testing.assert_array_equal(factors, [1, 1, 1])
    assert np.unique(values).size == 1
    if mode in ("global", "standardize") or level == 0.0:
        np.testing.assert_array_equal(values, 0)


@pytest.mark.parametrize("mode", render.NORMALIZATIONS)
def test_nan_and_inf_count_as_zero(mode: str) -> None:
    maps = np.array([[[np.nan, 1.0], [np.inf, 2.0]], [[-np.inf, 3.0], [4.0, 4.0]]], np.float32)
    values, factors = render.normalize(maps, mode)
    assert np.isfinite(values).all() and np.isfinite(factors).all()
    clean = np.nan_to_num(maps, nan=0, posinf=0, neginf=0)
    np.testing.assert_array_equal(values, render.normalize(clean, mode)[0])


def test_normalize_axis_maps_picks_the_map_axis() -> None:
    maps = np.random.default_rng(1).random((3, 4, 5)).astype(np.float32)
    last, f_last = render.normalize(maps, "per_map", axis_maps=-1)
    first, f_first = render.normalize(np.moveaxis(maps, -1, 0), "per_map", axis_maps=0)
    np.testing.assert_allclose(np.moveaxis(first, 0, -1), last)
    np.testing.assert_allclose(f_first, f_last)


def test_normalize_rejects_unknown_mode() -> None:
    with pytest.raises(EngineError, match="unknown normalization"):
        render.normalize(np.zeros((2, 2, 1)), "minmax")


# --------------------------------------------------------------------------- colormaps


@pytest.mark.parametrize("name", render.COLORMAPS)
def test_luts_are_256_rgb(name: str) -> None:
    lut = render.colormap(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8


def test_gray_and_signed_endpoints() -> None:
    gray = render.colormap("gray")
    np.testing.assert_array_equal(gray[0], [0, 0, 0])
    np.testing.assert_array_equal(gray[255], [255, 255, 255])
    signed = render.colormap("signed")
    np.testing.assert_array_equal(signed[128], [128, 128, 128])  # zero is grey
    assert signed[0, 2] > 200 and signed[0, 0] < 60  # blue for negative
    assert signed[255, 0] > 200 and signed[255, 2] < 60  # red for positive
    mid = render.apply_colormap(np.array([0.5]), "signed")
    np.testing.assert_array_equal(mid[0], [128, 128, 128])


def test_viridis_magma_turbo_endpoints() -> None:
    np.testing.assert_array_equal(render.colormap("viridis")[0], [68, 1, 84])
    np.testing.assert_array_equal(render.colormap("viridis")[255], [253, 231, 37])
    np.testing.assert_array_equal(render.colormap("magma")[0], [0, 0, 4])
    np.testing.assert_array_equal(render.colormap("turbo")[0], [48, 18, 59])


@pytest.mark.parametrize("name", ["viridis", "magma", "turbo", "gray"])
def test_luts_match_matplotlib(name: str) -> None:
    mpl = pytest.importorskip("matplotlib")
    values = np.linspace(0, 1, 1001)
    ours = render.apply_colormap(values, name).astype(int)
    theirs = (mpl.colormaps[name if name != "gray" else "gray"](values)[:, :3] * 255).round().astype(int)
    assert np.abs(ours - theirs).max() <= 2


def test_colormap_returns_a_copy_and_rejects_unknown() -> None:
    lut = render.colormap("gray")
    lut[:] = 0
    assert render.colormap("gray")[255, 0] == 255
    with pytest.raises(EngineError, match="unknown colormap"):
        render.colormap("jet")


def test_apply_colormap_shapes_and_clipping() -> None:
    out = render.apply_colormap(np.array([[-1.0, 0.0], [1.0, 2.0]]), "gray")
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], [[0, 0], [255, 255]])
    assert render.apply_colormap(np.zeros((3, 4, 1)), "viridis").shape == (3, 4, 3)
    nan = render.apply_colormap(np.array([np.nan]), "signed")
    np.testing.assert_array_equal(nan[0], [128, 128, 128])


def test_to_uint8() -> None:
    grey = render.to_uint8(np.array([[[0.0], [1.0]], [[0.5], [2.0]]]))
    assert _is_rgb_uint8(grey) and grey.shape == (2, 2, 3)
    np.testing.assert_array_equal(grey[..., 0], [[0, 255], [128, 255]])
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    rgb = render.to_uint8(np.full((2, 3, 3), 0.2, np.float32))
    assert rgb.shape == (2, 3, 3) and (rgb == 51).all()


# --------------------------------------------------------------------------- tiling and geometry


def test_tile_layout_and_pixels() -> None:
    imgs = np.zeros((5, 3, 4, 3), np.uint8)
    for k in range(5):
        imgs[k] = 10 * (k + 1)
    out = render.tile(imgs, cols=2, margin=1, background=(255, 255, 255))
    assert _is_rgb_uint8(out)
    geo = render.grid_geometry(5, 2, (3, 4), margin=1, title_height=0, scale=1)
    assert out.shape[:2] == (geo.height, geo.width) == (1 + 3 * 4, 1 + 2 * 5)
    for k, (t, left, b, r) in enumerate(geo.image_rects):
        assert (out[t:b, left:r] == 10 * (k + 1)).all()
    assert (out[0] == 255).all() and (out[:, 0] == 255).all()


def test_tile_scale_grey_and_mixed_sizes() -> None:
    small = np.full((2, 2, 1), 0.0, np.float32)
    big = np.full((4, 6, 3), 200, np.uint8)
    out = render.tile([small, big], cols=2, margin=0, scale=3, background=128)
    assert out.shape == (12, 36, 3)
    # the small image (6x6 after scaling) is centred in its 12x18 cell
    assert (out[3:9, 6:12] == 0).all()
    assert (out[0:3, 0:18] == 128).all()
    assert (out[:, 18:] == 200).all()


def test_tile_with_titles_does_not_crash_and_adds_a_band() -> None:
    imgs = [np.zeros((5, 5, 3), np.uint8) for _ in range(3)]
    titles = ["0", "a very long title \u00d712", "\u00e9 \u2192 \u65e5\u672c"]  # latin-1 and beyond
    titled = render.tile(imgs, cols=3, titles=titles, scale=2)
    plain = render.tile(imgs, cols=3, scale=2)
    assert titled.shape[0] > plain.shape[0] and titled.shape[1] == plain.shape[1]
    assert (titled != 255).any()
    with pytest.raises(EngineError, match="titles"):
        render.tile(imgs, titles=["only one"])


def test_cell_at_misses_margins_and_outside() -> None:
    geo = render.grid_geometry(4, 2, (10, 10), margin=3, title_height=5, scale=1)
    assert render.cell_at(geo, 0, 0) is None
    assert render.cell_at(geo, -5, 4) is None
    assert render.cell_at(geo, geo.height + 1, 4) is None
    assert render.cell_at(geo, 3, 3) == 0  # top-left of the first cell's title band
    assert render.cell_at(geo, 3 + 15 + 3, 3 + 13) == 3


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    cols=st.one_of(st.none(), st.integers(1, 12)),
    ch=st.integers(1, 9),
    cw=st.integers(1, 9),
    margin=st.integers(0, 4),
    title_height=st.integers(0, 12),
    scale=st.integers(1, 4),
)
def test_geometry_round_trips(
    n: int, cols: int | None, ch: int, cw: int, margin: int, title_height: int, scale: int
) -> None:
    geo = render.grid_geometry(n, cols, (ch, cw), margin, title_height, scale)
    assert len(geo) == n
    hits = np.full((geo.height, geo.width), -1)
    for k, (t, left, b, r) in enumerate(geo.rects):
        assert 0 <= t < b <= geo.height and 0 <= left < r <= geo.width
        assert (hits[t:b, left:r] == -1).all()  # cells never overlap
        hits[t:b, left:r] = k
        for y, x in [(t, left), (b - 1, r - 1), ((t + b) / 2, (left + r) / 2)]:
            assert render.cell_at(geo, y, x) == k
        it, il, ib, ir = geo.image_rects[k]
        assert (ib - it, ir - il) == (ch * scale, cw * scale) and it - t == title_height
    # every pixel outside a cell is a miss
    ys, xs = np.nonzero(hits == -1)
    for y, x in list(zip(ys, xs))[:50]:
        assert render.cell_at(geo, y, x) is None
    if margin:
        assert render.cell_at(geo, 0, 0) is None


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), h=st.integers(1, 6), w=st.integers(1, 6), scale=st.integers(1, 3))
def test_tile_matches_grid_geometry(n: int, h: int, w: int, scale: int) -> None:
    imgs = np.arange(1, n + 1, dtype=np.uint8)[:, None, None, None] * np.ones((1, h, w, 3), np.uint8) * 9
    out = render.tile(imgs, margin=2, scale=scale)
    geo = render.grid_geometry(n, None, (h, w), 2, 0, scale)
    assert out.shape[:2] == (geo.height, geo.width)
    for k, (t, left, b, r) in enumerate(geo.image_rects):
        assert (out[t:b, left:r] == 9 * (k + 1)).all()


# --------------------------------------------------------------------------- feature grids


def test_feature_grid_conv_maps_titles_factors_and_clicks() -> None:
    rng = np.random.default_rng(0)
    maps = np.maximum(rng.normal(size=(11, 11, 6)), 0).astype(np.float32)
    maps[..., 2] *= 0.1
    grid = render.feature_grid(maps, norm="per_map", cmap="viridis")
    assert _is_rgb_uint8(grid.image)
    assert grid.factors.shape == (6,) and grid.factors[2] > 5
    geo = grid.geometry
    assert len(geo) == 6
    t, left, b, r = geo.image_rects[0]
    assert b - t >= 48 and r - left >= 48  # tiny maps are upscaled
    for k in range(6):
        t, left, b, r = geo.rects[k]
        assert render.cell_at(geo, (t + b) // 2, (left + r) // 2) == k
    assert grid.image.shape[:2] == (geo.height, geo.width)


def test_feature_grid_pixels_follow_normalize_and_colormap() -> None:
    maps = np.random.default_rng(2).random((8, 8, 3)).astype(np.float32)
    grid = render.feature_grid(maps, norm="global", cmap="magma", titles=False, scale=1)
    values, _ = render.normalize(maps, "global")
    for k in range(3):
        t, left, b, r = grid.geometry.image_rects[k]
        np.testing.assert_array_equal(grid.image[t:b, left:r], render.apply_colormap(values[..., k], "magma"))


def test_feature_grid_accepts_2d_and_a_batch_of_one() -> None:
    assert len(render.feature_grid(np.ones((5, 5))).geometry) == 1
    assert len(render.feature_grid(np.ones((1, 5, 5, 4))).geometry) == 4


def test_feature_grid_dense_vector() -> None:
    vec = np.linspace(-1, 1, 10).astype(np.float32)
    grid = render.feature_grid(vec, norm="per_map", cmap="gray")
    geo = grid.geometry
    assert _is_rgb_uint8(grid.image) and len(geo) == 10 and geo.cols == 4
    assert grid.factors.shape == (10,)
    for k, (t, left, b, r) in enumerate(geo.image_rects):
        assert render.cell_at(geo, (t + b) // 2, (left + r) // 2) == k
    # the most negative unit is darker than the most positive one
    t0, l0, _, _ = geo.image_rects[0]
    t9, l9, _, _ = geo.image_rects[9]
    assert grid.image[t0, l0, 0] == 0 and grid.image[t9, l9, 0] == 255


def test_feature_grid_bad_shapes() -> None:
    with pytest.raises(EngineError):
        render.feature_grid(np.zeros((2, 3, 4, 5, 6)))
    with pytest.raises(EngineError):
        render.feature_grid(np.zeros((4, 4, 0)))


# --------------------------------------------------------------------------- filter grids


def test_filter_grid_rgb_first_layer() -> None:
    w = np.random.default_rng(0).normal(size=(7, 7, 3, 8)).astype(np.float32)
    grid = render.filter_grid(w)
    geo = grid.geometry
    assert _is_rgb_uint8(grid.image) and grid.image.shape[:2] == (geo.height, geo.width)
    assert len(geo) == 4 * 8  # RGB section + R, G, B sections
    assert sorted(set(geo.channels)) == [-1, 0, 1, 2]
    for pos, (t, left, b, r) in enumerate(geo.rects):
        assert render.cell_detail(geo, (t + b) // 2, (left + r) // 2) == (geo.indices[pos], geo.channels[pos])
    # a zero filter shows as mid-grey in the RGB section
    w[..., 0] = 0
    grid = render.filter_grid(w)
    t, left, b, r = grid.geometry.image_rects[0]
    assert (grid.image[t:b, left:r] == 128).all()


def test_filter_grid_many_inputs_rows_and_columns() -> None:
    w = np.random.default_rng(1).normal(size=(3, 3, 16, 5)).astype(np.float32)
    grid = render.filter_grid(w)
    geo = grid.geometry
    assert len(geo) == 16 * 5 and geo.rows == 5 and geo.cols == 16
    assert grid.caption == ""
    t, left, b, r = geo.rects[2 * 16 + 7]
    assert render.cell_detail(geo, t + 1, left + 1) == (2, 7)
    # signed colours: the cell's pixels come from the signed LUT
    lut = {tuple(c) for c in render.colormap("signed")}
    assert all(tuple(p) in lut for p in grid.image[t:b, left:r].reshape(-1, 3))


def test_filter_grid_caps_and_says_so() -> None:
    w = np.zeros((3, 3, 40, 20), np.float32)
    w[0, 0, 0, 0] = 1
    grid = render.filter_grid(w, max_in=8, max_out=4)
    assert len(grid.geometry) == 8 * 4
    assert "4 of 20 filters" in grid.caption and "8 of 40 input channels" in grid.caption


def test_filter_grid_per_filter_scale_factors() -> None:
    w = np.ones((3, 3, 16, 2), np.float32)
    w[..., 1] *= 0.25
    shared = render.filter_grid(w, shared_scale=True)
    own = render.filter_grid(w, shared_scale=False)
    np.testing.assert_allclose(shared.factors, [1, 1])
    np.testing.assert_allclose(own.factors, [1, 4])
    t, left, _, _ = own.geometry.rects[16]  # filter 1, input 0: full red when scaled per filter
    np.testing.assert_array_equal(own.image[t, left], [255, 0, 0])
    t, left, _, _ = shared.geometry.rects[16]
    assert shared.image[t, left, 0] < 255


def test_filter_grid_single_input_channel_and_bad_shape() -> None:
    grid = render.filter_grid(np.random.default_rng(3).normal(size=(5, 5, 1, 6)))
    assert len(grid.geometry) == 6 and _is_rgb_uint8(grid.image)
    with pytest.raises(EngineError, match="kh, kw, cin, cout"):
        render.filter_grid(np.zeros((3, 3, 4)))


# --------------------------------------------------------------------------- overlay and boxes


def test_overlay_shapes_and_blend() -> None:
    photo = np.full((6, 8, 3), 0.5, np.float32)
    heat = np.zeros((6, 8), np.float32)
    heat[2, 3] = 4.0
    out = render.overlay(photo, heat, cmap="gray", alpha=0.5)
    assert _is_rgb_uint8(out) and out.shape == (6, 8, 3)
    assert tuple(out[2, 3]) == (191, 191, 191)  # (0.5 + 1.0) / 2
    assert tuple(out[0, 0]) == (64, 64, 64)  # (0.5 + 0.0) / 2
    grey_photo = np.full((6, 8), 100, np.uint8)
    assert render.overlay(grey_photo, heat).shape == (6, 8, 3)


def test_overlay_signed_leaves_dimmed_photo_at_zero() -> None:
    photo = np.full((4, 4, 3), 200, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0], heat[3, 3] = 2.0, -2.0
    out = render.overlay(photo, heat, signed=True, alpha=1.0, dim=0.5)
    assert tuple(out[1, 1]) == (100, 100, 100)
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(out[3, 3], [0, 0, 255])


def test_overlay_requires_the_photo_grid() -> None:
    with pytest.raises(EngineError, match="photo"):
        render.overlay(np.zeros((10, 10, 3)), np.zeros((5, 5)))
    with pytest.raises(EngineError):
        render.overlay(np.zeros((10, 10, 3)), np.zeros((10, 10)), cmap="nope")


def test_draw_box_clips_and_copies() -> None:
    img = np.zeros((10, 10, 3), np.uint8)
    out = render.draw_box(img, (2, 3, 8, 9), color=(0, 255, 0), width=1)
    assert (img == 0).all()  # input untouched
    assert (out[2, 3:9, 1] == 255).all() and (out[7, 3:9, 1] == 255).all()
    assert (out[2:8, 3, 1] == 255).all() and (out[2:8, 8, 1] == 255).all()
    assert out[5, 5, 1] == 0 and out[1, 3, 1] == 0
    # a receptive field hanging over the top-left corner: only its visible edges are drawn
    rf = render.draw_box(img, (-20, -20, 5, 5), color=(255, 0, 0), width=2)
    assert (rf[3:5, 0:5, 0] == 255).all() and (rf[0:5, 3:5, 0] == 255).all()
    assert rf[0, 0, 0] == 0
    assert (render.draw_box(img, (20, 20, 30, 30)) == 0).all()
    with pytest.raises(EngineError):
        render.draw_box(img, (5, 5, 5, 9))


# --------------------------------------------------------------------------- layouts that fit a pane


def _shown_cell(grid: render.RenderedGrid, fit: tuple[int, int]) -> float:
    """Pixels a cell takes on screen when the grid image is scaled to fit a pane of fit = (h, w)."""
    t, left, b, r = grid.geometry.image_rects[0]
    scale = min(fit[0] / grid.image.shape[0], fit[1] / grid.image.shape[1])
    return min(b - t, r - left) * scale


def _section_origins(grid: render.RenderedGrid) -> dict[int, tuple[int, int]]:
    """Top-left corner of each first-layer section (channel -1 RGB, 0 R, 1 G, 2 B)."""
    out: dict[int, tuple[int, int]] = {}
    for rect, channel in zip(grid.geometry.rects, grid.geometry.channels):
        t, left = rect[0], rect[1]
        old = out.get(channel, (t, left))
        out[channel] = (min(old[0], t), min(old[1], left))
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 70), st.integers(1, 80), st.integers(1, 9), st.integers(1, 9), st.integers(0, 12))
def test_grid_size_is_the_geometry_size(n, cols, ch, cw, title) -> None:
    geo = render.grid_geometry(n, cols, (ch, cw), 2, title, 3, top=5)
    assert render.grid_size(n, cols, (ch, cw), 2, title, 3, top=5) == (geo.height, geo.width)


def test_best_cols_shows_cells_largest_and_follows_the_pane_shape() -> None:
    n, cell = 32, (10, 10)
    for fit in [(300, 1200), (600, 600), (1200, 300)]:
        best = render.best_cols(n, cell, fit)
        shown = {
            c: render._fit_factor(render.grid_size(n, c, cell), fit) for c in range(1, n + 1)
        }  # every other choice shows cells no larger
        assert shown[best] >= max(shown.values()) - 1e-12
    wide, square, tall = (render.best_cols(n, cell, fit) for fit in [(300, 1200), (600, 600), (1200, 300)])
    assert wide > square > tall
    assert render.best_cols(1, cell, (100, 100)) == 1 and render.best_cols(0, cell, (100, 100)) == 1


def test_filter_sections_side_by_side_in_a_wide_pane_stacked_in_a_tall_one() -> None:
    """builtin:shapes conv1 (16 filters 3x3x3): the fixed layout stacks RGB, R, G, B in one column."""
    w = np.random.default_rng(3).normal(size=(3, 3, 3, 16)).astype(np.float32)
    fixed = render.filter_grid(w)
    assert fixed.layout == {"cols": 5, "sections_per_row": 1}
    wide_fit, tall_fit = (420, 1500), (1500, 420)
    wide = render.filter_grid(w, fit=wide_fit)
    tall = render.filter_grid(w, fit=tall_fit)
    assert wide.layout == render.filter_layout(w.shape, wide_fit)
    assert wide.layout["sections_per_row"] == 4
    origins = _section_origins(wide)
    assert len({t for t, _ in origins.values()}) == 1  # one row of sections
    assert [origins[c][1] for c in (-1, 0, 1, 2)] == sorted(origins[c][1] for c in (-1, 0, 1, 2))
    assert tall.layout["sections_per_row"] in (1, 2)
    origins = _section_origins(tall)
    assert origins[2][0] > origins[-1][0]  # blue below the RGB section
    # the pane's own layout shows each filter larger than the fixed one would (a 780 x 650 pane: x2)
    for fit, grid in [
        (wide_fit, wide),
        (tall_fit, tall),
        ((650, 780), render.filter_grid(w, fit=(650, 780))),
    ]:
        assert _shown_cell(grid, fit) >= _shown_cell(fixed, fit)
    assert _shown_cell(render.filter_grid(w, fit=(650, 780)), (650, 780)) > 2 * _shown_cell(fixed, (650, 780))
    # every cell still maps back to its filter and channel
    geo = wide.geometry
    assert len(geo) == 64
    for pos, (t, left, b, r) in enumerate(geo.rects):
        assert render.cell_detail(geo, (t + b) // 2, (left + r) // 2) == (geo.indices[pos], geo.channels[pos])


def test_filter_grid_explicit_layout_and_bad_values() -> None:
    w = np.random.default_rng(4).normal(size=(3, 3, 3, 6)).astype(np.float32)
    grid = render.filter_grid(w, cols=3, sections_per_row=2)
    assert grid.layout == {"cols": 3, "sections_per_row": 2}
    assert grid.geometry.cols == 3
    one = render.filter_grid(w[:, :, :1], cols=6)
    assert one.layout == {"cols": 6, "sections_per_row": 1} and one.geometry.rows == 1
    with pytest.raises(EngineError):
        render.filter_grid(w, cols=0)
    with pytest.raises(EngineError):
        render.filter_grid(w, sections_per_row=3)
    with pytest.raises(EngineError):
        render.filter_grid(w, fit=(0, 100))


def test_feature_grid_fits_the_pane_and_exports_keep_the_near_square_layout() -> None:
    maps = np.random.default_rng(5).random((12, 12, 24)).astype(np.float32)
    fixed = render.feature_grid(maps)
    assert fixed.layout["cols"] == fixed.geometry.cols == render.feature_layout(maps.shape, None)
    wide = render.feature_grid(maps, fit=(200, 1600))
    tall = render.feature_grid(maps, fit=(1600, 200))
    assert wide.layout["cols"] > fixed.layout["cols"] > tall.layout["cols"]
    assert _shown_cell(wide, (200, 1600)) > _shown_cell(fixed, (200, 1600))
    assert render.feature_grid(maps, cols=5, fit=(200, 1600)).layout["cols"] == 5  # explicit cols win
    units = render.feature_grid(np.arange(40, dtype=np.float32), fit=(100, 1000))
    assert units.layout["cols"] > render.feature_grid(np.arange(40, dtype=np.float32)).layout["cols"]


def test_filter_matrix_splits_into_blocks_side_by_side_in_a_wide_pane() -> None:
    w = np.random.default_rng(6).normal(size=(3, 3, 16, 32)).astype(np.float32)
    fixed = render.filter_grid(w)
    assert fixed.layout == {"cols": 16, "sections_per_row": 1}
    fit = (400, 1500)
    wide = render.filter_grid(w, fit=fit)
    assert wide.layout["sections_per_row"] > 1 and wide.layout == render.filter_layout(w.shape, fit)
    assert render.filter_grid(w, fit=(1500, 400)).layout["sections_per_row"] == 1
    assert _shown_cell(wide, fit) > 1.5 * _shown_cell(fixed, fit)
    geo = wide.geometry
    assert len(geo) == 16 * 32 and sorted(set(geo.indices)) == list(range(32))
    for pos, (t, left, b, r) in enumerate(geo.rects):
        assert render.cell_detail(geo, (t + b) // 2, (left + r) // 2) == (geo.indices[pos], geo.channels[pos])
    # filter 31 sits in the last block, right of filter 0
    first = geo.rects[geo.indices.index(0)]
    last = geo.rects[geo.indices.index(31)]
    assert last[1] > first[3]
    assert np.array_equal(render.filter_grid(w, sections_per_row=1).image, fixed.image)
