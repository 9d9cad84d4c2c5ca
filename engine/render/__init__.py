"""Normalization, colormaps, tiling into grids and overlays: everything the screen shows.

The GUI and the CLI export both call these functions, so an exported figure is the
same pixels the view shows. Pure NumPy + Pillow (no TensorFlow, no matplotlib).
Every image comes back as a C-contiguous uint8 RGB array (H, W, 3).

Conventions:

- Values in [0, 1] index a 256-entry lookup table the way matplotlib does
  (``index = floor(v * 256)`` clipped to 255), so 0.5 lands on index 128, the
  grey zero of the ``"signed"`` map.
- A grid comes with a :class:`GridGeometry` that lists each cell's rectangle, so a
  click on the tiled image maps back to a map, unit or filter index with
  :func:`cell_at` (and :func:`cell_detail` for the input channel of a filter cell).

The modules: ``colors`` (normalize, colormaps, uint8), ``geometry`` (GridGeometry, cell
lookups), ``layouts`` (layouts that fit a pane), ``tiling`` (text and tile), ``grids``
(feature and filter grids), ``overlays`` (heatmap overlays, boxes). This package re-exports
their public names, so ``from engine import render; render.tile(...)`` is the way to call them.
"""

from __future__ import annotations

from engine.render.colors import (
    COLORMAPS,
    NORMALIZATIONS,
    SIGNED_NEGATIVE,
    SIGNED_POSITIVE,
    SIGNED_ZERO,
    apply_colormap,
    colormap,
    normalize,
    to_uint8,
)
from engine.render.geometry import (
    GridGeometry,
    Rect,
    _fit_factor,
    cell_at,
    cell_detail,
    grid_geometry,
    grid_size,
)
from engine.render.grids import RenderedGrid, feature_grid, filter_grid
from engine.render.layouts import (
    MIN_FILTER_CELL_PX,
    MIN_MAP_CELL_PX,
    MIN_MATRIX_CELL_PX,
    SECTION_CHOICES,
    SECTION_GAP,
    best_cols,
    feature_layout,
    filter_layout,
)
from engine.render.overlays import draw_box, overlay
from engine.render.tiling import text_height, tile, tile_with_geometry

__all__ = [
    "COLORMAPS",
    "MIN_FILTER_CELL_PX",
    "MIN_MAP_CELL_PX",
    "MIN_MATRIX_CELL_PX",
    "NORMALIZATIONS",
    "SECTION_CHOICES",
    "SECTION_GAP",
    "SIGNED_NEGATIVE",
    "SIGNED_POSITIVE",
    "SIGNED_ZERO",
    "GridGeometry",
    "Rect",
    "RenderedGrid",
    "_fit_factor",
    "apply_colormap",
    "best_cols",
    "cell_at",
    "cell_detail",
    "colormap",
    "draw_box",
    "feature_grid",
    "feature_layout",
    "filter_grid",
    "filter_layout",
    "grid_geometry",
    "grid_size",
    "normalize",
    "overlay",
    "text_height",
    "tile",
    "tile_with_geometry",
    "to_uint8",
]
