"""Figures of maximization and dream runs, shared by the GUI views and the CLI (no TensorFlow).

grid() lays a batch out with engine.render.tile (one image is shown as it is), so what the
view shows and what export writes are the same pixels; tile_at() maps a click on that grid
back to an image index through engine.render.grid_geometry. Files are written by
engine.export (write_image / write_gif / write_npy: atomic, with a JSON sidecar).
"""

from __future__ import annotations

import numpy as np

MARGIN = 2


def grid(images: np.ndarray, cols: int | None = None, zoom: int = 1) -> np.ndarray:
    """A batch (B, H, W, C) in [0, 1] (or uint8) as one uint8 RGB image: the image itself for B == 1."""
    from engine import render

    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.shape[0] == 1:
        img = render.to_uint8(a[0])
        return np.ascontiguousarray(img.repeat(zoom, axis=0).repeat(zoom, axis=1)) if zoom > 1 else img
    return render.tile(a, cols=cols, margin=MARGIN, scale=max(1, int(zoom)))


def tile_at(
    row: float, col: float, count: int, tile: tuple[int, int], cols: int | None = None, zoom: int = 1
) -> int | None:
    """Index of the image under pixel (row, col) of a grid() image of `count` images of size `tile`."""
    from engine import render

    if count <= 1:
        return 0 if 0 <= row < tile[0] * zoom and 0 <= col < tile[1] * zoom else None
    geometry = render.grid_geometry(count, cols, (int(tile[0]), int(tile[1])), MARGIN, 0, max(1, int(zoom)))
    return render.cell_at(geometry, row, col)
