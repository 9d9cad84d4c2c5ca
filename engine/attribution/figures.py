"""Pictures of attribution maps: what the Attribution tab shows and `export cam|saliency` writes.

Thin compositions of engine.render (so the view and the export are the same pixels):

- overlay: style "relu" lays the positive map over the photo through a perceptual colormap
  with opacity `alpha`; style "signed" mixes the map in blue (negative) - grey (zero) - red
  (positive) into the photo dimmed to `dim`, as in the classic Grad-CAM notebook
  (engine.render.overlay).
- compare_overlays: several maps of one photo side by side on one shared colour scale.
- coarse_image: the raw coarse layer map enlarged cell by cell, with a grid between cells.
- panel_at: which side-by-side panel (and which pixel of it) a point of such a row hits.

All return C-contiguous uint8 (H, W, 3). No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine import render
from engine.errors import EngineError

CMAPS: tuple[str, ...] = tuple(c for c in render.COLORMAPS if c != "signed")
STYLES: tuple[str, ...] = ("relu", "signed")
GAP = 4  # px around and between side-by-side panels
DIM = 0.6  # brightness of the photo under a signed map


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise EngineError(f"unknown style {style!r}; choose from: {', '.join(STYLES)}")


def map_scale(maps: Sequence[np.ndarray] | np.ndarray, signed: bool) -> float:
    """The shared colour scale of one or more maps: max |value| (signed) or max positive value; 1 if none."""
    arrays = [maps] if isinstance(maps, np.ndarray) else list(maps)
    top = 0.0
    for m in arrays:
        m = np.asarray(m, np.float64)
        top = max(top, float(np.abs(m).max(initial=0) if signed else np.maximum(m, 0).max(initial=0)))
    return top if top > 0 else 1.0


def overlay(
    photo: np.ndarray,
    heat: np.ndarray,
    style: str = "relu",
    cmap: str = "viridis",
    alpha: float = 0.5,
    dim: float = DIM,
    scale: float | None = None,
) -> np.ndarray:
    """The map over the photo it was computed on; `scale` fixes the value shown at full colour."""
    _check_style(style)
    if cmap == "signed" and style == "relu":
        raise EngineError("the signed colormap is for style 'signed'; choose a colormap such as viridis")
    return render.overlay(photo, heat, cmap=cmap, alpha=alpha, signed=style == "signed", dim=dim, vmax=scale)


def side_by_side(panels: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 images in one row on white, GAP px around and between them (engine.render.tile)."""
    if not panels:
        raise EngineError("nothing to show side by side")
    return render.tile(list(panels), cols=len(panels), margin=GAP)


def panel_at(n: int, panel_hw: tuple[int, int], y: float, x: float) -> tuple[int, float, float] | None:
    """For a point of a side_by_side row of n panels of size panel_hw: (panel, y, x inside it), or None."""
    geo = render.grid_geometry(n, n, panel_hw, margin=GAP)
    pos = geo.position_at(y, x)
    if pos is None:
        return None
    top, left, _, _ = geo.image_rects[pos]
    return pos, y - top, x - left


def compare_overlays(
    photo: np.ndarray,
    heats: Sequence[np.ndarray],
    style: str = "relu",
    cmap: str = "viridis",
    alpha: float = 0.5,
    dim: float = DIM,
) -> np.ndarray:
    """Several maps of one photo side by side on one shared colour scale."""
    scale = map_scale(list(heats), style == "signed")
    return side_by_side([overlay(photo, m, style, cmap, alpha, dim, scale) for m in heats])


def coarse_image(
    cam: np.ndarray,
    cell: int = 8,
    style: str = "relu",
    cmap: str = "viridis",
    grid: bool = True,
    scale: float | None = None,
) -> np.ndarray:
    """The coarse (h, w) map enlarged to `cell` px per cell, with light 1-px lines between cells."""
    _check_style(style)
    m = np.nan_to_num(np.asarray(cam, np.float32))
    signed = style == "signed"
    s = map_scale(m, signed) if scale is None else float(scale)
    if signed:
        colour = render.apply_colormap(0.5 + 0.5 * np.clip(m / s, -1, 1), "signed")
    else:
        colour = render.apply_colormap(np.clip(np.maximum(m, 0) / s, 0, 1), cmap)
    big = np.repeat(np.repeat(colour, cell, axis=0), cell, axis=1)
    if grid and cell >= 3:
        light = (big.astype(np.float32) * 0.6 + 0.4 * 255).astype(np.uint8)
        big[::cell, :] = light[::cell, :]
        big[:, ::cell] = light[:, ::cell]
    return np.ascontiguousarray(big)
