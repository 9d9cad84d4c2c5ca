"""Feature maps, predictions and filters on tiny real models."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.activations import clear_cache
from engine.errors import EngineError


def test_feature_maps_equal_per_layer_submodels(tiny):
    import keras

    img = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    maps = engine.feature_maps(tiny, img, ["conv1", "conv2", "fc", "out"])
    x = engine.images.to_model_input(img, tiny)
    for path in ("conv1", "conv2", "fc", "out"):
        ref = keras.Model(tiny.model.inputs, tiny.model.get_layer(path).output)(x)
        np.testing.assert_allclose(maps[path], np.asarray(ref)[0], rtol=1e-5, atol=1e-6)
    assert maps["conv2"].shape == (7, 7, 6) and maps["fc"].shape == (5,)


def test_feature_maps_cache_and_any_image_size(tiny):
    clear_cache()
    img = np.random.default_rng(1).random((40, 33, 1), dtype=np.float32)  # grey, other size
    a = engine.feature_maps(tiny, img, "conv1")["conv1"]
    b = engine.feature_maps(tiny, img.copy(), ["conv1", "conv2"])
    np.testing.assert_array_equal(a, b["conv1"])
    other = engine.feature_maps(tiny, 1.0 - img, "conv1")["conv1"]
    assert not np.array_equal(a, other)


def test_predict_sums_to_one_and_matches_model(tiny):
    img = np.random.default_rng(2).random((16, 16, 3), dtype=np.float32)
    probs = engine.predict(tiny, img)
    np.testing.assert_allclose(probs, np.asarray(tiny.model(img[None]))[0], rtol=1e-5)
    assert probs.shape == (3,) and abs(float(probs.sum()) - 1) < 1e-5


def test_predict_accepts_paths_and_specs(tiny, tmp_path):
    from PIL import Image

    path = tmp_path / "p.png"
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(path)
    assert engine.predict(tiny, path).shape == (3,)
    assert engine.predict(tiny, str(path)).shape == (3,)


def test_filters_layouts(tmp_path):
    import keras
    from keras import layers

    inp = keras.Input((10, 10, 3))
    x = layers.Conv2D(4, 3, name="c")(inp)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = layers.SeparableConv2D(5, 3, name="sep")(x)
    x = layers.MaxPooling2D(name="mp")(x)
    out = layers.Dense(2, name="d")(layers.Flatten()(x))
    path = tmp_path / "f.keras"
    keras.Model(inp, out).save(path)
    h = engine.load_model(path)
    assert engine.filters(h, "c").shape == (3, 3, 3, 4)
    assert engine.filters(h, "dw").shape == (3, 3, 4, 2)
    assert engine.filters(h, "sep").shape == (3, 3, 8, 1)
    assert engine.filters(h, "d").shape[:2] == (1, 1)
    with pytest.raises(EngineError, match="no filter weights"):
        engine.filters(h, "mp")
    np.testing.assert_array_equal(engine.filters(h, "c"), h.layer("c").get_weights()[0])
