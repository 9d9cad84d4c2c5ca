"""Predictions and feature maps: all requested layers in one forward pass, cached per (model, image)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.images import ImageSource, load_image, to_model_input
from engine.models import ModelHandle

_CACHE: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
_CACHE_ITEMS = 8


def image_key(img: np.ndarray) -> str:
    """A content digest of an image array (cache key)."""
    a = np.ascontiguousarray(img)
    return hashlib.blake2b(a.tobytes(), digest_size=16, person=str(a.shape).encode()[:16]).hexdigest()


def _as_image(img: ImageSource) -> np.ndarray:
    return (
        img if isinstance(img, np.ndarray) and img.dtype == np.float32 and img.ndim == 3 else load_image(img)
    )


def run_model(model: Any, x: np.ndarray) -> list[np.ndarray]:
    """Call a Keras model in inference mode and return its outputs as NumPy arrays."""
    out = model(x, training=False)
    if not isinstance(out, list | tuple):
        out = [out]
    return [np.asarray(o) for o in out]


def predict(h: ModelHandle, img: ImageSource) -> np.ndarray:
    """Class probabilities (num_classes,) for one image; a single sigmoid unit gives [1 - p, p]."""
    x = to_model_input(_as_image(img), h)
    probs, logits = run_model(h.probability_model, x)
    return probabilities(h, probs[0], logits[0])


def probabilities(h: ModelHandle, output: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Turn one model output into class probabilities following the model's final activation."""
    out = np.asarray(output, np.float64).reshape(-1)
    if h.binary:
        p = float(out[0])
        return np.array([1.0 - p, p], np.float32)
    if h.output_activation in ("softmax", "sigmoid"):
        return out.astype(np.float32)
    if out.size > 1 and out.min() >= 0 and abs(out.sum() - 1.0) < 1e-3:
        return out.astype(np.float32)  # an opaque model that already outputs probabilities
    z = np.asarray(logits, np.float64).reshape(-1)
    z = np.exp(z - z.max())
    return (z / z.sum()).astype(np.float32)


def feature_maps(h: ModelHandle, img: ImageSource, layers: Sequence[str] | str) -> dict[str, np.ndarray]:
    """Outputs of the given layers for one image, {path: (h, w, c) or (units,)}, in one forward pass."""
    if isinstance(layers, str):
        layers = [layers]
    paths = tuple(h.resolve(p) for p in layers)
    image = _as_image(img)
    key = (id(h), h.scaling, image_key(image))
    cached = _CACHE.get(key, {})
    missing = tuple(p for p in dict.fromkeys(paths) if p not in cached)
    if missing:
        outs = run_model(h.submodel(missing), to_model_input(image, h))
        cached = {**cached, **{p: o[0] for p, o in zip(missing, outs)}}
        _CACHE[key] = cached
    _CACHE.move_to_end(key)
    while len(_CACHE) > _CACHE_ITEMS:
        _CACHE.popitem(last=False)
    return {p: cached[p] for p in paths}


def clear_cache() -> None:
    _CACHE.clear()
