"""Layouts that fit a pane: the columns (and first-layer filter sections) that show cells largest.

fit = (height, width) of the pane a figure is shown in; without fit each figure gets the fixed
near-square layout exports use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from engine.errors import EngineError
from engine.render.geometry import _fit_factor, _near_square_cols, grid_size
from engine.render.tiling import _font, text_height

T = TypeVar("T")

MIN_MAP_CELL_PX = 48  # feature maps smaller than this are upscaled (nearest neighbour)
MIN_FILTER_CELL_PX = 32  # first-layer filters in their own grid
MIN_MATRIX_CELL_PX = 16  # filters x input channels matrix


def _auto_scale(h: int, w: int, min_px: int) -> int:
    return max(1, math.ceil(min_px / max(h, w, 1)))


def _row_splits(n: int, most: int) -> list[int]:
    """Counts 1..most of columns (or blocks) for n cells, less each that gives as many rows as one fewer."""
    return [k for k in range(1, most + 1) if k == 1 or math.ceil(n / k) != math.ceil(n / (k - 1))]


def _largest(choices: Iterable[T], shown: Callable[[T], float], default: T) -> T:
    """The first of choices whose figure is shown largest (a later one must beat it beyond rounding)."""
    best, best_f = default, -1.0
    for choice in choices:
        f = shown(choice)
        if f > best_f * (1 + 1e-9):
            best, best_f = choice, f
    return best


def _dense_scale(cols: int) -> int:
    """Pixels per unit cell of a dense layer's grid with cols columns."""
    return int(min(max(512 // cols, 4), 32))


def best_cols(
    n: int,
    cell_hw: tuple[int, int],
    fit: Sequence[int],
    margin: int = 2,
    title_height: int = 0,
    scale: int = 1,
    top: int = 0,
) -> int:
    """The column count that shows n cells largest in a pane of fit = (height, width) pixels.

    The figure is scaled to fit the pane with its aspect kept, so a cell is shown
    ``cell * min(pane_h / height, pane_w / width)`` pixels; ties go to fewer columns.
    """
    if n <= 1:
        return 1
    return _largest(
        _row_splits(n, n),
        lambda cols: _fit_factor(grid_size(n, cols, cell_hw, margin, title_height, scale, top), fit),
        1,
    )


def _check_fit(fit: Sequence[int] | None) -> tuple[int, int] | None:
    if fit is None:
        return None
    h, w = (int(v) for v in fit)
    if h < 1 or w < 1:
        raise EngineError(f"a pane to fit must be at least 1x1 pixels, got {h}x{w}")
    return h, w


def feature_layout(shape: Sequence[int], fit: Sequence[int] | None, titles: bool = True) -> int:
    """Columns of :func:`feature_grid` for maps of ``shape`` ((h, w, c) or (units,)).

    fit = (height, width) of the pane: the columns that show maps largest there; None:
    the fixed near-square layout exports use.
    """
    pane = _check_fit(fit)
    shape = tuple(int(v) for v in shape)
    while len(shape) > 1 and shape[0] == 1 and len(shape) in (2, 4):
        shape = shape[1:]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) == 1:
        n = shape[0]
        if pane is None:
            return _near_square_cols(n)
        return _largest(
            range(1, max(n, 1) + 1),
            lambda cols: (
                _fit_factor(grid_size(n, cols, (1, 1), 1, 0, _dense_scale(cols)), pane) * _dense_scale(cols)
            ),
            1,
        )
    h, w, c = shape[-3:]
    scale = _auto_scale(h, w, MIN_MAP_CELL_PX)
    th = text_height() if titles else 0
    if pane is None:
        return _near_square_cols(c, h * scale + th, w * scale)
    return best_cols(c, (h, w), pane, 2, th, scale)


SECTION_GAP = 8  # pixels between side-by-side RGB / R / G / B sections of a first-layer filter figure
SECTION_CHOICES = (1, 2, 4)  # sections per row: stacked, 2 x 2, side by side


def _arranged_size(
    section_hw: tuple[int, int], n_sections: int, per_row: int, caption_band: int
) -> tuple[int, int]:
    rows = math.ceil(n_sections / per_row)
    sh, sw = section_hw
    return caption_band + rows * sh, per_row * sw + (per_row - 1) * SECTION_GAP


def filter_layout(
    shape: Sequence[int], fit: Sequence[int] | None, max_out: int = 256, max_in: int = 32
) -> dict[str, int]:
    """Layout of :func:`filter_grid` for weights of shape (kh, kw, cin, cout): {"cols", "sections_per_row"}.

    fit = (height, width) of the pane: first-layer RGB / R / G / B sections side by side
    (4 or 2 x 2) in a wide pane, stacked (1 or 2 x 2) in a tall one, with the arrangement
    and columns that show the filters largest; None: the fixed layout exports use
    (near-square grids, sections stacked). For the filters x input channels matrix of
    deeper layers, "sections_per_row" is the number of blocks of filter rows side by side
    (1 without fit) and "cols" the input channels shown.
    """
    pane = _check_fit(fit)
    kh, kw, cin, cout = (int(v) for v in shape)
    n = min(cout, int(max_out))
    if cin not in (1, 3):
        n_in = min(cin, int(max_in))
        blocks = _matrix_blocks(kh, kw, n_in, n, n < cout or n_in < cin, pane)
        return {"cols": n_in, "sections_per_row": blocks}
    scale = _auto_scale(kh, kw, MIN_FILTER_CELL_PX)
    th, margin = text_height(), 2
    band = th + margin if n < cout else 0  # the "showing n of m filters" caption
    if cin == 1:
        if pane is None:
            return {"cols": _near_square_cols(n, kh * scale + th, kw * scale), "sections_per_row": 1}
        return {"cols": best_cols(n, (kh, kw), pane, margin, th, scale, band), "sections_per_row": 1}
    if pane is None:
        return {"cols": _near_square_cols(n, kh * scale + th, kw * scale), "sections_per_row": 1}
    # sections side by side in a wide pane, stacked in a tall one (2 x 2 allowed in both)
    choices = (2, 4) if pane[1] >= pane[0] else (1, 2)

    def shown(choice: tuple[int, int]) -> float:
        per_row, cols = choice
        section = grid_size(n, cols, (kh, kw), margin, th, scale, th + margin)
        return _fit_factor(_arranged_size(section, 4, per_row, band), pane)

    candidates = [(per_row, cols) for per_row in choices for cols in _row_splits(n, n)]
    per_row, cols = _largest(candidates, shown, (choices[0], 1))
    return {"cols": cols, "sections_per_row": per_row}


def _matrix_geometry(kh: int, kw: int, n_in: int, n_out: int, caption: bool, blocks: int) -> dict[str, int]:
    """Sizes of the filters x input channels matrix split into `blocks` blocks of filter rows side by side."""
    scale = _auto_scale(kh, kw, MIN_MATRIX_CELL_PX)
    margin, th = 1, text_height()
    label_w = int(_font().getlength(str(n_out - 1))) + 4
    ch, cw = kh * scale, kw * scale
    per_block = math.ceil(n_out / blocks)
    top = (th + margin if caption else 0) + th  # caption band, then column header band
    block_w = label_w + margin + n_in * (cw + margin)
    return {
        "scale": scale,
        "margin": margin,
        "th": th,
        "label_w": label_w,
        "ch": ch,
        "cw": cw,
        "per_block": per_block,
        "top": top,
        "block_w": block_w,
        "height": top + margin + per_block * (ch + margin),
        "width": blocks * block_w + (blocks - 1) * SECTION_GAP,
    }


def _matrix_blocks(
    kh: int, kw: int, n_in: int, n_out: int, caption: bool, fit: tuple[int, int] | None
) -> int:
    """Blocks of filter rows side by side that show the matrix largest in a pane of fit (1 without fit)."""
    if fit is None:
        return 1

    def shown(blocks: int) -> float:
        g = _matrix_geometry(kh, kw, n_in, n_out, caption, blocks)
        return _fit_factor((g["height"], g["width"]), fit)

    return _largest(_row_splits(n_out, min(n_out, 8)), shown, 1)
