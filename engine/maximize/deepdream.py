"""engine.dream: DeepDream on a photo of any size, as a generator of Steps.

The photo is dreamed at `octaves` scales, smallest first (each `octave_scale` times larger
than the last). At each octave the image is upscaled, the detail the downscaling had lost is
re-injected (original at this size minus the upscaled smaller original), and `steps`
gradient-ascent steps follow. Each step is one compiled tf.function call:

    shift = random (sy, sx) within one tile            # hides tile seams, like jitter
    canvas = reflect-indexed gather of the image, shifted, covering whole tiles
    tiles  = canvas cut into model-input-sized tiles, all in ONE batch
    loss   = mean over tiles of the objective          # layers: mean square; "conv3:5": one map
    x += lr * grad / mean|grad|, clipped to [0, 1]      # gradients flow back through the gather

Tiles are the model's own input size, so any model dreams on any photo: a 28x28 grey digits
net dreams on a 512x512 colour photo through grey (luma) tiles, and its gradient returns to
all three colour channels. `layers` is an objective (see engine.maximize.objectives): a
layer path, several joined with "+", weighted terms ("conv2 + 0.5*conv3"), a dict
{layer: weight}, or one channel ("conv3:5": the single-map mode). The loop checks the
CancelToken before every step; NaN or Inf raises OptimizationDiverged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from engine.errors import EngineError, OptimizationDiverged
from engine.maximize.common import Control, FrameTimer, Step, capped_steps, check_token
from engine.maximize.graphs import call_taps, input_affine, output_shapes, tap_model
from engine.maximize.objectives import layer_names, loss, parse_expression, parse_objective, plan
from engine.models import ModelHandle

__all__ = ["dream", "dream_objective", "octave_shapes"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def dream_objective(layers: Any) -> str:
    """One objective string from a layer path, a list of them, a dict {layer: weight} or an objective string."""
    if isinstance(layers, str):
        text = layers
    elif isinstance(layers, Mapping):
        text = " + ".join(f"{float(w):g}*{name}" for name, w in layers.items())
    elif isinstance(layers, Sequence) and all(isinstance(x, str) for x in layers):
        text = " + ".join(layers)
    else:
        raise EngineError(
            f"layers must be a layer name, a list of them or a {{layer: weight}} dict, got {layers!r}"
        )
    if not text.strip():
        raise EngineError("dream needs at least one layer")
    return text


def octave_shapes(shape: tuple[int, int], octaves: int, octave_scale: float) -> list[tuple[int, int]]:
    """The image size at each octave, smallest first, ending at `shape`."""
    if octaves < 1:
        raise EngineError(f"octaves must be at least 1, got {octaves}")
    if not (math.isfinite(octave_scale) and octave_scale >= 1.0):
        raise EngineError(f"octave_scale must be at least 1, got {octave_scale}")
    h, w = shape
    return [
        (max(8, int(round(h / octave_scale**i))), max(8, int(round(w / octave_scale**i))))
        for i in reversed(range(octaves))
    ]


def dream(
    h: ModelHandle,
    img: Any,
    layers: Any,
    octaves: int = 4,
    octave_scale: float = 1.4,
    steps: int = 20,
    lr: float = 0.01,
    every: int | None = 5,
    token: Any = None,
    *,
    seed: int = 0,
    size: int | tuple[int, int] | None = None,
    control: Control | None = None,
    fps: float = 20.0,
) -> Iterator[Step]:
    """DeepDream `img` (any source engine.load_image takes) with model `h`; yields Steps.

    steps is per octave; lr is the mean absolute change of a pixel per step in display
    units. size resizes the photo first (longest side N, or (H, W)). Step.images is
    (1, H, W, C) at the photo's size and channel count; the last Step's info holds the
    settings and the loss curve. Bad settings raise EngineError at the call.
    """
    import tensorflow as tf

    from engine.images import load_image, resize

    per_octave = capped_steps(steps)
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise EngineError(f"step size lr must be a positive number, got {lr!r}")
    text = dream_objective(layers)
    photo = (
        load_image(img)
        if not (isinstance(img, np.ndarray) and img.dtype == np.float32 and img.ndim == 3)
        else img
    )
    if size is not None:
        if isinstance(size, int | np.integer):
            f = float(size) / max(photo.shape[:2])
            size = (max(8, round(photo.shape[0] * f)), max(8, round(photo.shape[1] * f)))
        photo = resize(photo, (int(size[0]), int(size[1])))
    photo = np.ascontiguousarray(photo, np.float32)
    shapes = octave_shapes(photo.shape[:2], int(octaves), float(octave_scale))
    total = per_octave * len(shapes)

    th, tw, cm = (int(s) for s in h.input_shape)
    uses_class = any(atom.layer == "class" for _, atom in parse_expression(text))
    paths = tuple(dict.fromkeys(h.resolve(n) for n in layer_names([text])))
    taps = tap_model(h, paths, uses_class, (th, tw))
    obj = parse_objective([text], h, output_shapes(taps, paths))
    if any(t.kind == "neuron" for t in obj.terms[0]):
        raise EngineError("dream takes layers or channels, not single neurons ('@row,col')")
    weights = plan(obj, output_shapes(taps, paths), int(getattr(h, "num_outputs", 0) or 0), bool(h.binary))
    cp = int(photo.shape[-1])
    mat, bias = (tf.constant(a) for a in input_affine(h.scaling, cm))

    def to_model(tiles: Any) -> Any:
        if cp == 3 and cm == 1:
            tiles = tf.tensordot(tiles, tf.constant(_LUMA), axes=[[3], [0]])[..., None]
        elif cp == 1 and cm == 3:
            tiles = tf.tile(tiles, [1, 1, 1, 3])
        elif cp != cm:
            raise EngineError(f"cannot feed a {cp}-channel photo to a {cm}-channel model")
        return tf.tensordot(tiles, mat, axes=[[3], [0]]) + bias

    def reflect(n_out: Any, shift: Any, n: Any) -> Any:
        i = tf.range(n_out) - shift
        j = tf.math.floormod(i, 2 * n)
        return tf.where(j >= n, 2 * n - 1 - j, j)

    @tf.function(
        autograph=False,
        input_signature=[
            tf.TensorSpec([None, None, cp], tf.float32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float32),
        ],
    )
    def step_fn(x: Any, sy: Any, sx: Any, lr_t: Any) -> tuple[Any, Any, Any]:
        hh, ww = tf.shape(x)[0], tf.shape(x)[1]
        ny = (hh + sy + th - 1) // th
        nx = (ww + sx + tw - 1) // tw
        with tf.GradientTape() as tape:
            tape.watch(x)
            canvas = tf.gather(x, reflect(ny * th, sy, hh), axis=0)
            canvas = tf.gather(canvas, reflect(nx * tw, sx, ww), axis=1)
            tiles = tf.reshape(canvas, [ny, th, nx, tw, cp])
            tiles = tf.reshape(tf.transpose(tiles, [0, 2, 1, 3, 4]), [ny * nx, th, tw, cp])
            outs, logits = call_taps(taps, to_model(tiles), paths, uses_class)
            value = tf.reduce_mean(loss(weights, outs, logits))
        grad = tape.gradient(value, x)
        ok = tf.math.is_finite(value) & tf.reduce_all(tf.math.is_finite(grad))
        grad = grad / (tf.reduce_mean(tf.abs(grad)) + 1e-8)
        new = tf.clip_by_value(x + lr_t * grad, 0.0, 1.0)
        return value, tf.where(ok, new, x), ok

    def resized(x: Any, shape: tuple[int, int]) -> Any:
        return tf.clip_by_value(tf.image.resize(x, shape, method="bicubic", antialias=True), 0.0, 1.0)

    def generate() -> Iterator[Step]:
        rng = np.random.default_rng(int(seed))
        timer = FrameTimer(every, fps)
        original = tf.constant(photo)
        yield Step(0, total, float("nan"), photo[None].copy(), info={"octave": 0, "objective": text})
        shrunk = resized(original, shapes[0])
        x = shrunk
        curve: list[float] = []
        step = 0
        for octave, shape in enumerate(shapes):
            if octave > 0:
                x = resized(x, shape)
                detail = resized(original, shape) - resized(shrunk, shape)
                x = tf.clip_by_value(x + detail, 0.0, 1.0)
                shrunk = resized(original, shape)
            for _ in range(per_octave):
                check_token(token)
                if control is not None:
                    control.wait(token)
                lr_t = float(lr) * (control.lr_scale if control is not None else 1.0)
                sy, sx = int(rng.integers(0, th)), int(rng.integers(0, tw))
                value, x, ok = step_fn(x, tf.constant(sy), tf.constant(sx), tf.constant(lr_t, tf.float32))
                step += 1
                if not bool(ok):
                    raise OptimizationDiverged(
                        f"dream diverged at step {step}: the objective or its gradient became NaN/Inf; "
                        "lower the step size or check the model for invalid weights"
                    )
                curve.append(float(value))
                if step < total and timer.due(step, total):
                    frame = x if tuple(shape) == photo.shape[:2] else resized(x, photo.shape[:2])
                    images = np.ascontiguousarray(frame.numpy()[None], np.float32)
                    yield Step(
                        step, total, curve[-1], images, (curve[-1],), {"octave": octave, "shape": shape}
                    )
        info = {
            "octave": len(shapes) - 1,
            "curve": tuple(curve),
            "objective": text,
            "settings": {
                "layers": text,
                "octaves": len(shapes),
                "octave_scale": float(octave_scale),
                "steps": per_octave,
                "lr": float(lr),
                "seed": int(seed),
                "size": list(photo.shape[:2]),
            },
        }
        images = np.ascontiguousarray(x.numpy()[None], np.float32)
        yield Step(total, total, curve[-1], images, (curve[-1],), info)

    return generate()
