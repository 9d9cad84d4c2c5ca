"""The model-randomization sanity check (engine.attribution.sanity) on a model built so that one
branch carries the class evidence: real Keras weights, re-initialized on a copy."""

from __future__ import annotations

import numpy as np
import pytest

from engine.attribution import similarity
from engine.attribution.contract import SanityOutput, SanityParams
from engine.attribution.sanity import PASS_BELOW, iter_randomization, randomization, verdict
from engine.errors import EngineError
from engine.jobs import Failed, Progress, run, run_sync


@pytest.fixture(scope="module")
def branches_path(tmp_path_factory):
    """Two conv branches side by side; only `evidence` feeds the logits with strong weights,
    `texture` with almost none (0.01)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inp = keras.Input((32, 32, 3), name="image")
    a = layers.Conv2D(6, 3, padding="same", activation="relu", name="evidence1")(inp)
    a = layers.Conv2D(6, 3, padding="same", activation="relu", name="evidence2")(a)
    b = layers.Conv2D(6, 3, padding="same", activation="relu", name="texture")(inp)
    x = layers.Concatenate(name="both")([a, b])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    out = layers.Dense(3, activation="softmax", name="logits")(x)
    model = keras.Model(inp, out, name="branches")
    w = np.full((12, 3), 0.01, np.float32)
    w[:6] = [4.0, -2.0, -2.0]
    model.get_layer("logits").set_weights([w, np.zeros(3, np.float32)])
    path = tmp_path_factory.mktemp("sanity") / "branches.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def branches(branches_path):
    import engine

    return engine.load_model(branches_path)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A yellow square on a dim noisy background, 32x32."""
    rng = np.random.default_rng(0)
    img = (0.2 + 0.1 * rng.random((32, 32, 3))).astype(np.float32)
    img[6:16, 18:28] = [0.9, 0.8, 0.2]
    return img


def sobel(h, img, target) -> np.ndarray:
    """An edge detector of the input: a "method" that ignores the model."""
    g = np.asarray(img, np.float64).mean(axis=-1)
    p = np.pad(g, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy)


def test_gradcam_cascade_depends_on_the_weights(branches, photo) -> None:
    before = [w.copy() for w in branches.model.get_weights()]
    res = randomization(branches, photo, "gradcam", layer="both")
    assert res.steps == ("original", "logits", "texture", "evidence2", "evidence1")
    assert res.maps.shape == (5, 32, 32) and not res.maps.flags.writeable
    assert res.spearman[0] == pytest.approx(1.0) and res.ssim[0] == pytest.approx(1.0)
    assert res.hog[0] == pytest.approx(1.0)
    assert res.spearman[-1] < PASS_BELOW and res.passed and res.statistic == res.spearman[-1]
    assert res.verdict.startswith("the map depends on the weights") and "all 4 layers" in res.verdict
    assert res.target == 0 and res.layer == "both" and res.method == "gradcam"
    # the user's model and its handle are untouched
    after = branches.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    again = randomization(branches, photo, "gradcam", layer="both", order="cascade")
    np.testing.assert_array_equal(again.maps, res.maps)  # reproducible with the seed
    other = randomization(branches, photo, "gradcam", layer="both", seed=5)
    assert not np.allclose(other.maps[1:], res.maps[1:])
    np.testing.assert_array_equal(other.maps[0], res.maps[0])


def test_an_edge_detector_fails(branches, photo) -> None:
    res = randomization(branches, photo, sobel)
    assert min(res.spearman) > 0.9 and not res.passed
    assert "barely changes" in res.verdict and "edge detector" in res.verdict
    assert res.method == "sobel" and res.layer is None


def test_independent_order_randomizes_one_layer_at_a_time(branches, photo) -> None:
    res = randomization(branches, photo, "gradcam", layer="both", order="independent")
    assert res.order == "independent" and res.steps[1:] == ("logits", "texture", "evidence2", "evidence1")
    rho = dict(zip(res.steps, res.spearman))
    # the texture branch barely feeds the logits: re-initializing it alone leaves the map as it was,
    # while in the cascade the same step also has the head random
    assert rho["texture"] > 0.95
    assert res.statistic == min(res.spearman[1:])
    cascade = randomization(branches, photo, "gradcam", layer="both")
    assert cascade.spearman[2] < 0.5
    # step 1 is the same model in both orders (only the top layer random)
    np.testing.assert_allclose(res.maps[1], cascade.maps[1], rtol=1e-5, atol=1e-6)


def test_saliency_and_chosen_layers_with_progress(branches, photo) -> None:
    seen = []
    res = randomization(
        branches,
        photo,
        "smoothgrad",
        target=1,
        layers=["evidence1", "logits"],
        samples=4,
        progress=lambda *s: seen.append(s),
    )
    assert res.steps == ("original", "logits", "evidence1") and res.target == 1
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert all(0 <= d <= t == 3 for d, t in seen)


