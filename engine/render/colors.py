"""From values to colours: display normalization, colormap lookup tables and uint8 RGB conversion.

Values in [0, 1] index a 256-entry lookup table the way matplotlib does
(``index = floor(v * 256)`` clipped to 255), so 0.5 lands on index 128, the grey zero of
the ``"signed"`` map.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from engine.errors import EngineError

NORMALIZATIONS: tuple[str, ...] = ("global", "per_map", "standardize", "raw")
COLORMAPS: tuple[str, ...] = ("gray", "viridis", "magma", "turbo", "signed")

# endpoints of the diverging "signed" map: negative, zero (index 128), positive
SIGNED_NEGATIVE = (0, 0, 255)
SIGNED_ZERO = (128, 128, 128)
SIGNED_POSITIVE = (255, 0, 0)


def _finite(a: np.ndarray) -> np.ndarray:
    """float32 copy of a with NaN and +-Inf replaced by 0."""
    out = np.array(a, dtype=np.float32, copy=True)
    out[~np.isfinite(out)] = 0.0
    return out


def _rgb(color: Sequence[int] | int, what: str = "colour") -> tuple[int, int, int]:
    """An (r, g, b) tuple of ints in 0..255 from a grey level or a 3-sequence."""
    if isinstance(color, (int, np.integer)):
        c = (int(color),) * 3
    else:
        c = tuple(int(v) for v in color)
    if len(c) != 3 or not all(0 <= v <= 255 for v in c):
        raise EngineError(f"{what} must be a grey level 0..255 or an (r, g, b) triple, got {color!r}")
    return c  # type: ignore[return-value]


def _as_rgb_uint8(img: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 (H, W, 3) from uint8/float (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha dropped)."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise EngineError(f"{what} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype != np.uint8:
        if a.dtype == np.bool_ or not (
            np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
        ):
            raise EngineError(f"{what} must be uint8 or float in [0, 1], got dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.integer):
            a = np.clip(a, 0, 255).astype(np.uint8)
        else:
            a = (np.clip(_finite(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def normalize(maps: np.ndarray, mode: str, axis_maps: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Scale a stack of maps to [0, 1] for display; returns (values float32, per-map factors (c,)).

    maps has one map per index along ``axis_maps`` (channels last for a conv layer's
    (h, w, c) output). NaN and Inf count as 0. Modes:

    - ``"global"``: min-max over the whole stack, so maps compare directly. Factors are 1.
    - ``"per_map"``: each map divided by its own max |value|, so weak maps stay visible.
      If the whole stack is non-negative (e.g. after ReLU), 0 maps to 0; if any value in
      the stack is negative, every map is shown symmetric about 0.5 (= zero, the grey of
      the ``"signed"`` colormap), so zero looks the same in every tile. The factor is
      ``stack max |value| / map max |value|`` (>= 1): how much the map was amplified,
      for a "x12" label.
    - ``"standardize"``: ``(x - mean) / std * 64 + 128`` per map, then / 255 and clipped
      (the Keras blog / Deep Learning with Python recipe). Factors are 1.
    - ``"raw"``: the values as they are, clipped to [0, 1]. Factors are 1.

    An all-zero or constant map never divides by zero: where the denominator would be
    0 the map shows 0 (the zero level 0.5 for an all-zero map of a signed stack in
    ``per_map``) and its factor is 1.
    """
    if mode not in NORMALIZATIONS:
        raise EngineError(f"unknown normalization {mode!r}; use one of {', '.join(NORMALIZATIONS)}")
    arr = np.asarray(maps)
    if arr.ndim == 0:
        raise EngineError("normalize needs an array of maps, got a scalar")
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise EngineError(f"maps must be numeric, got dtype {arr.dtype}")
    try:
        axis = int(axis_maps) % arr.ndim
    except ZeroDivisionError:  # pragma: no cover - ndim checked above
        raise EngineError("normalize needs an array of maps") from None
    x = np.moveaxis(_finite(arr), axis, -1)  # (..., c)
    c = x.shape[-1]
    flat = x.reshape(-1, c)  # (pixels, c)
    factors = np.ones(c, dtype=np.float32)

    if flat.shape[0] == 0 or c == 0:
        out = np.zeros_like(x)
    elif mode == "global":
        lo, hi = float(flat.min()), float(flat.max())
        out = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    elif mode == "per_map":
        peak = np.abs(flat).max(axis=0)  # (c,)
        top = float(peak.max())
        zero_map = peak == 0
        safe = np.where(zero_map, 1.0, peak).astype(np.float32)
        if float(flat.min()) < 0:  # signed stack: symmetric, zero at 0.5
            out = 0.5 + 0.5 * (x / safe)
        else:
            out = x / safe
        factors = np.where(zero_map, 1.0, top / safe).astype(np.float32)
    elif mode == "standardize":
        mean = flat.mean(axis=0, dtype=np.float64)
        std = flat.std(axis=0, dtype=np.float64)
        flat_map = std == 0
        safe = np.where(flat_map, 1.0, std)
        out = ((x - mean) / safe * 64.0 + 128.0) / 255.0
        out = np.where(flat_map, 0.0, out)
    else:  # raw
        out = x
    out = np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)
    out = np.ascontiguousarray(np.moveaxis(out, -1, axis), dtype=np.float32)
    return out, factors


