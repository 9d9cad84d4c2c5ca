"""The Feature maps and Filters tabs: settings, export equal to the engine render, receptive fields."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image


def maps_ready(view, layer) -> bool:
    """Rendered for layer, in the columns the pane's size asks for now."""
    return (
        view.maps_layer == layer
        and view.rendered is not None
        and not view.renderer.busy()
        and view.rendered.layout.get("cols") == view.screen_cols()
    )


def settled(view, **expected) -> bool:
    return view.rendered_settings == {**view.render_settings(), **expected} and not view.renderer.busy()


def filters_ready(view, layer) -> bool:
    """Rendered for layer with the current settings, in the layout the pane's size asks for now."""
    return (
        view.weights_layer == layer
        and view.rendered is not None
        and settled(view)
        and view.rendered.layout == view.screen_layout()
    )


def sidecar_of(path):
    candidates = [path.with_suffix(".json"), path.with_name(path.name + ".json")]
    for candidate in candidates:
        if candidate.exists():
            return json.loads(candidate.read_text())
    raise AssertionError(f"no JSON sidecar beside {path}")


def test_change_normalization_and_export_matches_engine_render(qtbot, win, tmp_path):
    import engine
    from engine import render
    from gui.views.feature_maps import render_maps

    view = win.view("feature_maps")
    layer = win.state.default_layer()
    win.layer_tree.select(layer)
    qtbot.waitUntil(lambda: maps_ready(view, layer), timeout=10_000)
    view.set_normalization("per_map")
    view.cmap_box.setCurrentText("magma")
    view.cols_box.setValue(4)
    qtbot.waitUntil(lambda: settled(view, norm="per_map", cmap="magma", cols=4), timeout=10_000)

    out = tmp_path / "maps.png"
    assert win.export_view(out) == out
    meta = json.dumps(sidecar_of(out))
    assert layer in meta and "per_map" in meta and "magma" in meta

    h = engine.load_model(win.state.model_spec)
    maps = engine.feature_maps(h, win.state.image, [layer])[layer]
    expected = render.feature_grid(maps, norm="per_map", cmap="magma", cols=4).image
    assert np.array_equal(render_maps(maps, "per_map", "magma", 4).image, expected)
    got = np.asarray(Image.open(out).convert("RGB"))
    assert got.shape == expected.shape and np.array_equal(got, expected)
    assert np.array_equal(view.grid_image(), expected)  # what the screen shows

    # never overwrite without asking: declined keeps the old file, accepted replaces it
    before = out.read_bytes()
    view.set_normalization("global")
    qtbot.waitUntil(lambda: settled(view, norm="global"), timeout=10_000)
    questions = []
    win.ask = lambda q: questions.append(q) or False
    assert win.export_view(out) is None
    assert questions and out.read_bytes() == before
    win.ask = lambda q: True
    assert win.export_view(out) == out
    assert out.read_bytes() != before


@pytest.mark.parametrize("norm", ["global", "per_map", "standardize", "raw"])
def test_every_normalization_renders(qtbot, win, norm):
    view = win.view("feature_maps")
    layer = win.state.default_layer()
    win.layer_tree.select(layer)
    qtbot.waitUntil(lambda: maps_ready(view, layer), timeout=10_000)
    view.set_normalization(norm)
    qtbot.waitUntil(lambda: settled(view, norm=norm), timeout=10_000)
    assert view.grid_image().std() > 0
    if norm == "per_map":
        assert "×" in view.info.text() or view.rendered.factors is not None
    view.set_normalization("global")


