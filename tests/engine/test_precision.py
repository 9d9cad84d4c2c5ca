"""engine.precision: bf16 copies of real models, their refusal when they stray, and Score-CAM on them."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import engine
from engine.attribution import cam
from engine.errors import EngineError
from engine.models import ModelHandle
from engine.precision import (
    PRECISIONS,
    check_precision,
    cpu_bfloat16,
    isa_cap,
    logits_model,
    native_bfloat16,
    resolve_precision,
)

layers = keras.layers


def handle(model: keras.Model, **kw) -> ModelHandle:
    return ModelHandle(model, name=model.name, spec=f"test:{model.name}", **kw)


def images(h: ModelHandle, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *h.input_shape)).astype(np.float32)


def test_check_precision_names_and_aliases() -> None:
    assert PRECISIONS == ("auto", "float32", "bfloat16")
    assert check_precision(None) == "auto"
    assert check_precision("BF16") == "bfloat16" and check_precision("fp32") == "float32"
    with pytest.raises(EngineError, match="unknown precision 'half'"):
        check_precision("half")


def test_auto_follows_the_environment_then_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVSCOPE_PRECISION", raising=False)
    assert resolve_precision("auto") == ("bfloat16" if native_bfloat16() else "float32")
    monkeypatch.setenv("CONVSCOPE_PRECISION", "float32")
    assert resolve_precision("auto") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"  # an explicit choice wins over the variable
    monkeypatch.setenv("CONVSCOPE_PRECISION", "bf16")
    assert resolve_precision(None) == "bfloat16"
    monkeypatch.setenv("CONVSCOPE_PRECISION", "double")
    with pytest.raises(EngineError, match="unknown precision"):
        resolve_precision("auto")


def test_the_onednn_isa_cap_decides_whether_bf16_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONEDNN_MAX_CPU_ISA=AVX2 makes an AVX-512/AMX CPU behave as an AVX2-only one: float32."""
    spr = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert (
        cpu_bfloat16(spr) and cpu_bfloat16(spr, "AVX512_CORE_BF16") and cpu_bfloat16(spr, "AVX512_CORE_AMX")
    )
    assert not cpu_bfloat16(spr, "AVX2") and not cpu_bfloat16(spr, "AVX512_CORE_VNNI")
    assert cpu_bfloat16({"avx2", "amx_bf16"}, "AVX512_CORE_AMX")
    assert not cpu_bfloat16({"avx2", "amx_bf16"}, "AVX512_CORE_BF16")  # AMX is capped off below its level
    assert not cpu_bfloat16({"avx2", "fma"})  # an AVX2-only CPU, uncapped
    assert cpu_bfloat16(spr, "SOMETHING_NEW")  # an unknown cap counts as none
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert isa_cap() == "AVX2"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert isa_cap() is None
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE")
    assert isa_cap() == "AVX512_CORE"
    # the decision itself, on this machine, under the AVX2 cap: float32 unless a GPU decides
    import tensorflow as tf

    monkeypatch.delenv("CONVSCOPE_PRECISION", raising=False)
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")
    native_bfloat16.cache_clear()
    try:
        if not tf.config.list_physical_devices("GPU"):
            assert native_bfloat16() is False
            assert resolve_precision("auto") == "float32"
    finally:
        native_bfloat16.cache_clear()


def test_bf16_copy_of_a_nested_model_with_batchnorm() -> None:
    """Convs compute in bf16, BN in float32, the logits layer in float32; weights are the original ones."""
    keras.utils.set_random_seed(3)
    b_in = keras.Input((20, 20, 3))
    b = layers.Conv2D(8, 3, padding="same", name="c1")(b_in)
    b = layers.BatchNormalization(name="bn")(b)
    b = layers.Activation("relu", name="relu")(b)
    b = layers.Conv2D(8, 3, strides=2, activation="relu", name="c2")(b)
    base = keras.Model(b_in, b, name="base")
    model = keras.Sequential(
        [
            keras.Input((20, 20, 3)),
            base,
            layers.GlobalAveragePooling2D(),
            layers.Dense(4, activation="softmax"),
        ],
        name="outer",
    )
    bn = base.get_layer("bn")
    bn.set_weights([w + np.random.default_rng(0).random(w.shape) for w in bn.get_weights()])
    h = handle(model)
    copy, used = logits_model(h, "bfloat16")
    assert used == "bfloat16"
    assert logits_model(h, "bfloat16")[0] is copy  # built once per handle
    by_name = {layer.name: layer for layer in copy.layers}
    assert by_name["c1"].compute_dtype == "bfloat16"
    assert by_name["bn"].dtype_policy.name == "mixed_bfloat16"  # statistics kept and applied in float32
    logits_layer = h.logits._keras_history[0]
    assert by_name[logits_layer.name].compute_dtype == "float32"
    for name in ("c1", "c2"):
        mine = base.get_layer(name).get_weights()[0]
        theirs = np.asarray(by_name[name].get_weights()[0], np.float32)
        np.testing.assert_allclose(theirs, mine, rtol=2**-7)  # rounded to bf16, not re-initialised
    x = images(h, 4)
    z32 = np.asarray(logits_model(h, "float32")[0](x))
    z16 = np.asarray(copy(x), np.float32)
    assert z16.dtype == np.float32 and z16.shape == z32.shape
    np.testing.assert_allclose(z16, z32, atol=0.05 * np.abs(z32).max())
    assert not np.array_equal(z16, z32)


class _Unrebuildable(layers.Layer):
    """A layer built around a Python function: it has no config, so it cannot be re-created."""

    def __init__(self, fn, **kw) -> None:
        super().__init__(**kw)
        self.fn = fn

    def call(self, x):
        return self.fn(x)


def test_a_copy_that_cannot_be_made_falls_back_to_float32() -> None:
    keras.utils.set_random_seed(4)
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    x = _Unrebuildable(lambda t: t * 2.0, name="odd")(x)
    out = layers.Dense(2, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    h = handle(keras.Model(inp, out, name="odd_model"))
    model, used = logits_model(h, "bfloat16")
    assert used == "float32"
    assert all(layer.compute_dtype == "float32" for layer in model.layers)
    res = cam(h, images(h, 1)[0], layer="conv", method="scorecam", precision="bfloat16")
    assert res.settings["precision"] == "float32"  # what ran is what is recorded


def test_a_copy_that_strays_is_refused() -> None:
    """Logits that are differences of large activations lose everything in bf16: the probe refuses the copy."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((4, 4, 1))
    x = layers.Rescaling(1.0, offset=1000.0, name="shift")(inp)
    x = layers.Flatten()(x)
    dense = layers.Dense(2, use_bias=False, name="diff")
    out = dense(x)
    kernel = np.zeros((16, 2), np.float32)
    kernel[0::2, 0], kernel[1::2, 0] = 1.0, -1.0
    kernel[0::2, 1], kernel[1::2, 1] = -1.0, 1.0
    dense.set_weights([kernel])
    h = handle(keras.Model(inp, out, name="cancel"))
    assert logits_model(h, "bfloat16")[1] == "float32"


def test_scorecam_of_the_shipped_shapes_model_agrees_across_precisions() -> None:
    h = engine.load_model("builtin:shapes")
    for spec in engine.sample_images()[:2]:
        exact = cam(h, spec, method="scorecam", precision="float32")
        fast = cam(h, spec, method="scorecam", precision="bfloat16")
        assert (exact.settings["precision"], fast.settings["precision"]) == ("float32", "bfloat16")
        assert exact.target == fast.target
        assert np.corrcoef(exact.cam.ravel(), fast.cam.ravel())[0, 1] > 0.999
