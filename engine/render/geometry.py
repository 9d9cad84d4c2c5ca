"""Grid geometry: where each cell of a tiled image lies, its closed-form size, and click -> cell lookups.

A grid comes with a :class:`GridGeometry` that lists each cell's rectangle, so a click on
the tiled image maps back to a map, unit or filter index with :func:`cell_at` (and
:func:`cell_detail` for the input channel of a filter cell).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.errors import EngineError

Rect = tuple[int, int, int, int]  # (top, left, bottom, right), bottom/right exclusive


@dataclass(frozen=True)
class GridGeometry:
    """Where each cell of a tiled image lies, so a click can be mapped back to an index.

    ``rects[k]`` is the clickable cell (title band included) as (top, left, bottom, right)
    in pixels of the tiled image, bottom/right exclusive; ``image_rects[k]`` the part
    that holds the picture. ``indices[k]`` is the map, unit or filter index that cell
    shows; ``channels[k]`` a second index (the input channel of a filter cell, the
    colour channel 0/1/2 of a first-layer filter section) or -1.
    """

    height: int
    width: int
    rects: tuple[Rect, ...]
    image_rects: tuple[Rect, ...]
    indices: tuple[int, ...]
    channels: tuple[int, ...] = ()
    rows: int = 0
    cols: int = 0
    _arr: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not self.channels:
            object.__setattr__(self, "channels", (-1,) * len(self.rects))
        arr = np.array(self.rects, dtype=np.int64).reshape(-1, 4)
        object.__setattr__(self, "_arr", arr)

    def __len__(self) -> int:
        return len(self.rects)

    def position_at(self, y: float, x: float) -> int | None:
        """Position in ``rects`` of the cell under pixel (y, x), or None (margin, outside)."""
        if len(self.rects) == 0:
            return None
        yi, xi = math.floor(y), math.floor(x)
        a = self._arr
        hit = (a[:, 0] <= yi) & (yi < a[:, 2]) & (a[:, 1] <= xi) & (xi < a[:, 3])
        found = np.flatnonzero(hit)
        return int(found[0]) if found.size else None


@dataclass
class _Cells:
    """Cells collected one at a time, then frozen into a :class:`GridGeometry`."""

    rects: list[Rect] = field(default_factory=list)
    image_rects: list[Rect] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)

    def add(self, index: int, channel: int, rect: Rect, image_rect: Rect | None = None) -> None:
        """One cell: its clickable rect and picture rect (the same when None), index and channel."""
        self.rects.append(rect)
        self.image_rects.append(rect if image_rect is None else image_rect)
        self.indices.append(index)
        self.channels.append(channel)

    def geometry(self, height: int, width: int, rows: int, cols: int) -> GridGeometry:
        return GridGeometry(
            height,
            width,
            tuple(self.rects),
            tuple(self.image_rects),
            tuple(self.indices),
            tuple(self.channels),
            rows,
            cols,
        )


def _near_square_cols(n: int, cell_h: int = 1, cell_w: int = 1) -> int:
    """Columns that make a grid of n cells of size (cell_h, cell_w) roughly square."""
    if n <= 0:
        return 1
    cols = math.ceil(math.sqrt(n * max(cell_h, 1) / max(cell_w, 1)))
    return int(min(max(cols, 1), n))


def grid_geometry(
    n: int,
    cols: int | None,
    cell_hw: tuple[int, int],
    margin: int = 2,
    title_height: int = 0,
    scale: int = 1,
    top: int = 0,
) -> GridGeometry:
    """Layout of n equal cells in rows: cell k at row k // cols, column k % cols.

    cell_hw is the unscaled picture size; each cell is ``scale`` times that plus a title
    band of ``title_height`` above it; ``margin`` pixels surround and separate cells.
    ``top`` shifts everything down (for a caption band). This is the layout
    :func:`tile` draws, so ``cell_at(grid_geometry(...), y, x)`` inverts a click.
    """
    n, margin, title_height, scale, top = int(n), int(margin), int(title_height), int(scale), int(top)
    ch, cw = (int(v) for v in cell_hw)
    if n < 0 or margin < 0 or title_height < 0 or scale < 1 or ch < 1 or cw < 1 or top < 0:
        raise EngineError(
            f"bad grid layout: n={n}, cell={ch}x{cw}, margin={margin}, title_height={title_height}, scale={scale}"
        )
    if cols is None:
        cols = _near_square_cols(n, ch * scale + title_height, cw * scale)
    cols = int(cols)
    if cols < 1:
        raise EngineError(f"cols must be at least 1, got {cols}")
    cols = min(cols, max(n, 1))
    rows = math.ceil(n / cols) if n else 0
    sh, sw = ch * scale, cw * scale
    step_y, step_x = title_height + sh + margin, sw + margin
    rects: list[Rect] = []
    image_rects: list[Rect] = []
    for k in range(n):
        r, c = divmod(k, cols)
        y0 = top + margin + r * step_y
        x0 = margin + c * step_x
        rects.append((y0, x0, y0 + title_height + sh, x0 + sw))
        image_rects.append((y0 + title_height, x0, y0 + title_height + sh, x0 + sw))
    height = top + margin + rows * step_y if n else top + 2 * margin + 1
    width = margin + cols * step_x if n else 2 * margin + 1
    return GridGeometry(
        height=height,
        width=width,
        rects=tuple(rects),
        image_rects=tuple(image_rects),
        indices=tuple(range(n)),
        rows=rows,
        cols=cols,
    )


def cell_at(geometry: GridGeometry, y: float, x: float) -> int | None:
    """Index (map, unit or filter) of the cell under pixel (y, x) of a tiled image, or None."""
    pos = geometry.position_at(y, x)
    return None if pos is None else geometry.indices[pos]


def cell_detail(geometry: GridGeometry, y: float, x: float) -> tuple[int, int] | None:
    """(index, channel) of the cell under pixel (y, x), or None; channel is -1 where it has none."""
    pos = geometry.position_at(y, x)
    return None if pos is None else (geometry.indices[pos], geometry.channels[pos])


def grid_size(
    n: int,
    cols: int,
    cell_hw: tuple[int, int],
    margin: int = 2,
    title_height: int = 0,
    scale: int = 1,
    top: int = 0,
) -> tuple[int, int]:
    """(height, width) of ``grid_geometry(n, cols, ...)`` in closed form (no rectangles built)."""
    if n <= 0:
        return top + 2 * margin + 1, 2 * margin + 1
    cols = min(max(int(cols), 1), n)
    rows = math.ceil(n / cols)
    ch, cw = cell_hw
    return top + margin + rows * (title_height + ch * scale + margin), margin + cols * (cw * scale + margin)


def _fit_factor(size_hw: tuple[int, int], fit: Sequence[int]) -> float:
    """How much a figure of size_hw is magnified (or shrunk) to fit a pane of fit = (h, w)."""
    return min(fit[0] / max(size_hw[0], 1), fit[1] / max(size_hw[1], 1))