def test_export_failure_leaves_no_partial_file(qtbot, win, tmp_path):
    view = win.view("feature_maps")
    qtbot.waitUntil(lambda: view.rendered is not None, timeout=10_000)
    target = tmp_path / "missing_dir" / "maps.png"
    assert win.export_view(target) is None
    assert win.message_bar.text()
    assert not target.exists()
    assert not target.parent.exists() or not any(target.parent.iterdir())
    # the target is a folder: even when the user agrees to replace it, writing fails cleanly
    folder = tmp_path / "taken.png"
    folder.mkdir()
    win.ask = lambda q: True
    win.message_bar.dismiss()
    assert win.export_view(folder) is None
    assert win.message_bar.text()
    assert folder.is_dir() and not any(folder.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"]  # no temporary or partial files


def test_dense_layer_shows_its_units_as_cells(qtbot, win):
    view = win.view("feature_maps")
    dense = [i for i in win.state.all_layers() if i.kind == "dense"][0]
    win.layer_tree.select(dense.path)
    qtbot.waitUntil(lambda: maps_ready(view, dense.path), timeout=10_000)
    units = dense.output_shape[-1]
    assert np.asarray(view.maps).shape == (units,)
    assert f"{units} units" in view.info.text()
    view.open_map(units - 1)
    assert f"map {units - 1}" in view.detail_title.text() or f"unit {units - 1}" in view.detail_title.text()


def test_click_on_grid_cell_opens_that_map(qtbot, win):
    from engine import render

    view = win.view("feature_maps")
    layer = win.state.default_layer()
    win.layer_tree.select(layer)
    qtbot.waitUntil(lambda: maps_ready(view, layer), timeout=10_000)
    image = view.grid_image()
    target = min(5, np.asarray(view.maps).shape[-1] - 1)
    hit = next(
        (
            (y, x)
            for y in range(image.shape[0])
            for x in range(image.shape[1])
            if render.cell_at(view.rendered.geometry, y, x) == target
        ),
        None,
    )
    assert hit is not None
    view.grid.clicked.emit(*hit)
    assert view.selected == target
    assert view.detail.isVisible()
    assert view.large.image_shape == np.asarray(view.maps).shape[:2]
    view.detail_close.click()
    assert view.selected is None and not view.detail.isVisible()


def test_hover_draws_the_receptive_field_on_the_input(qtbot, tiny_win):
    import engine

    win = tiny_win
    view = win.view("feature_maps")
    win.layer_tree.select("block/inner_conv")
    qtbot.waitUntil(lambda: maps_ready(view, "block/inner_conv"), timeout=10_000)
    view.open_map(3)
    assert "map 3" in view.detail_title.text()
    qtbot.waitUntil(lambda: view.rf is not None, timeout=10_000)
    view.large.hovered.emit(2, 5)
    assert view.input.box.isVisible()
    h = engine.load_model(win.state.model_spec)
    rf = engine.receptive_field(h, "block/inner_conv")
    top, left, bottom, right = rf.box_clipped(2, 5, h.input_shape[:2])
    sy = win.state.image.shape[0] / h.input_shape[0]
    sx = win.state.image.shape[1] / h.input_shape[1]
    r = view.input.box.rect()
    assert (r.top(), r.left(), r.bottom(), r.right()) == pytest.approx(
        (top * sy, left * sx, bottom * sy, right * sx)
    )
    assert "receptive field" in view.rf_label.text() and "global context" not in view.rf_label.text()
    view.large.hovered.emit(-1, -1)
    assert not view.input.box.isVisible()
    # a unit fed by a global branch (squeeze-excite): the local box plus a note
    view.rf = dataclasses.replace(view.rf, global_context=True)
    view.large.hovered.emit(2, 5)
    assert view.rf_label.text().endswith("plus global context") and view.input.box.isVisible()


def test_filters_view_first_layer_deeper_layer_and_export(qtbot, tiny_win, tmp_path):
    from engine import render
    from gui.views.filters import render_filters

    win = tiny_win
    win.tabs.setCurrentIndex([v.owner for v in win.views].index("filters"))
    view = win.view("filters")
    assert win.current_view() is view
    win.layer_tree.select("conv1")
    qtbot.waitUntil(lambda: filters_ready(view, "conv1"), timeout=10_000)
    assert view.weights.shape == (3, 3, 1, 8)
    shared = view.rendered.image.copy()
    view.set_shared_scale(False)
    qtbot.waitUntil(lambda: filters_ready(view, "conv1") and not view.shared_scale, timeout=10_000)
    assert view.rendered.image.shape == shared.shape and not np.array_equal(view.rendered.image, shared)
    win.layer_tree.select("pool1")
    qtbot.waitUntil(lambda: view.weights is None)
    assert "no filters" in view.pane.text.toPlainText()
    win.layer_tree.select("block/inner_conv")
    qtbot.waitUntil(lambda: filters_ready(view, "block/inner_conv"), timeout=10_000)
    assert view.weights.shape == (3, 3, 8, 12)
    out = tmp_path / "filters.tif"
    assert win.export_view(out) == out
    expected = render_filters(view.weights, **view.render_settings()).image
    assert np.array_equal(expected, render.filter_grid(view.weights, shared_scale=False).image)
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), expected)
    shown = view.rendered
    assert shown is not None, (view.pane.text.toPlainText(), win.message_bar.text(), win.state.layer)
    assert np.array_equal(shown.image, expected)
    view.set_shared_scale(True)


