"""Overlays on a photo: a heatmap blended over it, and rectangle outlines such as receptive fields."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.errors import EngineError
from engine.render.colors import COLORMAPS, _as_rgb_uint8, _finite, _rgb, apply_colormap


def overlay(
    photo: np.ndarray,
    heat: np.ndarray,
    cmap: str = "turbo",
    alpha: float = 0.5,
    signed: bool = False,
    dim: float = 0.6,
    vmax: float | None = None,
) -> np.ndarray:
    """Lay a heatmap over the photo it was computed on -> uint8 RGB (H, W, 3).

    photo: float (H, W, C) in [0, 1] or uint8, C in 1/3/4 (or (H, W)); heat: (H, W) on
    the same grid (else EngineError). Unsigned: negative heat is dropped (as in
    Grad-CAM), the rest divided by ``vmax`` (default: its own max), coloured with cmap
    and alpha-blended: ``(1 - alpha) * photo + alpha * colour``. Signed: heat / max|heat|
    on the blue-grey-red ``"signed"`` map, mixed into the photo dimmed by ``dim`` with
    a weight ``alpha * |heat| / max|heat|``, so zero leaves the dimmed photo and strong
    evidence for / against shows red / blue.
    """
    p = np.asarray(photo)
    if np.issubdtype(p.dtype, np.floating):  # keep float precision; only the shape is normalized
        p2 = p[:, :, None] if p.ndim == 2 else p
        if p2.ndim != 3 or p2.shape[2] not in (1, 3, 4):
            raise EngineError(f"photo must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {p.shape}")
        base = np.clip(_finite(p2[:, :, :3]), 0.0, 1.0)
        if base.shape[2] == 1:
            base = np.repeat(base, 3, axis=2)
    else:
        base = _as_rgb_uint8(p, "photo").astype(np.float32) / 255.0
    h = np.asarray(heat)
    if h.ndim == 3 and h.shape[2] == 1:
        h = h[:, :, 0]
    if h.ndim != 2:
        raise EngineError(f"heatmap must be (H, W), got shape {h.shape}")
    if h.shape != base.shape[:2]:
        raise EngineError(
            f"heatmap is {h.shape[0]}x{h.shape[1]} but the photo is {base.shape[0]}x{base.shape[1]}; "
            "map it onto the photo's grid first"
        )
    if not 0.0 <= float(alpha) <= 1.0 or not 0.0 <= float(dim) <= 1.0:
        raise EngineError(f"alpha and dim must lie in [0, 1], got alpha={alpha}, dim={dim}")
    if cmap not in COLORMAPS:
        raise EngineError(f"unknown colormap {cmap!r}; use one of {', '.join(COLORMAPS)}")
    h = _finite(h)
    if signed:
        peak = float(vmax) if vmax is not None else float(np.abs(h).max())
        rel = np.clip(h / peak, -1.0, 1.0) if peak > 0 else np.zeros_like(h)
        colour = apply_colormap(0.5 + 0.5 * rel, "signed").astype(np.float32) / 255.0
        weight = (float(alpha) * np.abs(rel))[:, :, None]
        out = (1.0 - weight) * (base * float(dim)) + weight * colour
    else:
        pos = np.maximum(h, 0.0)
        peak = float(vmax) if vmax is not None else float(pos.max())
        rel = np.clip(pos / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(pos)
        colour = apply_colormap(rel, cmap).astype(np.float32) / 255.0
        out = (1.0 - float(alpha)) * base + float(alpha) * colour
    return np.ascontiguousarray((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def draw_box(
    rgb: np.ndarray,
    box: tuple[float, float, float, float],
    color: Sequence[int] | int = (255, 0, 0),
    width: int = 2,
) -> np.ndarray:
    """A copy of rgb with a rectangle outline, e.g. a receptive field, clipped to the image.

    box is (top, left, bottom, right) in pixels, bottom/right exclusive (rounded to
    ints); the outline is ``width`` pixels drawn inside the box. Parts outside the
    image are not drawn, so a receptive field that extends past the border shows only
    its visible edges.
    """
    img = _as_rgb_uint8(rgb, "image").copy()
    c = np.array(_rgb(color, "box colour"), dtype=np.uint8)
    width = int(width)
    if width < 1:
        raise EngineError(f"box width must be at least 1, got {width}")
    if len(box) != 4:
        raise EngineError(f"box must be (top, left, bottom, right), got {box!r}")
    t, left, b, r = (int(round(float(v))) for v in box)
    if b <= t or r <= left:
        raise EngineError(f"box {box!r} is empty: bottom must exceed top and right exceed left")
    H, W = img.shape[:2]

    def fill(y0: int, y1: int, x0: int, x1: int) -> None:
        y0, y1 = max(y0, 0), min(y1, H)
        x0, x1 = max(x0, 0), min(x1, W)
        if y0 < y1 and x0 < x1:
            img[y0:y1, x0:x1] = c

    wy, wx = min(width, b - t), min(width, r - left)
    fill(t, t + wy, left, r)  # top edge
    fill(b - wy, b, left, r)  # bottom edge
    fill(t, b, left, left + wx)  # left edge
    fill(t, b, r - wx, r)  # right edge
    return img
