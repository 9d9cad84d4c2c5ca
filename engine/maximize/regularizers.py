"""Regularizers: penalties added to the objective, and operators applied to the image after a step.

Penalties (differentiable, subtracted from each image's objective):
  "tv[:weight]"        total variation: mean |dx| + |dy| of the image            (default 0.05)
  "lp[:p[:weight]]"    mean |x - 0.5|^p, keeps pixel values moderate              (default p=6, 0.05)

Operators (Yosinski et al. 2015, applied to the display image after each update):
  "decay[:theta]"               L2 decay toward the mean grey: x -= theta * (x - 0.5)   (default 0.01)
  "blur[:sigma[:every]]"        Gaussian blur of width sigma every `every` steps        (default 0.5, 4)
  "clip_value[:percentile]"     pixels whose norm |x - 0.5| is below the percentile -> grey     (default 10)
  "clip_contribution[:pct]"     pixels whose contribution sum_c |(x - 0.5) * grad| is below
                                the percentile -> grey                                   (default 10)
Operators act per image, so a batched run equals one-at-a-time runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.maximize.common import as_list, parse_spec

PENALTIES = {"tv": (0.05,), "lp": (6.0, 0.05)}
OPERATORS = {"decay": (0.01,), "blur": (0.5, 4.0), "clip_value": (10.0,), "clip_contribution": (10.0,)}
_ALIASES = {
    "l2": "decay",
    "l2_decay": "decay",
    "total_variation": "tv",
    "gaussian_blur": "blur",
    "clip": "clip_value",
    "norm_clip": "clip_value",
    "contribution": "clip_contribution",
    "lnorm": "lp",
}


@dataclass(frozen=True)
class Regularizers:
    """Parsed regularizer settings: name -> its numeric arguments (defaults filled in)."""

    items: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def needs_image_grad(self) -> bool:
        return "clip_contribution" in self.items

    @property
    def has_operators(self) -> bool:
        return any(k in OPERATORS for k in self.items)

    def settings(self) -> list[str]:
        return [":".join([k, *(f"{v:g}" for v in args)]) for k, args in self.items.items()]


def parse_regularizers(spec: Any) -> Regularizers:
    """Regularizers from a list like ("tv", "blur:1:4", ("decay", 0.02))."""
    items: dict[str, tuple[float, ...]] = {}
    for item in as_list(spec):
        name, args = parse_spec(item, "regularizer")
        name = _ALIASES.get(name, name)
        defaults = PENALTIES.get(name) or OPERATORS.get(name)
        if defaults is None:
            raise EngineError(
                f"unknown regularizer {name!r}; choose from: {', '.join([*PENALTIES, *OPERATORS])}"
            )
        if len(args) > len(defaults):
            raise EngineError(f"regularizer {name} takes at most {len(defaults)} values, got {len(args)}")
        values = tuple(args) + defaults[len(args) :]
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise EngineError(f"regularizer {name} needs non-negative values, got {values}")
        if name in ("clip_value", "clip_contribution") and values[0] >= 100:
            raise EngineError(f"regularizer {name} takes a percentile below 100, got {values[0]:g}")
        if name == "decay" and values[0] >= 1:
            raise EngineError(f"regularizer decay takes a factor below 1, got {values[0]:g}")
        if name == "blur" and values[1] < 1:
            raise EngineError("regularizer blur: 'every' must be at least 1 step")
        items[name] = values
    return Regularizers(items)


def penalty(regs: Regularizers, x: Any) -> Any:
    """Per-image penalty (B,) of display images x (B, H, W, C), or None."""
    import tensorflow as tf

    total = None
    if "tv" in regs.items:
        (w,) = regs.items["tv"]
        dy = tf.reduce_mean(tf.abs(x[:, 1:] - x[:, :-1]), axis=[1, 2, 3])
        dx = tf.reduce_mean(tf.abs(x[:, :, 1:] - x[:, :, :-1]), axis=[1, 2, 3])
        total = w * (dx + dy)
    if "lp" in regs.items:
        p, w = regs.items["lp"]
        value = w * tf.reduce_mean(tf.abs(x - 0.5) ** p, axis=[1, 2, 3])
        total = value if total is None else total + value
    return total


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (t / max(sigma, 1e-6)) ** 2)
    return (k / k.sum()).astype(np.float32)


def blur(x: Any, sigma: float) -> Any:
    """Separable Gaussian blur of (B, H, W, C) images with reflected borders."""
    import tensorflow as tf

    if sigma <= 0:
        return x
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    c = int(x.shape[-1])
    h, w = int(x.shape[1]), int(x.shape[2])
    mode = "REFLECT" if r < min(h, w) else "SYMMETRIC"
    if r >= min(h, w):
        r = min(r, min(h, w) - 1)
        k = k[len(k) // 2 - r : len(k) // 2 + r + 1]
        k = k / k.sum()
    kx = tf.constant(np.tile(k[None, :, None, None], (1, 1, c, 1)))
    ky = tf.constant(np.tile(k[:, None, None, None], (1, 1, c, 1)))
    x = tf.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode=mode)
    x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "VALID")


def _below_percentile(score: Any, pct: float) -> Any:
    """Boolean (B, H, W) mask of pixels whose score (B, H, W) is below each image's percentile."""
    import tensorflow as tf

    b = tf.shape(score)[0]
    flat = tf.reshape(score, [b, -1])
    n = int(score.shape[1]) * int(score.shape[2])
    k = min(n - 1, int(n * pct / 100.0))
    thresh = tf.sort(flat, axis=-1)[:, k]
    return score < thresh[:, None, None]


def operate(regs: Regularizers, x: Any, step: Any, grad: Any = None) -> Any:
    """Apply the operators to display images x (B, H, W, C) after update number `step` (tf int)."""
    import tensorflow as tf

    if "decay" in regs.items:
        (theta,) = regs.items["decay"]
        x = x - theta * (x - 0.5)
    if "blur" in regs.items:
        sigma, every = regs.items["blur"]
        every = max(1, int(every))
        x = tf.cond(tf.equal(step % every, 0), lambda: blur(x, sigma), lambda: x)
    if "clip_value" in regs.items:
        (pct,) = regs.items["clip_value"]
        norm = tf.norm(x - 0.5, axis=-1)
        x = tf.where(_below_percentile(norm, pct)[..., None], tf.constant(0.5, x.dtype), x)
    if "clip_contribution" in regs.items and grad is not None:
        (pct,) = regs.items["clip_contribution"]
        contrib = tf.reduce_sum(tf.abs((x - 0.5) * grad), axis=-1)
        x = tf.where(_below_percentile(contrib, pct)[..., None], tf.constant(0.5, x.dtype), x)
    return tf.clip_by_value(x, 0.0, 1.0)
