"""The CAM method registry and the Target: adding a method is one class, heads are one object.

Tiny untrained Keras models with fixed seeds; the hand computations use the activations and
gradients from a GradientTape, independent of engine.attribution.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np
import pytest
import tensorflow as tf

import engine
from engine.attribution.cam import METHODS, cam, drain
from engine.attribution.methods import CAM_METHODS, CamMethod, check_method, register
from engine.attribution.metrics import deletion_curve
from engine.attribution.target import Target, head_of, target_index
from engine.errors import EngineError
from engine.models import ModelHandle

layers = keras.layers


def handle(model: keras.Model, **kw) -> ModelHandle:
    return ModelHandle(model, name=model.name, spec=f"test:{model.name}", **kw)


def small(activation: str, units: int, seed: int) -> ModelHandle:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((10, 10, 3))
    x = layers.Conv2D(5, 3, activation="relu", name="conv", bias_initializer="random_normal")(inp)
    x = layers.Flatten()(x)
    out = layers.Dense(units, activation=activation, name="out", bias_initializer="random_normal")(x)
    return handle(keras.Model(inp, out, name=f"{activation}{units}"))


@pytest.fixture(scope="module")
def softmax3() -> ModelHandle:
    return small("softmax", 3, 0)


@pytest.fixture(scope="module")
def binary() -> ModelHandle:
    return small("sigmoid", 1, 1)


def rng_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((10, 10, 3)).astype(np.float32)


def tape_acts_grads(h: ModelHandle, img: np.ndarray, score) -> tuple[np.ndarray, np.ndarray]:
    """A and dS/dA of layer conv, S = score(logits), straight from a GradientTape."""
    model = h.submodel(["conv"], logits=True)
    with tf.GradientTape() as tape:
        acts, logits = model(img[None], training=False)
        s = score(logits)
    return np.asarray(acts)[0].astype(np.float64), np.asarray(tape.gradient(s, acts))[0].astype(np.float64)


# ----------------------------------------------------------------------------- the registry
def test_builtin_methods_are_registered_classes() -> None:
    assert METHODS == ("gradcam", "gradcam++", "layercam", "scorecam", "eigencam")
    assert all(issubclass(CAM_METHODS[m], CamMethod) for m in METHODS)
    assert [CAM_METHODS[m].uses_gradients for m in METHODS] == [True, True, True, False, False]
    assert check_method("Score-CAM") == "scorecam" and check_method("grad-cam++") == "gradcam++"
    with pytest.raises(EngineError, match="eigencam"):
        check_method("occlusion")


@pytest.fixture
def gradcam_abs() -> Iterator[type[CamMethod]]:
    """A method defined and registered in this test only: Grad-CAM on absolute gradients."""

    @register
    class GradCAMAbs(CamMethod):
        """w_k = spatial mean of |dS/dA_k|: evidence for and against counts alike.

        Its only purpose is to show that a method is one class.
        """

        name = "gradcam-abs"
        label = "Grad-CAM |g|"
        aliases = ("abs-gradcam",)

        def weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
            return np.abs(gradients).mean(axis=(0, 1))

    yield GradCAMAbs
    del CAM_METHODS["gradcam-abs"]


def test_a_method_added_in_one_class_runs_through_engine_cam(
    softmax3: ModelHandle, gradcam_abs: type[CamMethod]
) -> None:
    img = rng_image(2)
    acts, grads = tape_acts_grads(softmax3, img, lambda z: z[:, 2])
    expected = acts @ np.abs(grads).mean(axis=(0, 1))
    res = engine.cam(softmax3, img, target=2, layer="conv", method="gradcam-abs", mapping="roi")
    assert res.method == res.settings["method"] == "gradcam-abs" and res.target == 2
    np.testing.assert_allclose(res.cam, expected, rtol=1e-4, atol=1e-7)
    plain = cam(softmax3, img, target=2, layer="conv", method="gradcam")
    assert not np.allclose(plain.cam, res.cam)  # abs really changed the weights
    assert cam(softmax3, img, target=2, layer="conv", method="ABS-GradCAM").method == "gradcam-abs"
    with pytest.raises(EngineError, match="already registered"):
        register(gradcam_abs)


def test_a_method_without_weights_is_refused_when_run(softmax3: ModelHandle) -> None:
    @register
    class Nothing(CamMethod):
        name = "nothing"

    try:
        with pytest.raises(NotImplementedError, match="Nothing"):
            cam(softmax3, rng_image(3), layer="conv", method="nothing")
    finally:
        del CAM_METHODS["nothing"]
    with pytest.raises(EngineError, match="not a named"):
        register(type("Anonymous", (CamMethod,), {}))


def test_gradient_methods_match_the_tape(softmax3: ModelHandle) -> None:
    img = rng_image(4)
    a, g = tape_acts_grads(softmax3, img, lambda z: z[:, 1])
    got = {m: cam(softmax3, img, target=1, layer="conv", method=m).cam for m in METHODS[:3]}
    np.testing.assert_allclose(got["gradcam"], a @ g.mean(axis=(0, 1)), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["layercam"], (np.maximum(g, 0) * a).sum(-1), rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------- the Target
def test_target_binds_the_models_head(softmax3: ModelHandle, binary: ModelHandle) -> None:
    assert head_of(softmax3) == "softmax" and head_of(binary) == "binary"
    assert head_of(small("sigmoid", 3, 5)) == "sigmoid"
    t = Target.of(binary, "positive")
    assert t == Target(1, "logit", "binary") and not t.top1
    assert Target.of(softmax3, None).top1 and Target.of(softmax3, None).graph_index == -1
    assert Target.of(softmax3, Target(2, "probability")) == Target(2, "probability", "softmax")
    assert target_index(softmax3, "top-1") == -1 and target_index(binary, "negative") == 0
    with pytest.raises(EngineError, match="binary head"):
        Target.of(softmax3, Target(1, head="binary"))
    with pytest.raises(EngineError, match="out of range"):
        Target.of(softmax3, Target(3))
    with pytest.raises(EngineError, match="score"):
        Target(0, "loss")
    with pytest.raises(EngineError, match="not bound"):
        Target(0).probabilities(np.zeros((1, 3)))


def test_target_numpy_rules_per_head() -> None:
    z = np.array([[0.5, -1.0, 2.0]])
    soft = Target(None, head="softmax")
    e = np.exp(z - z.max())
    np.testing.assert_allclose(soft.probabilities(z), e / e.sum(), rtol=1e-6)
    assert soft.chosen(z) == 2 and soft.value(z) == 2.0
    assert Target(None, "probability", "softmax").value(z, 0) == pytest.approx((e / e.sum())[0, 0], rel=1e-6)
    multi = Target(None, head="sigmoid")
    np.testing.assert_allclose(multi.probabilities(z), 1 / (1 + np.exp(-z)), rtol=1e-6)
    one = np.array([[-0.7]])
    bin_top = Target(None, head="binary")
    assert bin_top.chosen(one) == 0 and bin_top.value(one) == pytest.approx(0.7)
    p = 1 / (1 + np.exp(0.7))
    np.testing.assert_allclose(bin_top.probabilities(one), [[1 - p, p]], rtol=1e-6)
    assert Target(1, "probability", "binary").value(one) == pytest.approx(p, rel=1e-6)


@pytest.mark.parametrize("spec", [1, 0, None])
def test_probability_score_differentiates_the_probability(softmax3: ModelHandle, spec: int | None) -> None:
    img = rng_image(6)
    res = cam(softmax3, img, target=Target(spec, "probability"), layer="conv")
    k = res.target
    a, g = tape_acts_grads(softmax3, img, lambda z: tf.nn.softmax(z)[:, k])
    np.testing.assert_allclose(res.cam, a @ g.mean(axis=(0, 1)), rtol=1e-4, atol=1e-9)
    assert res.score == pytest.approx(res.probability, rel=1e-5) and res.settings["score"] == "probability"
    assert "score" not in cam(softmax3, img, target=spec, layer="conv").settings


def test_binary_probability_score_and_saliency(binary: ModelHandle) -> None:
    img = rng_image(7)
    neg = cam(binary, img, target=Target(0, "probability"), layer="conv")
    a, g = tape_acts_grads(binary, img, lambda z: tf.sigmoid(-z[:, 0]))
    np.testing.assert_allclose(neg.cam, a @ g.mean(axis=(0, 1)), rtol=1e-4, atol=1e-9)
    assert neg.score == pytest.approx(neg.probabilities[0], rel=1e-5)
    # saliency takes the same Target: the probability's input gradient is p(1-p) times the logit's
    s_logit = engine.saliency(binary, img, Target(1), "grad_x_input")
    s_prob = engine.saliency(binary, img, Target(1, "probability"), "grad_x_input")
    p = float(cam(binary, img, layer="conv").probabilities[1])
    np.testing.assert_allclose(s_prob, s_logit * p * (1 - p), rtol=1e-4, atol=1e-9)


def test_deletion_curve_reads_the_binary_head_through_the_target(binary: ModelHandle) -> None:
    img = rng_image(8)
    heat = np.random.default_rng(0).random((10, 10)).astype(np.float32)
    top = cam(binary, img, layer="conv").target
    curve = drain(deletion_curve(binary, img, heat, None, steps=4, baseline="black"))
    assert curve.scores[0] == pytest.approx(cam(binary, img, layer="conv").probabilities[top], rel=1e-5)
    assert curve.scores.shape == (5,) and ((curve.scores >= 0) & (curve.scores <= 1)).all()
