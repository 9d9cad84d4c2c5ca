"""Random transforms applied to the image before each step (transformation robustness, Lucid).

Specs: "jitter[:pixels]", "rotate[:degrees]", "scale[:fraction]", "pad[:pixels]". Jitter,
rotation and scaling are drawn at random each step and composed into ONE affine resampling
(bilinear, reflecting at the border), so the model always sees an image of its own input
size; "pad" first surrounds the image with a grey border of that width (cropped off again
after the affine), so content moved in from outside is grey rather than reflected.

The random draw depends only on (seed, step), never on the batch: every image of a batch
sees the same transform, which is what makes a batched run equal to one-at-a-time runs.
Defaults scale with the image: jitter 4% of its side, rotation 10 degrees, scale 10%, pad 5%.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError
from engine.maximize.common import as_list, parse_spec

NAMES = ("jitter", "rotate", "scale", "pad")


@dataclass(frozen=True)
class TransformSpec:
    jitter: float = 0.0  # pixels
    rotate: float = 0.0  # degrees
    scale: float = 0.0  # fraction
    pad: int = 0  # pixels

    @property
    def empty(self) -> bool:
        return not (self.jitter or self.rotate or self.scale or self.pad)

    def settings(self) -> list[str]:
        out = []
        for name in NAMES:
            value = getattr(self, name)
            if value:
                out.append(f"{name}:{value:g}")
        return out


def parse_transforms(spec: Any, size: tuple[int, int]) -> TransformSpec:
    """A TransformSpec from a list like ("jitter", "rotate:15", ("scale", 0.2)) for images of `size`."""
    side = min(int(size[0]), int(size[1]))
    defaults = {
        "jitter": float(max(1, round(0.04 * side))),
        "rotate": 10.0,
        "scale": 0.1,
        "pad": float(max(1, round(0.05 * side))),
    }
    values: dict[str, float] = {}
    for item in as_list(spec):
        name, args = parse_spec(item, "transform")
        name = {"translate": "jitter", "rotation": "rotate", "scaling": "scale", "padding": "pad"}.get(
            name, name
        )
        if name not in NAMES:
            raise EngineError(f"unknown transform {name!r}; choose from: {', '.join(NAMES)}")
        value = args[0] if args else defaults[name]
        if value < 0 or not math.isfinite(value):
            raise EngineError(f"transform {name} needs a non-negative range, got {value}")
        if name == "scale" and value >= 1:
            raise EngineError(f"transform scale is a fraction (0.1 = +-10%), got {value}")
        values[name] = value
    return TransformSpec(
        jitter=values.get("jitter", 0.0),
        rotate=values.get("rotate", 0.0),
        scale=values.get("scale", 0.0),
        pad=int(round(values.get("pad", 0))),
    )


def affine_params(spec: TransformSpec, seed: Any) -> Any:
    """(dy, dx, angle_rad, scale) drawn from a stateless seed pair (tf int32 (2,))."""
    import tensorflow as tf

    u = tf.random.stateless_uniform([4], seed=seed, minval=-1.0, maxval=1.0)
    dy = tf.round(u[0] * spec.jitter)
    dx = tf.round(u[1] * spec.jitter)
    angle = u[2] * (spec.rotate * math.pi / 180.0)
    scale = 1.0 + u[3] * spec.scale
    return dy, dx, angle, scale


def _matrix(dy: Any, dx: Any, angle: Any, scale: Any, h: int, w: int) -> Any:
    """The (1, 8) ImageProjectiveTransform that maps output pixels to input pixels."""
    import tensorflow as tf

    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # input = A (out - c - t) + c with A = R(angle) / scale
    ox, oy = cx + dx, cy + dy
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - a0 * ox - a1 * oy
    b2 = cy - b0 * ox - b1 * oy
    zero = tf.zeros_like(a0)
    return tf.reshape(tf.stack([a0, a1, a2, b0, b1, b2, zero, zero]), [1, 8])


def build(spec: TransformSpec) -> Callable[[Any, Any], Any]:
    """fn(images (B, H, W, C) tf, seed (2,) int32) -> transformed images of the same size."""
    import tensorflow as tf

    if spec.empty:
        return lambda x, seed: x
    affine = bool(spec.jitter or spec.rotate or spec.scale)

    def apply(x: Any, seed: Any) -> Any:
        h, w = int(x.shape[1]), int(x.shape[2])
        p = spec.pad
        if p:
            x = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=0.5)
        if affine:
            hh, ww = h + 2 * p, w + 2 * p
            m = _matrix(*affine_params(spec, seed), hh, ww)
            x = tf.raw_ops.ImageProjectiveTransformV3(
                images=x,
                transforms=m,
                output_shape=tf.constant([hh, ww], tf.int32),
                fill_value=tf.constant(0.5, tf.float32),
                interpolation="BILINEAR",
                fill_mode="REFLECT",
            )
        if p:
            x = x[:, p : p + h, p : p + w, :]
        return x

    return apply