def test_filters_view_rgb_first_layer(qtbot, win, tmp_path_factory):
    """A 3-channel first conv layer: RGB patches plus the R, G and B slices."""
    import keras

    path = tmp_path_factory.mktemp("rgb") / "rgb.keras"
    keras.utils.set_random_seed(2)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 5, name="rgb_conv")(inp)
    out = keras.layers.Dense(2, activation="softmax", name="out")(keras.layers.Flatten()(x))
    keras.Model(inp, out).save(path)

    win.open_model(str(path))
    qtbot.waitUntil(lambda: win.state.model_spec == str(path), timeout=30_000)
    win.tabs.setCurrentIndex([v.owner for v in win.views].index("filters"))
    view = win.view("filters")
    win.layer_tree.select("rgb_conv")
    qtbot.waitUntil(lambda: filters_ready(view, "rgb_conv"), timeout=10_000)
    assert view.weights.shape == (5, 5, 3, 6)
    assert "RGB" in view.info.text()
    image = view.rendered.image
    assert image.ndim == 3 and image.shape[-1] == 3
    channels = set(view.rendered.geometry.channels)
    assert channels == {-1, 0, 1, 2}  # the RGB section and the R, G, B slices


def _shown_cell(image_shape, rect, pane) -> float:
    """Screen pixels of one grid cell when an image of image_shape is fitted into pane (h, w)."""
    t, left, b, r = rect
    return min(b - t, r - left) * min(pane[0] / image_shape[0], pane[1] / image_shape[1])


def _set_pane_size(qtbot, pane, width: int, height: int) -> None:
    pane.setFixedSize(width, height)
    qtbot.waitUntil(lambda: (pane.width(), pane.height()) == (width, height), timeout=5_000)


def _free_pane(pane) -> None:
    pane.setMinimumSize(80, 80)
    pane.setMaximumSize(16_777_215, 16_777_215)


