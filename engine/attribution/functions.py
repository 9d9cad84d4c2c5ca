"""The compiled TensorFlow functions of attribution, each built once per (model, layer, score).

Cached in a weak table keyed by the model handle, so a handle's functions go with it. Imports
no TensorFlow at import time. The class score is read through engine.attribution.target.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from engine.attribution.target import Score, graph_score, head_of
from engine.models import ModelHandle

_FUNCTIONS: weakref.WeakKeyDictionary[Any, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def compiled(h: ModelHandle, key: tuple, build: Callable[[], Any]) -> Any:
    """A function cached per model handle under `key` (built on first use)."""
    table = _FUNCTIONS.setdefault(h, {})
    fn = table.get(key)
    if fn is None:
        fn = table[key] = build()
    return fn


def input_spec(h: ModelHandle) -> Any:
    """The TensorSpec of a batch of model inputs."""
    import tensorflow as tf

    return tf.TensorSpec((None, *h.input_shape), tf.float32)


def grad_fn(h: ModelHandle, layer: str, score: Score = "logit") -> Any:
    """f(x (B,H,W,C), target (B,)) -> (A, dS/dA, logits, target) for layer `layer`."""
    import tensorflow as tf

    def build() -> Any:
        model = h.submodel([layer], logits=True)
        head = head_of(h)

        @tf.function(input_signature=[input_spec(h), tf.TensorSpec((None,), tf.int32)])
        def fn(x: Any, target: Any) -> Any:
            with tf.GradientTape() as tape:
                acts, logits = model(x, training=False)
                s, t = graph_score(logits, target, head, score)
            grads = tape.gradient(s, acts, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return acts, grads, logits, t

        return fn

    return compiled(h, ("grad", layer, score), build)


def forward_fn(h: ModelHandle, layer: str) -> Any:
    """f(x) -> (A, logits) for layer `layer`."""
    import tensorflow as tf

    def build() -> Any:
        model = h.submodel([layer], logits=True)

        @tf.function(input_signature=[input_spec(h)])
        def fn(x: Any) -> Any:
            acts, logits = model(x, training=False)
            return acts, logits

        return fn

    return compiled(h, ("forward", layer), build)


def logits_fn(h: ModelHandle) -> Any:
    """f(x (B,H,W,C)) -> logits (B, n), compiled."""
    import keras
    import tensorflow as tf

    def build() -> Any:
        model = keras.Model(h.flat_input, h.logits, name="convscope_logits")

        @tf.function(input_signature=[input_spec(h)])
        def fn(x: Any) -> Any:
            return model(x, training=False)

        return fn

    return compiled(h, ("logits",), build)


def masked_scores_fn(h: ModelHandle, precision: str = "float32") -> tuple[Any, str]:
    """(f, precision used): f(x (1,H,W,C), maps (K,h,w), py, px, base (C,)) -> float32 logits (K, n)
    of the image blended toward `base` by each map, projected (py, px) and scaled to [0, 1]."""
    import tensorflow as tf

    from engine.precision import logits_model, resolve_precision

    def build() -> tuple[Any, str]:
        model, used = logits_model(h, precision)

        @tf.function(
            input_signature=[
                input_spec(h),
                tf.TensorSpec((None, None, None), tf.float32),
                tf.TensorSpec((None, None), tf.float32),
                tf.TensorSpec((None, None), tf.float32),
                tf.TensorSpec((h.input_shape[2],), tf.float32),
            ]
        )
        def fn(x: Any, maps: Any, py: Any, px: Any, base: Any) -> Any:
            masks = tf.einsum("Hh,khw,Ww->kHW", py, maps, px)
            lo = tf.reduce_min(masks, axis=[1, 2], keepdims=True)
            hi = tf.reduce_max(masks, axis=[1, 2], keepdims=True)
            masks = (masks - lo) / tf.maximum(hi - lo, 1e-12)
            masked = base + masks[..., None] * (x - base)
            return tf.cast(model(masked, training=False), tf.float32)

        return fn, used

    return compiled(h, ("masked", resolve_precision(precision)), build)
