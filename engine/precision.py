"""bfloat16 copies of a model for throughput-bound work (Score-CAM's hundreds of masked passes).

bfloat16 keeps float32's exponent range with an 8-bit mantissa. Where the hardware has
native bf16 dot products (x86 AVX512_BF16 or AMX, GPUs of compute capability 8.0 and
up) convolutions run about twice as fast as in float32. Score-CAM weighs each channel
by a difference of two probabilities computed by the same low-precision network, so
rounding largely cancels: on VGG16 the bf16 map agrees with the float32 one at
Pearson r > 0.9999 (bench/cam_speed.py).

The copy is the handle's flat logits graph with every layer re-created under a bf16
dtype policy and given the original weights: convolutions and dense layers store and
compute in bfloat16 (the same rounding mixed precision applies on every call, without
the per-call cast), normalization layers compute in float32 (``mixed_bfloat16``), and
the layer that produces the logits stays float32 so the scores keep a float32 mantissa.
A copy that cannot be built, or whose logits stray from the original's on a probe
image, is refused and the caller falls back to float32.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.models import ModelHandle

PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")
ENV = "CONVSCOPE_PRECISION"

log = logging.getLogger(__name__)

_COPIES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_FAILED = object()


def check_precision(precision: str | None) -> str:
    """Normalise a precision name (None means "auto"); raise EngineError for an unknown one."""
    key = str(precision or "auto").strip().lower()
    key = {"fp32": "float32", "f32": "float32", "bf16": "bfloat16"}.get(key, key)
    if key not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}; choose from: {', '.join(PRECISIONS)}")
    return key


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# oneDNN's ISA names in rising order (ONEDNN_MAX_CPU_ISA caps what its kernels may use); bf16 dot
# products are native from AVX512_CORE_BF16 up (AMX above it), never on AVX2-class levels
ISA_LEVELS: tuple[str, ...] = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX10_1_512",
    "AVX512_CORE_AMX",
    "AVX10_1_512_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512_AMX_FP16",
)
_BF16_LEVEL = ISA_LEVELS.index("AVX512_CORE_BF16")
_AMX_LEVEL = ISA_LEVELS.index("AVX512_CORE_AMX")


def isa_cap() -> str | None:
    """The instruction-set cap oneDNN runs under ($ONEDNN_MAX_CPU_ISA, or the older $DNNL_MAX_CPU_ISA),
    upper case; None when unset or "ALL"/"DEFAULT" (no cap)."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(name, "").strip().upper()
        if value:
            return None if value in ("ALL", "DEFAULT") else value
    return None


def cpu_bfloat16(flags: set[str], cap: str | None = None) -> bool:
    """Whether a CPU with these /proc/cpuinfo `flags` computes bf16 natively under oneDNN's ISA `cap`.

    avx512_bf16 needs a cap of AVX512_CORE_BF16 or above, amx_bf16 one of AVX512_CORE_AMX or
    above; an unknown cap counts as no cap. So ONEDNN_MAX_CPU_ISA=AVX2 (an AVX2-only CPU, or its
    imitation) gives False, as on a real AVX2 machine.
    """
    level = ISA_LEVELS.index(cap) if cap in ISA_LEVELS else len(ISA_LEVELS)
    return ("avx512_bf16" in flags and level >= _BF16_LEVEL) or ("amx_bf16" in flags and level >= _AMX_LEVEL)


@functools.cache
def native_bfloat16() -> bool:
    """True when TensorFlow's device here computes bf16 convolutions natively (and so faster).

    A GPU of compute capability 8.0 or more; else the CPU's flags (AVX512_BF16 or AMX) under the
    ISA cap oneDNN runs with (cpu_bfloat16).
    """
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            major, _ = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        except (RuntimeError, ValueError, TypeError):
            continue
        return major >= 8
    return cpu_bfloat16(_cpu_flags(), isa_cap())


def resolve_precision(precision: str | None) -> str:
    """'float32' or 'bfloat16': "auto" follows $CONVSCOPE_PRECISION, else bf16 where it is native."""
    key = check_precision(precision)
    if key != "auto":
        return key
    env = os.environ.get(ENV, "").strip()
    if env:
        key = check_precision(env)
        if key != "auto":
            return key
    return "bfloat16" if native_bfloat16() else "float32"


def _policy(layer: Any, logits_layer: Any) -> str:
    if layer is logits_layer:
        return "float32"
    if "Normalization" in type(layer).__name__:
        return "mixed_bfloat16"
    return "bfloat16"


def _clone_layer(layer: Any, policy: str) -> Any:
    """A fresh layer of the same kind under `policy`, built and holding `layer`'s weights."""
    from engine.graph import PreActivation

    if isinstance(layer, PreActivation):
        return PreActivation(_clone_layer(layer.inner, policy), dtype=policy)
    if layer.weights and not layer.built:
        raise EngineError(f"layer {layer.name} is not built")
    config = dict(layer.get_config())
    config["dtype"] = policy
    new = type(layer).from_config(config)
    if layer.weights:
        build = layer.get_build_config()
        if build:
            new.build_from_config(build)
        new.set_weights(layer.get_weights())
    return new


def _build(h: ModelHandle) -> Any:
    import keras

    source = keras.Model(h.flat_input, h.logits, name="convscope_logits")
    logits_layer = h.logits._keras_history[0]
    layers = [layer for layer in source.layers if not isinstance(layer, keras.layers.InputLayer)]
    if any(isinstance(layer, keras.Model) for layer in layers):
        raise EngineError("the model holds a layer Convscope cannot copy (an opaque SavedModel)")

    def clone(layer: Any) -> Any:  # built and holding its weights already (_clone_layer)
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        return _clone_layer(layer, _policy(layer, logits_layer))

    copy = keras.models.clone_model(source, clone_function=clone)
    _probe(h, source, copy)
    return copy


def _probe(h: ModelHandle, source: Any, copy: Any) -> None:
    """Refuse a copy whose logits on random images stray from the float32 model's."""
    from engine.scaling import to_model_range

    img = np.random.default_rng(0).random((2, *h.input_shape)).astype(np.float32)
    x = to_model_range(img, h.scaling).astype(np.float32)
    z32 = np.asarray(source(x, training=False), np.float64)
    z16 = np.asarray(copy(x, training=False), np.float64)
    scale = float(np.abs(z32).max()) + 1e-6
    err = float(np.abs(z32 - z16).max())
    if not np.all(np.isfinite(z16)) or err > 0.1 * scale:
        raise EngineError(f"bfloat16 copy strays from the model (max logit error {err:.3g} of {scale:.3g})")


def logits_model(h: ModelHandle, precision: str | None = "auto") -> tuple[Any, str]:
    """(keras.Model from the flat input to the logits, the precision it computes in).

    "bfloat16" (or "auto" where bf16 is native) gives the cached bf16 copy; when no copy can
    be made the float32 model comes back with "float32", so callers record what they ran.
    """
    import keras

    key = resolve_precision(precision)
    if key == "bfloat16":
        copy = _COPIES.get(h)
        if copy is None:
            try:
                copy = _build(h)
            except Exception as exc:  # noqa: BLE001 - any failure means: run in float32
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.info("bfloat16 copy of %s refused, using float32: %s", h.name, reason)
                copy = _FAILED
            _COPIES[h] = copy
        if copy is not _FAILED:
            return copy, "bfloat16"
    return keras.Model(h.flat_input, h.logits, name="convscope_logits"), "float32"