def test_filters_fill_the_pane_side_by_side_when_wide_stacked_when_tall(qtbot, win, tmp_path_factory):
    """First-layer RGB filters: the sections follow the pane's shape; export keeps the fixed layout."""
    import keras

    from engine import render
    from gui.views.filters import render_filters

    path = tmp_path_factory.mktemp("rgb16") / "rgb16.keras"
    keras.utils.set_random_seed(3)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, name="conv1")(inp)  # builtin:shapes' conv1: 16 filters 3x3x3
    out = keras.layers.Dense(2, activation="softmax", name="out")(keras.layers.Flatten()(x))
    keras.Model(inp, out).save(path)
    win.open_model(str(path))
    qtbot.waitUntil(lambda: win.state.model_spec == str(path), timeout=30_000)
    win.tabs.setCurrentIndex([v.owner for v in win.views].index("filters"))
    view = win.view("filters")
    win.layer_tree.select("conv1")
    qtbot.waitUntil(lambda: filters_ready(view, "conv1"), timeout=10_000)
    fixed = render_filters(view.weights, **view.render_settings())  # today's (and the export's) layout
    assert fixed.layout["sections_per_row"] == 1
    try:
        for (width, height), per_row in [((1200, 320), (4,)), ((320, 1100), (1, 2))]:
            _set_pane_size(qtbot, view.pane, width, height)
            qtbot.waitUntil(
                lambda: filters_ready(view, "conv1") and view.rendered.layout == view.screen_layout(),
                timeout=10_000,
            )
            shown = view.rendered
            assert shown.layout["sections_per_row"] in per_row
            tops = {}
            for rect, channel in zip(shown.geometry.rects, shown.geometry.channels):
                tops.setdefault(channel, (rect[0], rect[1]))
            if per_row == (4,):  # RGB, R, G, B left to right on one row
                assert len({t for t, _ in tops.values()}) == 1
            else:  # blue below RGB
                assert tops[2][0] > tops[-1][0]
            pane = view.pane.fit_size()
            now = _shown_cell(shown.image.shape, shown.geometry.image_rects[0], pane)
            before = _shown_cell(fixed.image.shape, fixed.geometry.image_rects[0], pane)
            assert now >= before
            if per_row == (4,):
                assert now > 2 * before  # a wide pane: filters over twice as large as stacked
            assert np.array_equal(
                shown.image, render_filters(view.weights, **view.render_settings(), fit=pane).image
            )
    finally:
        _free_pane(view.pane)
    out = tmp_path_factory.mktemp("rgb16out") / "filters.png"
    assert win.export_view(out) == out
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), fixed.image)
    meta = sidecar_of(out)
    text = json.dumps(meta)
    assert '"layout": "fixed"' in text and '"sections_per_row": 1' in text
    assert f'"cols": {fixed.layout["cols"]}' in text
    assert render.filter_grid(view.weights, cols=fixed.layout["cols"], sections_per_row=1).image.shape == (
        fixed.image.shape
    )


def test_feature_map_grid_columns_follow_the_pane(qtbot, win, tmp_path):
    from gui.views.feature_maps import render_maps

    view = win.view("feature_maps")
    layer = win.state.default_layer()
    win.layer_tree.select(layer)
    qtbot.waitUntil(lambda: maps_ready(view, layer), timeout=10_000)
    view.cols_box.setValue(0)
    qtbot.waitUntil(lambda: settled(view, cols=0), timeout=10_000)
    if np.asarray(view.maps).shape[-1] < 4:
        pytest.skip("too few maps to lay out")
    cols = {}
    try:
        for name, (width, height) in [("wide", (1200, 260)), ("tall", (260, 1000))]:
            _set_pane_size(qtbot, view.grid, width, height)
            qtbot.waitUntil(
                lambda: maps_ready(view, layer) and view.rendered.layout["cols"] == view.screen_cols(),
                timeout=10_000,
            )
            cols[name] = view.rendered.layout["cols"]
            fixed = render_maps(view.maps, **view.render_settings())
            pane = view.grid.fit_size()
            assert _shown_cell(view.rendered.image.shape, view.rendered.geometry.image_rects[0], pane) >= (
                _shown_cell(fixed.image.shape, fixed.geometry.image_rects[0], pane)
            )
    finally:
        _free_pane(view.grid)
    assert cols["wide"] > fixed.layout["cols"] > cols["tall"]
    out = tmp_path / "maps.png"
    assert win.export_view(out) == out
    meta = sidecar_of(out)
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), fixed.image)
    assert json.dumps(meta).count(
        '"layout": "fixed"'
    ) == 1 and f'"cols": {fixed.layout["cols"]}' in json.dumps(meta)