# --------------------------------------------------------------------------- colormaps


@lru_cache(maxsize=16)
def _lut(name: str) -> np.ndarray:
    if name == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        lut = np.stack([ramp, ramp, ramp], axis=1)
    elif name == "signed":
        neg, zero, pos = (
            np.array(c, dtype=np.float64) for c in (SIGNED_NEGATIVE, SIGNED_ZERO, SIGNED_POSITIVE)
        )
        i = np.arange(256, dtype=np.float64)[:, None]
        lower = zero + (neg - zero) * ((128 - i) / 128)  # i in 0..128
        upper = zero + (pos - zero) * ((i - 128) / 127)  # i in 128..255
        lut = np.round(np.where(i <= 128, lower, upper)).astype(np.uint8)
    elif name in COLORMAPS:
        from engine.colormap_data import TABLES

        lut = np.frombuffer(bytes.fromhex(TABLES[name]), dtype=np.uint8).reshape(256, 3)
    else:
        raise EngineError(f"unknown colormap {name!r}; use one of {', '.join(COLORMAPS)}")
    lut = np.ascontiguousarray(lut, dtype=np.uint8)
    lut.setflags(write=False)
    return lut


def colormap(name: str) -> np.ndarray:
    """The (256, 3) uint8 lookup table of a colormap in :data:`COLORMAPS`.

    viridis, magma and turbo are the published tables (see engine/colormap_data.py);
    ``"signed"`` runs blue (index 0) - grey (index 128, zero) - red (index 255).
    """
    return _lut(name).copy()


def apply_colormap(values01: np.ndarray, name: str) -> np.ndarray:
    """Colour values in [0, 1] with a colormap -> uint8 (..., 3).

    Values are clipped to [0, 1]; NaN/Inf show as 0 (0.5, i.e. zero, for ``"signed"``,
    where 0.5 means zero). A trailing axis of size 1 (H, W, 1) is dropped first.
    """
    lut = _lut(name)
    v = np.asarray(values01, dtype=np.float32)
    if v.ndim >= 3 and v.shape[-1] == 1:
        v = v[..., 0]
    v = np.where(np.isfinite(v), v, 0.5 if name == "signed" else 0.0)
    idx = np.clip(np.floor(v * 256.0), 0, 255).astype(np.intp)
    return np.ascontiguousarray(lut[idx])


def to_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) from a float image in [0, 1] (H, W), (H, W, 1) or (H, W, 3).

    Values are clipped and rounded; grey is replicated to three channels; uint8 input
    passes through (grey replicated) and a 4th (alpha) channel is dropped.
    """
    return _as_rgb_uint8(img, "image")
