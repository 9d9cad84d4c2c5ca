"""Image parameterizations (what the optimizer changes) and starting images.

Every parameterization holds one variable with the batch on axis 0 and maps it to images in
display range [0, 1] (B, H, W, C); the loop maps those to the model's input range. Choices:

- "pixel": the pixels themselves, kept in range by clipping after each step (squash="clip",
  the default) or by a sigmoid (squash="sigmoid").
- "fourier": Lucid's parameterization: the image's 2-D real FFT coefficients, scaled by
  1/frequency so every frequency learns at a similar rate, with decorrelated colour (for RGB
  models: a fixed 3x3 colour-correlation square root, as in Lucid) and a sigmoid to [0, 1].

Starting images (numpy, seeded, so a run is reproducible): "grey" (flat 0.5), "noise"
(uniform 0.5 +- 0.1), "normal" (0.5 + 0.05 N(0,1)), "structured" (random fluctuations at
several length scales, each an upsampled random grid), "photo" (a given image).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.errors import EngineError

PARAMS = ("pixel", "fourier")
STARTS = ("grey", "noise", "normal", "structured", "photo")
_START_ALIASES = {
    "gray": "grey",
    "flat": "grey",
    "uniform": "noise",
    "random": "noise",
    "lowfreq": "structured",
    "image": "photo",
}

# Lucid's square root of the ImageNet colour correlation matrix, columns normalized to max norm 1
_COLOR_SQRT = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32)
_COLOR_SQRT = _COLOR_SQRT / np.max(np.linalg.norm(_COLOR_SQRT, axis=0))
_EPS = 1e-4


# ----- starting images ---------------------------------------------------------------------------
def _upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(grid[..., c]), mode="F").resize(
                (w, h), Image.Resampling.BICUBIC
            )
        )
        for c in range(grid.shape[-1])
    ]
    return np.stack(chans, axis=-1).astype(np.float32)


def start_image(
    kind: Any,
    shape: tuple[int, int, int],
    seed: int = 0,
    image: Any = None,
    scales: Sequence[float] | None = None,
    amplitude: float = 0.1,
) -> np.ndarray:
    """A float32 (H, W, C) start in [0, 1]: kind is a name from STARTS or an image array.

    scales (structured start): length scales in pixels of the random fluctuations summed,
    default powers of two from 2 up to a quarter of the image.
    """
    h, w, c = (int(s) for s in shape)
    if isinstance(kind, np.ndarray):
        image, kind = kind, "photo"
    name = _START_ALIASES.get(str(kind).lower(), str(kind).lower())
    rng = np.random.default_rng(int(seed))
    if name == "grey":
        return np.full((h, w, c), 0.5, np.float32)
    if name == "noise":
        return (0.5 + rng.uniform(-amplitude, amplitude, (h, w, c))).astype(np.float32)
    if name == "normal":
        return np.clip(0.5 + 0.5 * amplitude * rng.standard_normal((h, w, c)), 0, 1).astype(np.float32)
    if name == "structured":
        if scales is None:
            top = max(2, min(h, w) // 4)
            scales = [2.0**k for k in range(1, 12) if 2.0**k <= top]
        total = np.zeros((h, w, c), np.float32)
        for s in scales:
            if s <= 0:
                raise EngineError(f"structured start: length scale must be positive, got {s}")
            gh, gw = max(2, int(np.ceil(h / s)) + 1), max(2, int(np.ceil(w / s)) + 1)
            total += _upsample(rng.standard_normal((gh, gw, c)).astype(np.float32), (h, w))
        total -= total.mean()
        total *= amplitude / (total.std() + 1e-8)
        return np.clip(0.5 + total, 0, 1).astype(np.float32)
    if name == "photo":
        if image is None:
            raise EngineError("start 'photo' needs an image (select one, or pass image=...)")
        from engine.images import fit_image, load_image

        arr = (
            image
            if isinstance(image, np.ndarray) and image.dtype == np.float32 and image.ndim == 3
            else load_image(image)
        )
        return fit_image(arr, (h, w, c)).astype(np.float32)
    raise EngineError(f"unknown start {kind!r}; choose from: {', '.join(STARTS)}")


# ----- parameterizations -------------------------------------------------------------------------
class Param:
    """Base class: `var` is a tf.Variable with the batch on axis 0; image() maps it to [0, 1]."""

    name = "param"
    clip_after_step = False

    def __init__(self, shape: tuple[int, int, int, int]) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.var: Any = None

    def image(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x01: Any) -> Any:  # pragma: no cover - abstract
        """The variable value whose image() is x01 (a tf tensor (B, H, W, C) in [0, 1])."""
        raise NotImplementedError

    def assign_image(self, x01: Any) -> None:
        self.var.assign(self.encode(x01))

    def project(self) -> None:
        """Keep the variable valid after an update (clip mode)."""


class PixelParam(Param):
    """Raw pixels: clipped to [0, 1] after each step, or squashed through a sigmoid."""

    name = "pixel"

    def __init__(self, shape: tuple[int, int, int, int], start: np.ndarray, squash: str = "clip") -> None:
        import tensorflow as tf

        super().__init__(shape)
        if squash not in ("clip", "sigmoid"):
            raise EngineError(f"unknown squash {squash!r}; choose clip or sigmoid")
        self.squash = squash
        self.clip_after_step = squash == "clip"
        self.var = tf.Variable(self.encode(tf.constant(start, tf.float32)), name="pixels")

    def image(self) -> Any:
        import tensorflow as tf

        return tf.sigmoid(self.var) if self.squash == "sigmoid" else self.var

    def encode(self, x01: Any) -> Any:
        import tensorflow as tf

        if self.squash == "sigmoid":
            x = tf.clip_by_value(x01, _EPS, 1 - _EPS)
            return tf.math.log(x) - tf.math.log1p(-x)
        return tf.clip_by_value(x01, 0.0, 1.0)

    def project(self) -> None:
        import tensorflow as tf

        if self.clip_after_step:
            self.var.assign(tf.clip_by_value(self.var, 0.0, 1.0))


def _rfft_freqs(h: int, w: int) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


class FourierParam(Param):
    """Lucid's Fourier parameterization with 1/f spectrum scaling and decorrelated colour."""

    name = "fourier"

    def __init__(
        self,
        shape: tuple[int, int, int, int],
        start: np.ndarray,
        squash: str = "sigmoid",
        decorrelate: bool = True,
        decay_power: float = 1.0,
    ) -> None:
        import tensorflow as tf

        super().__init__(shape)
        b, h, w, c = self.shape
        if squash not in ("clip", "sigmoid"):
            raise EngineError(f"unknown squash {squash!r}; choose clip or sigmoid")
        self.squash = squash
        self.clip_after_step = False
        self.decorrelate = bool(decorrelate) and c == 3
        freqs = _rfft_freqs(h, w)
        scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power
        scale *= np.sqrt(w * h)
        self.scale = tf.constant(scale.astype(np.float32))  # (fh, fw)
        self.color = tf.constant(_COLOR_SQRT if self.decorrelate else np.eye(c, dtype=np.float32))
        self.color_inv = tf.constant(np.linalg.inv(self.color.numpy()).astype(np.float32))
        self.var = tf.Variable(self.encode(tf.constant(start, tf.float32)), name="spectrum")

    def _spatial(self) -> Any:
        import tensorflow as tf

        _, h, w, _ = self.shape
        spec = tf.complex(self.var[:, 0] * self.scale, self.var[:, 1] * self.scale)  # (B, C, fh, fw)
        img = tf.signal.irfft2d(spec, fft_length=[h, w])  # (B, C, H, W)
        return tf.transpose(img, [0, 2, 3, 1]) / 4.0

    def image(self) -> Any:
        import tensorflow as tf

        t = tf.einsum("bhwc,dc->bhwd", self._spatial(), self.color)
        if self.squash == "sigmoid":
            return tf.sigmoid(t)
        return tf.clip_by_value(t + 0.5, 0.0, 1.0)

    def encode(self, x01: Any) -> Any:
        import tensorflow as tf

        _, h, w, _ = self.shape
        if self.squash == "sigmoid":
            x = tf.clip_by_value(x01, _EPS, 1 - _EPS)
            t = tf.math.log(x) - tf.math.log1p(-x)
        else:
            t = x01 - 0.5
        t = tf.einsum("bhwd,cd->bhwc", t, self.color_inv) * 4.0
        spec = tf.signal.rfft2d(tf.transpose(t, [0, 3, 1, 2]), fft_length=[h, w])  # (B, C, fh, fw)
        return tf.stack([tf.math.real(spec) / self.scale, tf.math.imag(spec) / self.scale], axis=1)


def make_param(
    kind: str,
    shape: tuple[int, int, int, int],
    start: np.ndarray,
    squash: str | None = None,
    decorrelate: bool | None = None,
) -> Param:
    """A parameterization of a batch of shape (B, H, W, C), every image starting at `start` (H, W, C)."""
    name = str(kind).lower()
    batch = np.broadcast_to(start[None], shape).astype(np.float32)
    if name == "pixel":
        return PixelParam(shape, batch, squash or "clip")
    if name in ("fourier", "fft", "decorrelated"):
        return FourierParam(shape, batch, squash or "sigmoid", True if decorrelate is None else decorrelate)
    raise EngineError(f"unknown parameterization {kind!r}; choose from: {', '.join(PARAMS)}")
