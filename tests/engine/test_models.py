"""Model loading: every loader path, safe mode, nested models, logits, scaling memory."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.errors import LayerNotFound, ModelLoadError


def test_keras_file_layer_tree(tiny):
    assert tiny.input_shape == (16, 16, 3)
    paths = [i.path for i in tiny.all_layers()]
    assert paths == ["conv1", "pool1", "conv2", "flatten", "fc", "out"]
    conv1 = tiny.info("conv1")
    assert conv1.type == "Conv2D" and conv1.kind == "conv" and conv1.output_shape == (14, 14, 4)
    assert conv1.params == 3 * 3 * 3 * 4 + 4 and conv1.spatial
    assert not tiny.info("fc").spatial and tiny.info("fc").kind == "dense"
    assert tiny.num_classes == 3 and tiny.class_names is None and tiny.output_activation == "softmax"


def test_unknown_layer_is_a_clear_error(tiny):
    with pytest.raises(LayerNotFound, match="no layer 'nope'.*conv1"):
        tiny.symbolic("nope")
    with pytest.raises(LayerNotFound):
        engine.feature_maps(tiny, np.zeros((8, 8, 3), np.float32), ["nope"])


def test_logits_are_pre_softmax(tiny):
    img = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    fc, logits = [
        np.asarray(t) for t in tiny.submodel(["fc"], logits=True)(engine.images.to_model_input(img, tiny))
    ]
    w, b = tiny.layer("out").get_weights()
    np.testing.assert_allclose(logits, fc @ w + b, rtol=1e-5, atol=1e-6)
    probs = engine.predict(tiny, img)
    z = np.exp(logits[0] - logits[0].max())
    np.testing.assert_allclose(probs, z / z.sum(), rtol=1e-5)


def test_nested_model_paths_reach_inner_layers(nested_path):
    h = engine.load_model(nested_path)
    top = [i.path for i in h.layers]
    assert top == ["base", "gap", "head"]
    base = h.layers[0]
    assert base.kind == "model" and [c.path for c in base.children] == [
        "base/block1_conv1",
        "base/block1_pool",
        "base/block2_conv1",
    ]
    img = np.random.default_rng(1).random((20, 20, 3), dtype=np.float32)
    maps = engine.feature_maps(h, img, ["base/block2_conv1", "gap"])
    inner = h.model.get_layer("base")
    expected = np.asarray(inner(img[None]))[0]
    np.testing.assert_allclose(maps["base/block2_conv1"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["gap"], expected.mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    assert h.resolve("block2_conv1") == "base/block2_conv1"  # a unique bare name is accepted
    assert engine.filters(h, "base/block1_conv1").shape == (3, 3, 3, 4)
    assert h.default_cam_layer() == "base/block2_conv1"


def test_lambda_model_refused_in_safe_mode(tmp_path):
    import keras

    inp = keras.Input((8, 8, 1))
    out = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    out = keras.layers.Flatten()(out)
    path = tmp_path / "lam.keras"
    keras.Model(inp, keras.layers.Dense(2)(out)).save(path)
    with pytest.raises(ModelLoadError, match="refused in safe mode") as refused:
        engine.load_model(path)
    assert isinstance(refused.value, engine.UnsafeModel) and refused.value.kind == "unsafe_model"
    h = engine.load_model(path, trust=True)
    assert "double" in [i.path for i in h.all_layers()]


def test_custom_layer_refused(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="evil")
    class Boost(keras.layers.Layer):
        def call(self, x):
            return x + 1.0

    inp = keras.Input((8, 8, 1))
    path = tmp_path / "custom.keras"
    keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(Boost()(inp)))).save(path)
    with pytest.raises(ModelLoadError, match="custom|code"):
        engine.load_model(path)


def test_multi_input_refused(tmp_path):
    import keras

    a, b = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    out = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Add()([a, b])))
    path = tmp_path / "two.keras"
    keras.Model([a, b], out).save(path)
    with pytest.raises(ModelLoadError, match="multi-input models are not supported"):
        engine.load_model(path)


def test_single_sigmoid_counts_as_two_classes(tmp_path):
    import keras

    inp = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(2, 3, name="c")(inp)
    out = keras.layers.Dense(1, activation="sigmoid", name="p")(keras.layers.Flatten()(x))
    path = tmp_path / "binary.keras"
    model = keras.Model(inp, out)
    model.save(path)
    h = engine.load_model(path)
    assert h.binary and h.num_classes == 2 and h.class_names == ["negative", "positive"]
    img = np.random.default_rng(2).random((12, 12, 1), dtype=np.float32)
    probs = engine.predict(h, img)
    p = float(np.asarray(model(img[None]))[0, 0])
    np.testing.assert_allclose(probs, [1 - p, p], rtol=1e-5)


def _legacy_models(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    L = tf_keras.layers
    inp = L.Input((24, 24, 1), name="gray")
    x = L.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.Activation("relu", name="r1")(x)
    y = L.SeparableConv2D(8, 3, padding="same", name="sep")(x)
    y = L.BatchNormalization(name="bn2")(y)
    x = L.Add(name="add")([x, y])
    x = L.MaxPooling2D(name="pool")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(4, activation="softmax", name="out")(x)
    functional = tf_keras.Model(inp, out)
    # make the BN statistics non-trivial so a wrong restore would show
    for layer in functional.layers:
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.1, mean + 0.2, var * 2.0])
    seq = tf_keras.Sequential(
        [
            L.Conv2D(4, 3, input_shape=(16, 16, 3), name="a"),
            L.Flatten(name="f"),
            L.Dense(3, activation="softmax", name="o"),
        ]
    )
    return tf_keras, functional, seq


def test_legacy_keras2_h5_functional_and_sequential(tmp_path):
    tf_keras, functional, seq = _legacy_models(tmp_path)
    fpath, spath = tmp_path / "k2.h5", tmp_path / "k2seq.h5"
    functional.save(fpath)
    seq.save(spath)
    x = np.random.default_rng(3).random((1, 24, 24, 1), dtype=np.float32)
    h = engine.load_model(fpath)
    assert h.input_shape == (24, 24, 1)
    assert {"bn1", "sep", "add"} <= {i.path for i in h.all_layers()}
    np.testing.assert_allclose(
        engine.predict(h, x[0]), functional.predict(x, verbose=0)[0], rtol=1e-4, atol=1e-6
    )
    maps = engine.feature_maps(h, x[0], ["add"])
    ref = tf_keras.Model(functional.input, functional.get_layer("add").output).predict(x, verbose=0)[0]
    np.testing.assert_allclose(maps["add"], ref, rtol=1e-4, atol=1e-5)
    hs = engine.load_model(spath)
    x3 = np.random.default_rng(4).random((1, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(engine.predict(hs, x3[0]), seq.predict(x3, verbose=0)[0], rtol=1e-4, atol=1e-6)


def test_legacy_keras2_savedmodel_is_rebuilt(tmp_path):
    _, functional, _ = _legacy_models(tmp_path)
    folder = tmp_path / "k2_savedmodel"
    functional.save(folder)
    h = engine.load_model(folder)
    assert not h.opaque and "sep" in [i.path for i in h.all_layers()]
    x = np.random.default_rng(5).random((1, 24, 24, 1), dtype=np.float32)
    np.testing.assert_allclose(
        engine.predict(h, x[0]), functional.predict(x, verbose=0)[0], rtol=1e-4, atol=1e-6
    )


def test_keras3_export_savedmodel_is_opaque_but_predicts(tiny, tmp_path):
    folder = tmp_path / "exported"
    tiny.model.export(folder, verbose=False)
    h = engine.load_model(folder)
    assert h.opaque
    img = np.random.default_rng(6).random((16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(engine.predict(h, img), engine.predict(tiny, img), rtol=1e-4, atol=1e-6)


def test_legacy_lambda_h5_refused(tmp_path):
    tf_keras = pytest.importorskip("tf_keras")
    model = tf_keras.Sequential(
        [tf_keras.layers.Lambda(lambda t: t * 2, input_shape=(8, 8, 1)), tf_keras.layers.Flatten()]
    )
    path = tmp_path / "lam.h5"
    model.save(path)
    with pytest.raises(ModelLoadError, match="Lambda.*safe mode"):
        engine.load_model(path)


def test_scaling_is_settable_and_remembered(tiny_cnn_path):
    h = engine.load_model(tiny_cnn_path, scaling="byte")
    assert h.scaling == "byte"
    assert engine.load_model(tiny_cnn_path).scaling == "byte"  # remembered for this file
    engine.load_model(tiny_cnn_path, scaling="unit")
    assert engine.load_model(tiny_cnn_path).scaling == "unit"
    with pytest.raises(engine.EngineError, match="unknown input scaling"):
        engine.load_model(tiny_cnn_path, scaling="weird")


def test_class_names_from_sidecar(tmp_path, tiny):
    path = tmp_path / "named.keras"
    tiny.model.save(path)
    (tmp_path / "named.classes.txt").write_text("cat\ndog\nbird\n")
    assert engine.load_model(path).class_names == ["cat", "dog", "bird"]
    (tmp_path / "named.classes.txt").unlink()
    (tmp_path / "named.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
    assert engine.load_model(path).class_names == ["a", "b", "c"]


def test_builtin_models_load(tmp_path):
    from engine import zoo

    for name in zoo.builtin_models():
        if not zoo.get(name).model_path.exists():
            pytest.skip(f"built-in model {name} not trained yet")
        h = engine.load_model(f"builtin:{name}")
        assert h.class_names and len(h.class_names) == h.num_classes
    with pytest.raises(ModelLoadError, match="unknown built-in model"):
        engine.load_model("builtin:nope")


@pytest.mark.slow
def test_keras_applications_random_and_cached_weights(tmp_path):
    from keras.src.backend import config

    keras_home = Path(config.keras_home())  # tests/conftest.py points KERAS_HOME at a temp folder
    assert str(keras_home).startswith(tempfile.gettempdir())
    h = engine.load_model("keras:mobilenetv2?weights=none")
    assert h.name == "MobileNetV2" and h.scaling == "signed" and h.input_shape == (224, 224, 3)
    assert h.num_classes == 1000
    # offline: the message names the file to place in the cache
    with pytest.raises(ModelLoadError, match=r"place mobilenet_v2_\S+\.h5 in .*keras"):
        engine.load_model("keras:MobileNetV2")
    # a weights file placed in the cache is used
    cache = keras_home / "models"
    cache.mkdir(parents=True, exist_ok=True)
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    with h5py.File(cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", "w") as f:
        save_weights_to_hdf5_group(f, h.model)  # the layout of the published ImageNet weight files
    cached = engine.load_model("keras:MobileNetV2")
    a, b = h.model.get_layer("Conv1").get_weights()[0], cached.model.get_layer("Conv1").get_weights()[0]
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelLoadError, match="unknown keras.applications model"):
        engine.load_model("keras:NoSuchNet")
    (cache / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5").unlink()


@pytest.mark.parametrize(
    "name, content",
    [
        ("missing.keras", None),
        ("bad.keras", b"PK\x03\x04not really a zip"),
        ("bad.h5", b"\x89HDF\r\n\x1a\n garbage"),
        ("model.txt", b"hello"),
        ("empty.keras", b""),
    ],
)
def test_corrupt_model_files(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelLoadError):
        engine.load_model(path)


def test_folder_that_is_not_a_savedmodel(tmp_path):
    with pytest.raises(ModelLoadError, match="not a SavedModel"):
        engine.load_model(tmp_path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), suffix=st.sampled_from([".keras", ".h5"]))
def test_random_bytes_never_crash_the_loader(tmp_path, data, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError):
        engine.load_model(path)


def test_truncated_keras_file(tmp_path, tiny_cnn_path):
    raw = tiny_cnn_path.read_bytes()
    for cut in (10, len(raw) // 3, len(raw) - 20):
        path = tmp_path / f"cut{cut}.keras"
        path.write_bytes(raw[:cut])
        with pytest.raises(ModelLoadError):
            engine.load_model(path)
