"""Saliency maps on tiny models where the answer is known in closed form."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from engine.attribution import saliency
from engine.attribution.gradients import SALIENCY_METHODS, iter_saliency
from engine.errors import EngineError
from engine.images import fit_image
from engine.models import ModelHandle

layers = keras.layers


def handle(model: keras.Model, **kw) -> ModelHandle:
    return ModelHandle(model, name=model.name, spec=f"test:{model.name}", **kw)


def rng_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def linear_model(scaling: str = "unit") -> ModelHandle:
    """logits = W . x + b on a 6x6 RGB input (no activation anywhere)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3))
    out = layers.Dense(3, name="out", bias_initializer="random_normal")(layers.Flatten()(inp))
    return handle(keras.Model(inp, out, name="linear"), scaling=scaling)


@pytest.fixture(scope="module")
def convnet() -> ModelHandle:
    keras.utils.set_random_seed(1)
    inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="conv1", bias_initializer="random_normal")(inp)
    x = layers.Conv2D(8, 3, strides=2, activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(4, activation="softmax", name="out", bias_initializer="random_normal")(x)
    return handle(keras.Model(inp, out, name="convnet"))


def _kernel(h: ModelHandle, target: int) -> np.ndarray:
    return np.asarray(h.layer("out").kernel, np.float64)[:, target].reshape(6, 6, 3)


def test_gradient_of_a_linear_model_is_its_weights() -> None:
    h = linear_model()
    img = rng_image((6, 6, 3))
    w = _kernel(h, 1)
    np.testing.assert_allclose(saliency(h, img, target=1), np.abs(w).max(-1), rtol=1e-5)
    np.testing.assert_allclose(saliency(h, img, 1, "grad_x_input"), (w * img).sum(-1), rtol=1e-4, atol=1e-7)
    # on a linear model Integrated Gradients from black is exactly gradient x input
    np.testing.assert_allclose(
        saliency(h, img, 1, "integrated", steps=5), (w * img).sum(-1), rtol=1e-4, atol=1e-7
    )
    # SmoothGrad without noise is the plain gradient, with noise still (linear: constant gradient)
    np.testing.assert_allclose(
        saliency(h, img, 1, "smoothgrad", noise=0.5, samples=7), np.abs(w).max(-1), rtol=1e-4
    )


def test_maps_are_in_image_units_whatever_the_scaling() -> None:
    img = rng_image((6, 6, 3), 1)
    unit, byte = linear_model("unit"), linear_model("byte")
    # the same weights: a byte model sees 255x the input, so its image-unit gradient is 255x
    np.testing.assert_allclose(saliency(byte, img, 0), 255 * saliency(unit, img, 0), rtol=1e-5)
    # gradient x input and IG measure from black in model space: scaling-invariant up to 255 in W . x
    np.testing.assert_allclose(
        saliency(byte, img, 0, "grad_x_input"),
        255 * saliency(unit, img, 0, "grad_x_input"),
        rtol=1e-4,
        atol=1e-5,
    )
    signed = linear_model("signed")
    w = _kernel(signed, 0)
    np.testing.assert_allclose(
        saliency(signed, img, 0, "grad_x_input"), (w * 2 * img).sum(-1), rtol=1e-4, atol=1e-6
    )


def test_integrated_gradients_completeness(convnet: ModelHandle) -> None:
    img = rng_image((16, 16, 3), 2)
    logits = keras.Model(convnet.flat_input, convnet.logits)
    z = np.asarray(logits(np.stack([img, np.zeros_like(img)])), np.float64)
    ig = saliency(convnet, img, target=2, method="integrated", steps=128, batch_size=50)
    assert ig.sum() == pytest.approx(z[0, 2] - z[1, 2], rel=0.02)


def test_batching_does_not_change_the_answer(convnet: ModelHandle) -> None:
    img = rng_image((16, 16, 3), 3)
    for method, kw in (("smoothgrad", {"samples": 9}), ("integrated", {"steps": 9})):
        one = saliency(convnet, img, 1, method, batch_size=1, **kw)
        many = saliency(convnet, img, 1, method, batch_size=4, **kw)
        np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-8)
    steps = list(iter_saliency(convnet, img, 1, "smoothgrad", samples=10, batch_size=4))
    assert steps == [(0, 10), (4, 10), (8, 10), (10, 10)]


