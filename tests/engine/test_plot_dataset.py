"""engine.plot.dataset: the units, classes and images pages of a real scan as FigureSpecs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot-set")
    rng = np.random.default_rng(5)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (18, 20, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def result(tiny, folder):
    from engine.dataset import scan

    return scan(tiny, str(folder), "conv2", k=3, cache=False)


def crops_of(result, units):
    return [result.crops_of(u) for u in units]


def test_units_figure_rows_label_every_crop(result):
    from engine.plot.dataset import units_figure

    units = [0, 2, 5]
    spec = units_figure(result, crops_of(result, units), units, model_name="tiny")
    assert spec.kind == "topk" and spec.settings["layout"] == "rows"
    assert "tiny" in spec.title and "conv2" in spec.title and result.source in spec.title
    assert ": 10 images" in spec.title
    assert spec.cols == 3 and len(spec.panels) == 3 * 3
    assert spec.colorbar is None  # crops are pictures: no value scale
    for row, u in enumerate(units):
        hits = result.hits(u)
        first = spec.panels[row * 3]
        assert f"unit {u}" in first.yticks and len(first.yticks) == first.image.shape[0]  # the row's label
        assert not any(p.yticks for p in spec.panels[row * 3 + 1 : row * 3 + 3])
        for rank, hit in enumerate(hits):
            panel = spec.panels[row * 3 + rank]
            assert panel.label == f"{hit.value:.3g}" and panel.note == f"#{hit.image_id}"
            np.testing.assert_array_equal(panel.image, result.crops_of(u)[rank][..., :3])
            assert panel.image.dtype == np.uint8 and panel.image.shape[-1] == 3


def test_units_figure_blocks_for_many_units(result):
    from engine.plot.dataset import units_figure

    units = list(range(result.units))
    spec = units_figure(result, crops_of(result, units), None, detail=False, cols=3)
    assert spec.settings["layout"] == "blocks" and spec.settings["units"] == units
    assert len(spec.panels) == result.units and spec.cols == 3
    for u, panel in zip(units, spec.panels):
        hits = result.hits(u)
        assert panel.label == f"unit {u}"
        assert panel.note == f"max {hits[0].value:.3g}"
        h, w = result.crop_shape[:2]
        assert panel.image.shape == (2 * h + 1, 2 * w + 1, 3)  # 3 crops in a 2 x 2 block, 1 px gaps
        np.testing.assert_array_equal(panel.image[:h, :w], result.crops_of(u)[0][..., :3])


def test_units_figure_refuses_bad_units(result):
    from engine.errors import EngineError
    from engine.plot.dataset import units_figure

    with pytest.raises(EngineError, match="no unit 99"):
        units_figure(result, crops_of(result, [0]), [99])
    with pytest.raises(EngineError, match="crop sets"):
        units_figure(result, crops_of(result, [0]), [0, 1])


@pytest.mark.parametrize("heatmap", ["raw", "zscore"])
@pytest.mark.parametrize("stat", ["mean", "max"])
def test_classes_figure_colour_bar_is_the_data_range(result, heatmap, stat):
    from engine.plot.dataset import class_matrix, classes_figure

    spec = classes_figure(result, heatmap, stat, model_name="tiny")
    values = class_matrix(result, heatmap, stat)
    assert values.shape == (2, result.units)
    stats = result.class_stats(stat)
    if heatmap == "raw":
        np.testing.assert_allclose(values, stats.mean, rtol=1e-6)
        assert spec.colorbar.vmin == pytest.approx(float(values.min()))
        assert spec.colorbar.vmax == pytest.approx(float(values.max()))
    else:
        np.testing.assert_allclose(np.nanmean(values, axis=0), 0.0, atol=1e-5)
        top = float(np.abs(values).max())
        assert (spec.colorbar.vmin, spec.colorbar.vmax) == pytest.approx((-top, top))
    (panel,) = spec.panels
    assert (panel.vmin, panel.vmax) == (spec.colorbar.vmin, spec.colorbar.vmax)
    assert panel.cmap == spec.colorbar.cmap and spec.colorbar.label
    rows = panel.image.shape[0] // 2  # each class row repeated: the panel is never a thin strip
    np.testing.assert_array_equal(panel.image[::rows], values)
    assert [t for t in panel.yticks if t] == ["cats", "dogs"] and len(panel.yticks) == panel.image.shape[0]
    assert panel.xticks == tuple(str(u) for u in range(result.units))
    assert "tiny" in spec.title and "conv2" in spec.title
    assert spec.settings == {"page": "classes", "heatmap": heatmap, "stat": stat}


def test_classes_figure_needs_labels(tiny, folder, tmp_path):
    from engine.dataset import scan
    from engine.errors import EngineError
    from engine.plot.dataset import classes_figure

    files = tmp_path / "list.txt"
    files.write_text("\n".join(str(p) for p in sorted((folder / "cats").glob("*.png"))))
    unlabelled = scan(tiny, str(files), "conv2", k=2, cache=False)
    with pytest.raises(EngineError, match="no labels"):
        classes_figure(unlabelled)


def test_images_figure_pairs_images_with_maps_on_one_scale(tiny, result):
    from engine.dataset import figures
    from engine.dataset.jobs import strongest_maps_of
    from engine.plot.dataset import images_figure

    ids = figures.page_image_ids(result, 2, 5)
    maps = strongest_maps_of(tiny, result, ids)
    spec = images_figure(result, maps, model_name="tiny")
    assert len(spec.panels) == 2 * len(ids) and spec.cols == 4
    assert "tiny" in spec.title and "conv2" in spec.title and ": 10 images" in spec.title
    values = np.stack([sm.map for sm in maps.maps])
    assert spec.colorbar.vmin == pytest.approx(float(values.min()))
    assert spec.colorbar.vmax == pytest.approx(float(values.max()))
    for n, (i, sm) in enumerate(zip(ids, maps.maps)):
        picture, heat = spec.panels[2 * n], spec.panels[2 * n + 1]
        assert picture.label == f"#{i}" and picture.cmap is None
        assert picture.note == result.class_names[result.labels[i]]
        assert heat.label == f"unit {sm.channel}" and f"{sm.value:.3g}" in heat.note
        assert (heat.vmin, heat.vmax) == (spec.colorbar.vmin, spec.colorbar.vmax)  # real values
        np.testing.assert_array_equal(heat.image, sm.map)


def test_drawn_colour_bar_spans_the_data(result):
    """Composed with matplotlib, the classes page's colour bar runs over the real values."""
    pytest.importorskip("matplotlib")
    from engine.plot import compose
    from engine.plot.dataset import class_matrix, classes_figure

    fig = compose(classes_figure(result, "raw"), "paper")
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "colorbar"]
    values = class_matrix(result, "raw")
    assert bar.get_ylim() == pytest.approx((float(values.min()), float(values.max())))
    lo, hi = bar.get_ylim()
    span = hi - lo
    shown = [
        t
        for t in bar.get_yticklabels()
        if t.get_text() and lo - 0.01 * span <= t.get_position()[1] <= hi + 0.01 * span
    ]
    assert len(shown) >= 2  # labels within the bar: the real values, not 0..1
    for t in shown:
        assert float(t.get_text().replace("−", "-")) == pytest.approx(t.get_position()[1], abs=0.051 * span)