def test_bad_input_gives_one_clear_message(branches, photo) -> None:
    with pytest.raises(EngineError, match="unknown attribution method 'sobel'"):
        randomization(branches, photo, "sobel")
    with pytest.raises(EngineError, match="unknown order 'random'"):
        randomization(branches, photo, order="random")
    with pytest.raises(EngineError, match="gap has no trainable weights"):
        randomization(branches, photo, layers=["gap"])
    with pytest.raises(EngineError, match="no layer 'nope'"):
        randomization(branches, photo, layers=["nope"])
    gen = iter_randomization(branches, photo, "gradcam", layer="gap")
    with pytest.raises(EngineError, match="no spatial extent"):
        next(gen)


def test_verdict_words() -> None:
    steps = ("original", "a", "b")
    assert verdict([1.0, 0.6, 0.3], steps, "cascade") == (
        True,
        "the map depends on the weights: rank correlation falls to 0.30 when all 2 layers are random",
    )
    ok, words = verdict([1.0, 0.97, 0.96], steps, "cascade")
    assert not ok and "(rank correlation 0.96 when all 2 layers are random)" in words
    ok, words = verdict([1.0, 0.7, 0.9], steps, "independent")
    assert not ok and "only partly" in words and "when a alone is random" in words


def test_similarity_measures_against_closed_forms() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((40, 36))
    assert similarity.spearman(a, a**3 + 2) == pytest.approx(1.0)  # monotone: same ranks
    assert similarity.spearman(a, -a) == pytest.approx(1.0)  # absolute maps
    assert similarity.spearman(a, 1.0 / (a + 0.1)) == pytest.approx(-1.0)
    # ties get the average rank: [1, 2, 2, 3] -> ranks 1, 2.5, 2.5, 4
    np.testing.assert_allclose(similarity.rankdata(np.array([1, 2, 2, 3])), [1, 2.5, 2.5, 4])
    assert similarity.ssim(a, a) == pytest.approx(1.0)
    assert similarity.ssim(a, 5 * a + 1) == pytest.approx(1.0)  # normalized to [0, 1] first
    assert abs(similarity.ssim(a, rng.random((40, 36)))) < 0.1
    assert similarity.hog_similarity(a, a) == pytest.approx(1.0)
    assert abs(similarity.hog_similarity(a, rng.random((40, 36)))) < 0.3
    assert similarity.hog(a).size == 4 * 3 * 36  # 5x4 cells of 8 px -> 4x3 blocks of 2x2x9
    flat = np.ones((10, 10))
    assert similarity.spearman(flat, a[:10, :10]) == 0.0 and similarity.spearman(flat, flat) == 1.0


def test_sanity_job_answers_with_a_typed_result(branches_path, photo) -> None:
    params = SanityParams(model=str(branches_path), image=photo, layer="both", layers=("logits",))
    events = list(run(params.request()))
    assert any(isinstance(e, Progress) for e in events)
    out = run_sync(params.request())
    assert isinstance(out, SanityOutput) and out.model_name == "branches"
    assert out.result.steps == ("original", "logits") and out.photo.shape == (32, 32, 3)
    assert out.settings()["steps"] == ["original", "logits"] and "verdict" in out.settings()
    bad = list(run(SanityParams(model=str(branches_path), image=photo, method="sobel").request()))
    assert isinstance(bad[-1], Failed) and "unknown attribution method" in bad[-1].message


def test_the_figure_has_a_panel_per_step_and_a_curve(branches, photo) -> None:
    from engine.plot import compose
    from engine.plot.sanity import maps_row, sanity_figure

    res = randomization(branches, photo, "gradcam", layer="both")
    spec = sanity_figure(photo, res, "branches", "square.png")
    assert len(spec.panels) == len(res.steps) + 1 and spec.panels[0].label == "photo"
    assert [p.label for p in spec.panels[1:]] == ["original", *res.steps[1:]]
    assert [label for label, _ in spec.curve.ys] == ["Spearman |map|", "SSIM", "HOG"]
    assert "branches" in spec.title and "Grad-CAM" in spec.title and "square.png" in spec.title
    assert "depends on the weights" in spec.caption and spec.kind == "sanity"
    fig = compose(spec)
    labels = {ax.get_label() for ax in fig.axes}
    assert "curve" in labels and {f"panel {k}" for k in range(len(spec.panels))} <= labels
    row = maps_row(res, photo)
    assert row.dtype == np.uint8 and row.shape[0] == 32 + 4 and row.shape[1] > 6 * 32