def test_gradient_matches_tape(convnet: ModelHandle) -> None:
    img = rng_image((16, 16, 3), 4)
    logits = keras.Model(convnet.flat_input, convnet.logits)
    x = tf.constant(img[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = logits(x)[0, 3]
    g = np.asarray(tape.gradient(score, x))[0]
    np.testing.assert_allclose(saliency(convnet, img, 3), np.abs(g).max(-1), rtol=1e-4, atol=1e-9)
    top = int(np.argmax(np.asarray(logits(x))[0]))
    np.testing.assert_allclose(saliency(convnet, img), saliency(convnet, img, top))


def test_layer_mode_is_the_gradient_of_that_layer(convnet: ModelHandle) -> None:
    img = rng_image((16, 16, 3), 5)
    sub = keras.Model(convnet.flat_input, convnet.symbolic("conv2"))
    x = tf.constant(img[None])
    for channel in (None, 5):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = sub(x)
            score = tf.reduce_mean(out if channel is None else out[..., channel])
        g = np.asarray(tape.gradient(score, x))[0]
        got = saliency(convnet, img, target=channel, layer="conv2")
        np.testing.assert_allclose(got, np.abs(g).max(-1), rtol=1e-4, atol=1e-9)
    with pytest.raises(EngineError, match="out of range"):
        saliency(convnet, img, target=8, layer="conv2")


def test_map_lies_on_the_photos_grid(convnet: ModelHandle) -> None:
    big = rng_image((32, 32, 3), 6)
    small = fit_image(big, convnet.input_shape)  # what the model sees of the 32x32 photo
    s16 = saliency(convnet, small, 0)
    s32 = saliency(convnet, big, 0)
    assert s32.shape == (32, 32)
    np.testing.assert_allclose(s32, np.kron(s16, np.ones((2, 2))), rtol=1e-3, atol=1e-6)
    assert saliency(convnet, rng_image((21, 50, 1), 7), 0, "grad_x_input").shape == (21, 50)


def test_sigmoid_targets() -> None:
    keras.utils.set_random_seed(2)
    inp = keras.Input((8, 8, 3))
    out = layers.Dense(1, activation="sigmoid")(layers.Flatten()(inp))
    h = handle(keras.Model(inp, out, name="bin"))
    img = rng_image((8, 8, 3), 8)
    pos = saliency(h, img, "positive", "grad_x_input")
    neg = saliency(h, img, "negative", "grad_x_input")
    np.testing.assert_allclose(neg, -pos, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(saliency(h, img, "negative"), saliency(h, img, "positive"), rtol=1e-5)


@pytest.mark.parametrize("method", SALIENCY_METHODS)
def test_every_method_is_finite(convnet: ModelHandle, method: str) -> None:
    out = saliency(convnet, rng_image((30, 20, 3), 9), method=method, samples=4, steps=4)
    assert out.dtype == np.float32 and out.shape == (30, 20) and np.isfinite(out).all()
    if method in ("gradient", "smoothgrad"):
        assert out.min() >= 0


def test_bad_arguments(convnet: ModelHandle) -> None:
    img = rng_image((16, 16, 3), 10)
    with pytest.raises(EngineError, match="gradient"):
        saliency(convnet, img, method="deconvnet")
    with pytest.raises(EngineError, match="out of range"):
        saliency(convnet, img, target=9)
    with pytest.raises(EngineError, match="at least one"):
        saliency(convnet, img, method="smoothgrad", samples=0)


def test_saliency_job(tmp_path) -> None:
    from engine.jobs import Finished, Progress, Request, run

    path = tmp_path / "lin.keras"
    linear_model().model.save(path)
    img = rng_image((12, 12, 3), 11)
    events = list(
        run(
            Request(
                "saliency",
                {
                    "model": str(path),
                    "image": img,
                    "method": "integrated",
                    "steps": 6,
                    "batch_size": 2,
                    "target": 1,
                },
            )
        )
    )
    assert isinstance(events[-1], Finished) and events[-1].reason == "done", events[-1]
    assert [e.step for e in events if isinstance(e, Progress)] == [0, 2, 4, 6]
    out = events[-1].result
    assert out.map.shape == (12, 12) and out.signed and out.method == "integrated"
