"""Quality scores on hand-made maps whose answers are known."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from engine.attribution import metrics
from engine.attribution.metrics import (
    BASELINES,
    DEFAULT_BASELINE,
    CurveScore,
    baseline_image,
    blur,
    centre_baseline,
    curve_falls_after_rising,
    curve_recovers,
    deletion_auc,
    energy_pointing_game,
    insertion_auc,
    peak,
    pointing_game,
)
from engine.errors import EngineError
from engine.models import ModelHandle

layers = keras.layers


# ----------------------------------------------------------------------------- pointing game
def test_peak_is_the_plateau_centroid() -> None:
    m = np.zeros((20, 30))
    m[4, 7] = 1.0
    assert peak(m) == (4.0, 7.0)
    m[4:7, 10:14] = 2.0  # a 3x4 plateau
    assert peak(m) == (5.0, 11.5)
    assert peak(np.zeros((20, 30))) == (9.5, 14.5)  # a flat map points at the centre
    m2 = np.zeros((10, 10))
    m2[0, 0] = m2[0, 9] = 1.0  # two separate maxima: their centroid
    assert peak(m2) == (0.0, 4.5)


def test_pointing_game_tolerance_is_15_px() -> None:
    box = (40, 40, 60, 60)  # rows/cols 40..59
    m = np.zeros((128, 128))
    m[50, 50] = 1
    assert pointing_game(m, box)
    m[:] = 0
    m[50, 75] = 1  # 16 px right of column 59
    assert not pointing_game(m, box)
    m[:] = 0
    m[50, 74] = 1  # exactly 15 px
    assert pointing_game(m, box)
    m[:] = 0
    m[69, 69] = 1  # 10 px down and right of the corner: sqrt(200) = 14.1 px
    assert pointing_game(m, box)
    m[:] = 0
    m[71, 71] = 1  # sqrt(288) = 17 px
    assert not pointing_game(m, box)
    assert pointing_game(m, box, tolerance=17.0)
    assert not pointing_game(m, box, tolerance=0)


def test_pointing_game_with_a_mask_and_ties() -> None:
    mask = np.zeros((64, 64), bool)
    mask[10:14, 50:54] = True
    m = np.zeros((64, 64))
    m[12, 20] = m[12, 60] = 5.0  # two maxima whose centroid (12, 40) is 10 px from the mask
    assert pointing_game(m, mask)
    m[12, 20] = 4.0  # now the single maximum at (12, 60): 7 px away
    assert pointing_game(m, mask, tolerance=7)
    assert not pointing_game(m, mask, tolerance=6.9)
    # the centre-point baseline: the flat map points at (31.5, 31.5)
    assert not pointing_game(np.zeros((64, 64)), mask)
    assert pointing_game(np.zeros((64, 64)), (30, 30, 34, 34))
    assert peak(centre_baseline((64, 64))) == (31.5, 31.5)


def test_energy_pointing_game() -> None:
    m = np.zeros((10, 10))
    m[2, 2] = 3.0  # inside
    m[8, 8] = 1.0  # outside
    m[3, 3] = -5.0  # negative evidence does not count
    assert energy_pointing_game(m, (0, 0, 5, 5)) == pytest.approx(0.75)
    mask = np.zeros((10, 10), bool)
    mask[8, 8] = True
    assert energy_pointing_game(m, mask) == pytest.approx(0.25)
    assert energy_pointing_game(np.zeros((10, 10)), (0, 0, 5, 5)) == pytest.approx(0.25)  # as a uniform map
    assert energy_pointing_game(-np.ones((10, 10)), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert energy_pointing_game(np.ones((10, 10)), (0, 0, 2, 5)) == pytest.approx(0.1)


def test_bad_regions_and_maps() -> None:
    with pytest.raises(EngineError, match="does not match"):
        pointing_game(np.zeros((5, 5)), np.zeros((4, 4), bool))
    with pytest.raises(EngineError, match="empty"):
        pointing_game(np.zeros((5, 5)), (2, 2, 2, 4))
    with pytest.raises(EngineError, match="NaN"):
        energy_pointing_game(np.full((5, 5), np.nan), (0, 0, 1, 1))
    with pytest.raises(EngineError, match="box"):
        energy_pointing_game(np.zeros((5, 5)), (0, 0, 1))


# ----------------------------------------------------------------------------- deletion / insertion
@pytest.fixture(scope="module")
def linear() -> ModelHandle:
    """Two classes on a 4x4 grey image: logit1 - logit0 = 4 * (sum of the left half) - 2."""
    inp = keras.Input((4, 4, 1))
    out = layers.Dense(2, activation="softmax", name="out")(layers.Flatten()(inp))
    model = keras.Model(inp, out, name="linear")
    w = np.zeros((16, 2), np.float32)
    left = (np.arange(16) % 4) < 2
    w[left, 1] = 4.0
    model.get_layer("out").set_weights([w, np.array([1.0, -1.0], np.float32)])
    return ModelHandle(model, name="linear", spec="test:linear")


def _p1(img: np.ndarray) -> float:
    z = 4.0 * img[:, :2].sum() - 2.0
    return 1.0 / (1.0 + np.exp(-z))


def _expected(start: np.ndarray, end: np.ndarray, order: np.ndarray, steps: int) -> tuple[np.ndarray, float]:
    counts = np.round(np.linspace(0, 16, steps + 1)).astype(int)
    scores = []
    for k in counts:
        cur = start.reshape(-1).copy()
        cur[order[:k]] = end.reshape(-1)[order[:k]]
        scores.append(_p1(cur.reshape(4, 4)))
    scores = np.array(scores)
    f = counts / 16
    return scores, float(np.sum((scores[1:] + scores[:-1]) * np.diff(f)) / 2)


def test_deletion_to_black_follows_the_map_order(linear: ModelHandle) -> None:
    img = np.full((4, 4, 1), 0.5, np.float32)
    good = np.zeros((4, 4))
    good[:, :2] = np.arange(8).reshape(4, 2) + 10  # the pixels the class uses, ranked first
    good[:, 2:] = np.arange(8).reshape(4, 2)
    order = np.argsort(-good.reshape(-1), kind="stable")
    res = deletion_auc(linear, img, good, target=1, steps=16, baseline="black")
    assert isinstance(res, CurveScore) and res.fractions[0] == 0 and res.fractions[-1] == 1
    assert res.baseline == "black"
    scores, auc = _expected(img[..., 0], np.zeros((4, 4)), order, 16)
    np.testing.assert_allclose(res.scores, scores, rtol=1e-5)
    assert res.auc == pytest.approx(auc, rel=1e-5)
    worse = deletion_auc(linear, img, -good, target=1, steps=16, baseline="black")
    assert worse.auc > res.auc + 0.2
    # a coarser curve: 4 steps of 4 pixels
    coarse = deletion_auc(linear, img, good, target=1, steps=4, baseline="black")
    assert len(coarse.scores) == 5 and coarse.auc == pytest.approx(
        _expected(img[..., 0], np.zeros((4, 4)), order, 4)[1]
    )


def test_each_baseline_image_is_what_it_claims() -> None:
    rng = np.random.default_rng(3)
    photo = rng.random((40, 24, 3)).astype(np.float32)
    photo[10:20, 5:15] = (1.0, 0.0, 0.0)  # a sharp red square
    blurred = baseline_image(photo, "blur")
    np.testing.assert_allclose(blurred, blur(photo, 40 / 8), rtol=1e-6)  # sigma max(H, W) / 8
    assert (
        np.abs(np.diff(blurred, axis=0)).max() < 0.1 * np.abs(np.diff(photo, axis=0)).max()
    )  # no edges left
    np.testing.assert_allclose(baseline_image(photo, "blur", blur_sigma=1.5), blur(photo, 1.5), rtol=1e-6)
    mean = baseline_image(photo, "mean")
    assert mean.shape == photo.shape and mean.dtype == np.float32
    np.testing.assert_allclose(mean, np.broadcast_to(photo.mean(axis=(0, 1)), photo.shape), rtol=1e-5)
    black = baseline_image(photo, "black")
    assert black.shape == photo.shape and not black.any()
    noise = baseline_image(photo, "noise", seed=4)
    assert noise.shape == photo.shape and noise.min() >= 0 and noise.max() < 1
    assert 0.4 < noise.mean() < 0.6 and abs(np.corrcoef(noise.ravel(), photo.ravel())[0, 1]) < 0.1
    np.testing.assert_array_equal(noise, baseline_image(photo, "noise", seed=4))  # seeded
    assert not np.array_equal(noise, baseline_image(photo, "noise", seed=5))
    assert BASELINES == ("blur", "mean", "black", "noise") and DEFAULT_BASELINE in BASELINES
    np.testing.assert_array_equal(baseline_image(photo), baseline_image(photo, DEFAULT_BASELINE))
    with pytest.raises(EngineError, match="unknown baseline"):
        baseline_image(photo, "white")


@pytest.mark.parametrize("baseline", BASELINES)
def test_curves_run_between_the_image_and_its_baseline(linear: ModelHandle, baseline: str) -> None:
    rng = np.random.default_rng(1)
    img = rng.random((4, 4, 1)).astype(np.float32)
    m = rng.random((4, 4))
    order = np.argsort(-m.reshape(-1))
    base = baseline_image(img, baseline, seed=2)[..., 0]
    d = deletion_auc(linear, img, m, target=1, steps=16, baseline=baseline, seed=2)
    i = insertion_auc(linear, img, m, target=1, steps=16, baseline=baseline, seed=2)
    assert d.baseline == i.baseline == baseline
    # deletion starts on the image and ends on the baseline; insertion the other way round
    scores, auc = _expected(img[..., 0], base, order, 16)
    np.testing.assert_allclose(d.scores, scores, rtol=1e-5)
    assert d.auc == pytest.approx(auc, rel=1e-5)
    assert d.scores[0] == pytest.approx(_p1(img[..., 0]), rel=1e-5)
    assert d.scores[-1] == pytest.approx(_p1(base), rel=1e-5)
    scores, auc = _expected(base, img[..., 0], order, 16)
    np.testing.assert_allclose(i.scores, scores, rtol=1e-5)
    assert i.scores[0] == pytest.approx(_p1(base), rel=1e-5)
    assert i.scores[-1] == pytest.approx(_p1(img[..., 0]), rel=1e-5)


def test_curve_recovers_and_falls_after_rising() -> None:
    assert curve_recovers([0.95, 0.00001, 1.0, 0.002, 1.0])  # the black deletion curve of issue 10
    assert curve_recovers([0.9, 0.5, 0.1, 0.3, 0.5, 0.85])  # climbs back later, not in one step
    assert curve_recovers([0.1, 0.9])
    assert not curve_recovers([0.95, 0.6, 0.3, 0.1, 0.0])  # a good deletion curve
    assert not curve_recovers([0.95, 0.1, 0.7, 0.75])  # climbs, but not above 0.8
    assert not curve_recovers([0.95, 0.3, 0.9])  # never below 0.2
    assert not curve_recovers([0.9, 0.1, 0.9], low=0.05)
    assert not curve_recovers([0.5]) and not curve_recovers([])
    assert curve_falls_after_rising([0.1, 0.9, 0.05, 0.95])
    assert curve_falls_after_rising([0.9, 0.1])
    assert not curve_falls_after_rising([0.0, 0.3, 0.7, 0.95, 0.9])  # a good insertion curve
    assert not curve_falls_after_rising([0.1, 0.85, 0.3])
    assert not curve_falls_after_rising([0.1, 0.75, 0.1])
    # the same curve read both ways: falling after rising is recovering of 1 - p
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.random(6)
        assert curve_falls_after_rising(s) == curve_recovers(1 - s)


def test_default_blur_deletion_on_the_shape_samples_does_not_recover() -> None:
    """builtin:shapes, Grad-CAM with defaults on the four sample shapes: deletion curves measure the map."""
    import engine

    h = engine.load_model("builtin:shapes")
    for name in ("circle", "square", "triangle", "star"):
        img = engine.load_image(f"builtin:shape_{name}")
        res = engine.cam(h, img)
        d = deletion_auc(h, img, res.heatmap, res.target)
        assert d.baseline == DEFAULT_BASELINE == "blur"
        assert d.scores[0] > 0.5, name  # the model sees the shape it is explaining
        assert not curve_recovers(d.scores), (name, np.round(d.scores, 3))
        black = deletion_auc(h, img, res.heatmap, res.target, baseline="black")
        assert black.baseline == "black" and black.scores[0] == pytest.approx(d.scores[0], rel=1e-5)


def test_insertion_starts_from_the_blurred_image(linear: ModelHandle) -> None:
    rng = np.random.default_rng(0)
    img = rng.random((4, 4, 1)).astype(np.float32)
    m = rng.random((4, 4))
    order = np.argsort(-m.reshape(-1))
    res = insertion_auc(linear, img, m, target=1, steps=8, blur_sigma=1.0)
    assert res.baseline == "blur"
    start = blur(img, 1.0)[..., 0]
    scores, auc = _expected(start, img[..., 0], order, 8)
    np.testing.assert_allclose(res.scores, scores, rtol=1e-5)
    assert res.auc == pytest.approx(auc, rel=1e-5)
    assert res.scores[-1] == pytest.approx(_p1(img[..., 0]), rel=1e-5)  # all pixels restored
    assert res.scores[0] == pytest.approx(_p1(start), rel=1e-5)


def test_ties_break_in_a_fixed_random_order(linear: ModelHandle) -> None:
    img = np.full((4, 4, 1), 0.5, np.float32)
    flat = np.zeros((4, 4))
    a = deletion_auc(linear, img, flat, target=1, steps=16, baseline="black")
    b = deletion_auc(linear, img, flat, target=1, steps=16, baseline="black")
    np.testing.assert_array_equal(a.scores, b.scores)
    # not raster order: deleting the left half first would drop the score in the first 8 steps
    raster = _expected(img[..., 0], np.zeros((4, 4)), np.arange(16), 16)[0]
    assert not np.allclose(a.scores, raster)


def test_default_target_is_the_top_class(linear: ModelHandle) -> None:
    img = np.full((4, 4, 1), 0.9, np.float32)  # p1 = sigmoid(4 * 7.2 - 2): class 1 on top
    m = np.random.default_rng(1).random((4, 4))
    assert deletion_auc(linear, img, m).auc == pytest.approx(deletion_auc(linear, img, m, target=1).auc)
    assert insertion_auc(linear, img, m).auc == pytest.approx(insertion_auc(linear, img, m, target=1).auc)


def test_blur_keeps_constants_and_mass() -> None:
    img = np.full((9, 7, 3), 0.25, np.float32)
    np.testing.assert_allclose(blur(img, 2.0), 0.25, rtol=1e-6)
    dot = np.zeros((21, 21, 1), np.float32)
    dot[10, 10] = 1
    out = blur(dot, 1.5)
    assert out.sum() == pytest.approx(1.0, rel=1e-5) and out[10, 10, 0] == out.max()
    np.testing.assert_array_equal(blur(dot, 0), dot)


def test_metric_arguments(linear: ModelHandle) -> None:
    img = np.zeros((4, 4, 1), np.float32)
    with pytest.raises(EngineError, match="does not match"):
        deletion_auc(linear, img, np.zeros((5, 5)))
    with pytest.raises(EngineError, match="steps"):
        insertion_auc(linear, img, np.zeros((4, 4)), steps=0)
    with pytest.raises(EngineError, match="unknown baseline"):
        deletion_auc(linear, img, np.zeros((4, 4)), baseline="grey")
    assert set(metrics.__all__) >= {"pointing_game", "energy_pointing_game", "deletion_auc", "insertion_auc"}


def test_metrics_job(linear: ModelHandle, tmp_path) -> None:
    from engine.jobs import Finished, Progress, Request, run

    path = tmp_path / "linear.keras"
    linear.model.save(path)
    img = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4, 1)  # its mean colour differs from its blur
    heat = np.zeros((4, 4), np.float32)
    heat[1, 1] = 1.0
    events = list(
        run(
            Request(
                "metrics",
                {
                    "model": str(path),
                    "image": img,
                    "heatmap": heat,
                    "target": 1,
                    "steps": 4,
                    "baseline": "mean",
                    "box": (0, 0, 2, 2),
                },
            )
        )
    )
    assert isinstance(events[-1], Finished) and events[-1].reason == "done", events[-1]
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].step == progress[-1].total == 10
    out = events[-1].result
    assert out.pointing is True and out.energy == pytest.approx(1.0)
    expected = deletion_auc(linear, img, heat, 1, steps=4, baseline="mean")
    assert out.deletion.auc == pytest.approx(expected.auc)
    assert out.deletion.auc != pytest.approx(deletion_auc(linear, img, heat, 1, steps=4).auc)
    assert out.baseline == out.deletion.baseline == out.insertion.baseline == "mean"
    assert len(out.insertion.scores) == 5
