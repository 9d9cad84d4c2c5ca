"""Saliency: which input pixels the class score (or a layer) is most sensitive to.

All maps are computed on the model's input grid and mapped onto the photo's own
grid by area weighting (each photo pixel the overlap-weighted mean of the model
pixels it covers). Gradients are taken in [0, 1] image units, whatever the model's
input scaling, so maps of different models compare.

- gradient: |dS/dx|, the maximum over colour channels (Simonyan et al. 2014). >= 0.
- smoothgrad: the gradient averaged over `samples` copies of the image with Gaussian
  noise of std `noise` (a fraction of the input range), then |.| max over channels
  (Smilkov et al. 2017). >= 0.
- integrated: Integrated Gradients from a black image, a `steps`-point midpoint
  Riemann sum, summed over channels (Sundararajan et al. 2017). Signed; its total is
  close to S(x) - S(black).
- grad_x_input: gradient times (image - black), summed over channels. Signed.

S is the target's pre-softmax logit (engine.attribution.target; a Target with
score="probability" takes its probability), or with ``layer`` the mean of that layer's output
(of one channel when ``target`` is an int): "what input pixels drive this layer".
Noisy copies and path points go through the model ``batch_size`` at a time, so memory
stays bounded whatever samples/steps are asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from engine.attribution.cam import ProgressFn, drain
from engine.attribution.functions import compiled, input_spec
from engine.attribution.projection import to_photo_grid
from engine.attribution.target import Score, Target, TargetSpec
from engine.errors import EngineError
from engine.images import ImageSource, load_image, to_model_input
from engine.models import ModelHandle
from engine.scaling import to_model_range

SALIENCY_METHODS: tuple[str, ...] = ("gradient", "smoothgrad", "integrated", "grad_x_input")
_ALIASES = {
    "vanilla": "gradient",
    "ig": "integrated",
    "integrated_gradients": "integrated",
    "gradxinput": "grad_x_input",
    "grad*input": "grad_x_input",
    "gradient_x_input": "grad_x_input",
}


def check_saliency_method(method: str) -> str:
    key = str(method).lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in SALIENCY_METHODS:
        raise EngineError(f"unknown saliency method {method!r}; choose from: {', '.join(SALIENCY_METHODS)}")
    return key


def _class_grad_fn(h: ModelHandle, score: Score = "logit") -> Any:
    """f(x (B,H,W,C), target (B,)) -> (dS/dx, S, target), S the target's score (logit or probability)."""
    import keras
    import tensorflow as tf

    def build() -> Any:
        model = keras.Model(h.flat_input, h.logits, name="convscope_logits")
        goal = Target.of(h, score=score)

        @tf.function(input_signature=[input_spec(h), tf.TensorSpec((None,), tf.int32)])
        def fn(x: Any, target: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = model(x, training=False)
                s, t = goal.graph(logits, target)
            return tape.gradient(s, x, unconnected_gradients=tf.UnconnectedGradients.ZERO), s, t

        return fn

    return compiled(h, ("input_grad", score), build)


def _layer_grad_fn(h: ModelHandle, path: str) -> Any:
    """f(x, channel (B,)) -> (dS/dx, S, channel): S the mean of the layer output (channel -1: all)."""
    import tensorflow as tf

    def build() -> Any:
        model = h.submodel([path])

        @tf.function(input_signature=[input_spec(h), tf.TensorSpec((None,), tf.int32)])
        def fn(x: Any, channel: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = model(x, training=False)
                if isinstance(out, list | tuple):
                    out = out[0]
                flat = tf.reshape(out, (tf.shape(out)[0], -1, tf.shape(out)[-1]))
                every = tf.reduce_mean(flat, axis=[1, 2])
                one = tf.reduce_mean(tf.gather(flat, tf.maximum(channel, 0), axis=2, batch_dims=1), axis=1)
                score = tf.where(channel < 0, every, one)
            return tape.gradient(score, x, unconnected_gradients=tf.UnconnectedGradients.ZERO), score, channel

        return fn

    return compiled(h, ("layer_grad", path), build)


def _scale(h: ModelHandle) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): model input = a * image01 + b per model channel (a >= 0 here: no scaling flips sign)."""
    c = h.input_shape[2]
    lo = to_model_range(np.zeros((c,), np.float32), h.scaling)
    hi = to_model_range(np.ones((c,), np.float32), h.scaling)
    return (hi - lo).astype(np.float32), lo.astype(np.float32)


def iter_saliency(
    h: ModelHandle,
    img: ImageSource,
    target: TargetSpec = None,
    method: str = "gradient",
    layer: str | None = None,
    *,
    samples: int = 25,
    noise: float = 0.15,
    steps: int = 32,
    batch_size: int = 16,
    seed: int = 0,
) -> Iterator[tuple[int, int]]:
    """saliency() as a generator: yields (done, total) per batch and returns the (H, W) map.

    method: gradient | smoothgrad | integrated | grad_x_input. target: None (top-1), a class
    index or name, "positive"/"negative" for a single sigmoid unit, a Target; with `layer`, a channel
    index of that layer (None: the whole layer). samples/noise: SmoothGrad; steps: Integrated
    Gradients; batch_size bounds memory.
    """
    method = check_saliency_method(method)
    photo = (
        load_image(img)
        if not (isinstance(img, np.ndarray) and img.dtype == np.float32 and img.ndim == 3)
        else img
    )
    x = to_model_input(photo, h)[0]
    scale, black = _scale(h)
    first = None
    if layer is not None:
        path = h.resolve(layer)
        n_channels = int(h.symbolic(path).shape[-1])
        if target is None:
            index = -1
        elif (
            isinstance(target, int | np.integer)
            and not isinstance(target, bool)
            and 0 <= int(target) < n_channels
        ):
            index = int(target)
        else:
            raise EngineError(f"channel {target!r} out of range for layer {path} ({n_channels} channels)")
        fn = _layer_grad_fn(h, path)
    else:
        goal = Target.of(h, target)
        index = goal.graph_index
        fn = _class_grad_fn(h, goal.score)
        if index < 0:  # fix top-1 once so every noisy copy / path point explains the same class
            first = fn(x[None], np.array([index], np.int32))
            index = int(np.asarray(first[2])[0])
    batch_size = max(1, int(batch_size))
    total = {"smoothgrad": int(samples), "integrated": int(steps)}.get(method, 1)
    if total < 1:
        raise EngineError(f"{method} needs at least one sample/step")
    rng = np.random.default_rng(seed)
    alphas = (np.arange(total, dtype=np.float32) + 0.5) / total
    grad_sum = np.zeros_like(x, dtype=np.float64)
    yield 0, total
    for start in range(0, total, batch_size):
        n = min(batch_size, total - start)
        if method == "smoothgrad":
            batch = x[None] + rng.standard_normal((n, *x.shape)).astype(np.float32) * (noise * scale)
        elif method == "integrated":
            a = alphas[start : start + n][:, None, None, None]
            batch = black + a * (x[None] - black)
        else:
            batch = x[None]
        if first is not None and method in ("gradient", "grad_x_input"):
            grads = first[0]
        else:
            grads, _, _ = fn(batch.astype(np.float32), np.full((n,), index, np.int32))
        grad_sum += np.asarray(grads, np.float64).sum(axis=0)
        yield start + n, total
    grad = grad_sum / total
    if method in ("gradient", "smoothgrad"):
        pixel = np.abs(grad * scale).max(axis=-1)
    else:  # integrated, grad_x_input: attribution relative to the black image
        pixel = (grad * (x - black)).sum(axis=-1)
    return to_photo_grid(pixel.astype(np.float32), photo.shape[:2])


def saliency(
    h: ModelHandle, img: ImageSource, *args: Any, progress: ProgressFn | None = None, **options: Any
) -> np.ndarray:
    """A pixel saliency map (H, W) float32 on the photo's own grid.

    The arguments are iter_saliency's (target, method, layer, samples, noise, steps, batch_size,
    seed: see there); progress(done, total) is called between batches.
    """
    return drain(iter_saliency(h, img, *args, **options), progress)
