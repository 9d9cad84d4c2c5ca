"""The maximize, dream, cam and saliency figure builders (engine.plot.optimize, engine.plot.attribution):
what each figure says (titles, panels, colour bar range, rows), and that each one renders."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.attribution.cam import CamResult
from engine.plot.attribution import Look, cam_figure, prob, saliency_figure, source_name
from engine.plot.optimize import dream_figure, maximize_figure

RNG = np.random.default_rng(0)
PHOTO = RNG.random((30, 40, 3)).astype(np.float32)


def _cam_result(target: int, name: str, sign: float = 1.0) -> CamResult:
    heat = (np.linspace(-0.2, 1.0, 30 * 40, dtype=np.float32).reshape(30, 40) * sign).copy()
    coarse = (np.linspace(-1.0, 3.0, 36, dtype=np.float32).reshape(6, 6) * sign).copy()
    probs = np.array([0.1, 0.7, 0.2], np.float32)
    return CamResult(
        cam=coarse,
        heatmap=heat,
        heatmap_relu=np.maximum(heat, 0),
        target=target,
        score=2.5 * sign,
        layer="conv2",
        method="gradcam",
        mapping="gaussian",
        probabilities=probs,
        target_name=name,
    )


def _png(spec, **kw) -> Image.Image:
    from engine.plot import figure_bytes

    data = figure_bytes(spec, "png", **kw)
    assert data == figure_bytes(spec, "png", **kw)  # deterministic
    return Image.open(io.BytesIO(data))


def test_maximize_figure_labels_each_image_with_its_objective_and_value():
    images = RNG.random((3, 16, 16, 3)).astype(np.float32)
    spec = maximize_figure(
        images,
        ["conv2:0", "conv2:1", "conv2:2"],
        [0.1, 0.5, 0.9, 1.2],
        "tiny",
        "conv2:0..2",
        {"steps": 4, "param": "pixel", "optimizer": "adam", "lr": 0.05, "seed": 3},
        start=[0.0, 0.1, -0.2],
        final=[1.0, 2.0, -0.5],
    )
    assert spec.kind == "maximize" and "tiny" in spec.title and "conv2:0..2" in spec.title
    assert "4 steps" in spec.title and "seed 3" in spec.caption
    assert [p.label for p in spec.panels] == ["conv2:0", "conv2:1", "conv2:2"]
    assert spec.panels[2].note == "−0.2 → −0.5" and spec.panels[0].image.shape == (16, 16, 3)
    assert spec.colorbar is None and spec.cols == 3
    label, ys = spec.curve.ys[0]
    np.testing.assert_allclose(ys, [0.1, 0.5, 0.9, 1.2])  # real values, not normalized
    np.testing.assert_array_equal(spec.curve.x, [1, 2, 3, 4])
    assert label == "mean of 3" and "mean of 3" in spec.curve.ylabel
    grey = maximize_figure(images[:1, :, :, :1], ["fc:0"], None, "tiny")
    assert grey.panels[0].image.shape == (16, 16, 3) and grey.curve is None and "fc:0" in grey.title
    assert _png(spec).size[0] == 1050  # paper: 3.5 in at 300 dpi


def test_dream_figure_shows_photo_and_dream_side_by_side():
    spec = dream_figure(
        PHOTO,
        PHOTO[None] * 0.5,
        [1.0, 2.0, 1.5, 3.0],
        "conv1 + 0.5*conv2",
        "tiny",
        "builtin:shape_star",
        {"octaves": 2, "steps": 2, "octave_scale": 1.4, "lr": 0.01, "seed": 0},
    )
    assert spec.kind == "dream" and "conv1 + 0.5*conv2" in spec.title and "shape_star" in spec.title
    assert [p.label for p in spec.panels] == ["shape_star", "DeepDream"] and spec.cols == 2
    assert "steps 1, 3" in spec.caption and len(spec.curve.ys[0][1]) == 4
    assert _png(spec, style="slide").size == (1920, 1080)


def test_cam_figure_one_target_puts_class_and_score_in_the_title_and_the_maps_range_on_the_bar():
    res = _cam_result(1, "dog")
    spec = cam_figure(PHOTO, [res], "gradcam", "conv2", "tiny", "photo.png")
    assert "tiny · Grad-CAM at conv2" in spec.title and "dog (1)" in spec.title
    assert "logit 2.5" in spec.title and "p 0.7" in spec.title
    assert [p.label for p in spec.panels] == ["photo", "overlay", "ReLU map"] and spec.cols == 3
    bar = spec.colorbar
    assert bar.vmin == pytest.approx(float(res.heatmap_relu.min()))
    assert bar.vmax == pytest.approx(float(res.heatmap_relu.max()))
    assert spec.panels[1].image.dtype == np.uint8 and spec.panels[1].image.shape == (30, 40, 3)
    _png(spec)


def test_cam_figure_compare_gives_a_row_per_target_on_one_signed_scale():
    a, b = _cam_result(1, "dog"), _cam_result(2, "owl", sign=-0.5)
    spec = cam_figure(PHOTO, [a, b], "gradcam", "conv2", "tiny", style="signed", coarse=True)
    assert spec.cols == 4 and len(spec.panels) == 8 and spec.settings["rows"] == 2
    assert [p.label for p in spec.panels[::4]] == ["dog (1)", "owl (2)"]
    assert spec.panels[4].note == "logit −1.25" and "dog (1) vs owl (2)" in spec.title
    top = max(float(np.abs(a.heatmap).max()), float(np.abs(b.heatmap).max()))
    assert (spec.colorbar.vmin, spec.colorbar.vmax) == pytest.approx((-top, top))  # centred on 0
    cells = spec.panels[3]
    assert cells.gain == pytest.approx(top / 3.0)  # the coarse cells on the map's scale, gain shown
    assert float(np.abs(cells.image).max()) == pytest.approx(top)
    assert "p <0.001" not in spec.caption and "owl (2) logit −1.25, p 0.2" in spec.caption
    _png(spec)


def test_saliency_figure_signed_is_diverging_around_zero_and_unsigned_spans_the_map():
    smap = np.linspace(-0.3, 0.1, 30 * 40, dtype=np.float32).reshape(30, 40)
    signed = saliency_figure(PHOTO, smap, "integrated", "dog (1): p 0.7", True, "tiny", "photo.png")
    assert signed.colorbar.cmap == "signed" and signed.colorbar.vmin == pytest.approx(-0.3)
    assert signed.colorbar.vmax == pytest.approx(0.3) and "Integrated Gradients" in signed.title
    assert "dog (1)" in signed.title and [p.label for p in signed.panels] == [
        "photo",
        "overlay",
        "signed map",
    ]
    plain = saliency_figure(PHOTO, np.abs(smap), "gradient", "dog (1)", False, look=Look("magma"))
    assert plain.colorbar.cmap == "magma"
    assert (plain.colorbar.vmin, plain.colorbar.vmax) == pytest.approx((float(np.abs(smap).min()), 0.3))
    _png(signed)
    _png(plain)


def test_names_and_probabilities_read_well():
    assert source_name("builtin:shape_star") == "shape_star" and source_name("/a/b/photo.png") == "photo.png"
    assert source_name("keras:vgg16?weights=none") == "vgg16"
    assert prob(0.9979) == "0.998" and prob(1e-5) == "<0.001"
