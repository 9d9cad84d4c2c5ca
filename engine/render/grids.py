"""Grids of a layer: feature maps (one tile per channel, one cell per dense unit) and conv filters."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from engine.errors import EngineError
from engine.render.colors import _finite, apply_colormap, normalize, to_uint8
from engine.render.geometry import GridGeometry, _Cells, _near_square_cols
from engine.render.layouts import (
    MIN_FILTER_CELL_PX,
    MIN_MAP_CELL_PX,
    SECTION_CHOICES,
    SECTION_GAP,
    _arranged_size,
    _auto_scale,
    _dense_scale,
    _matrix_geometry,
    feature_layout,
    filter_layout,
)
from engine.render.tiling import _draw_texts, _upscale, text_height, tile_with_geometry


@dataclass(frozen=True)
class RenderedGrid:
    """A rendered grid: the uint8 RGB image, a per-cell factor (x amplification) and the layout."""

    image: np.ndarray
    factors: np.ndarray
    geometry: GridGeometry
    caption: str = ""
    layout: dict = field(default_factory=dict)  # {"cols": n[, "sections_per_row": s]} as drawn


def _factor_label(f: float) -> str:
    if f < 10:
        return f"\u00d7{f:.1f}"
    if f < 1000:
        return f"\u00d7{f:.0f}"
    return f"\u00d7{f:.0e}"


def _squeeze_batch(a: np.ndarray) -> np.ndarray:
    while a.ndim > 1 and a.shape[0] == 1 and a.ndim in (2, 4):
        a = a[0]
    return a


def feature_grid(
    maps: np.ndarray,
    norm: str = "per_map",
    cmap: str = "gray",
    cols: int | None = None,
    titles: bool = True,
    scale: int | None = None,
    fit: Sequence[int] | None = None,
) -> RenderedGrid:
    """Render a layer's output: one tile per channel of (h, w, c) maps, or one cell per dense unit.

    (h, w, c): normalized with :func:`normalize` (``norm``), coloured with ``cmap``,
    one tile per channel titled with its index (and "x3.4" for an amplified map in
    ``per_map``). (h, w) is one map. A leading batch axis of size 1 is dropped.
    (units,): one image, each unit a square cell of a near-square grid coloured by its
    value (the vector normalized as one map); ``cell_at`` gives the unit index.
    scale=None upscales tiny maps so cells are at least ~48 px. cols=None picks the columns
    with :func:`feature_layout`: those that show maps largest in a pane of fit = (height,
    width), or near-square without fit (the fixed layout of exports). ``layout["cols"]`` of
    the result says which were drawn.
    """
    a = _squeeze_batch(np.asarray(maps))
    if a.ndim == 2:
        a = a[:, :, None]
    if cols is None and fit is not None and a.ndim in (1, 3) and a.size:
        cols = feature_layout(a.shape, fit, titles=titles)
    if a.ndim == 1:
        return _dense_grid(a, norm, cmap, cols, scale)
    if a.ndim != 3:
        raise EngineError(f"feature maps must be (h, w, c) or (units,), got shape {np.shape(maps)}")
    h, w, c = a.shape
    if h == 0 or w == 0 or c == 0:
        raise EngineError(f"feature maps are empty (shape {a.shape})")
    values, factors = normalize(a, norm, axis_maps=-1)
    colored = apply_colormap(np.moveaxis(values, -1, 0), cmap)  # (c, h, w, 3)
    if scale is None:
        scale = _auto_scale(h, w, MIN_MAP_CELL_PX)
    labels = None
    if titles:
        labels = []
        for k in range(c):
            f = float(factors[k])
            show = norm == "per_map" and round(f, 1) != 1.0
            labels.append(f"{k} {_factor_label(f)}" if show else str(k))
    image, geo = tile_with_geometry(colored, cols=cols, titles=labels, scale=scale)
    return RenderedGrid(image=image, factors=factors, geometry=geo, layout={"cols": geo.cols})


def _dense_grid(v: np.ndarray, norm: str, cmap: str, cols: int | None, scale: int | None) -> RenderedGrid:
    n = v.shape[0]
    if n == 0:
        raise EngineError("dense activations are empty")
    values, _ = normalize(v[:, None], norm, axis_maps=-1)
    colored = apply_colormap(values[:, 0], cmap)  # (n, 3)
    if cols is None:
        cols = _near_square_cols(n)
    cols = int(min(max(int(cols), 1), n))
    if scale is None:
        scale = _dense_scale(cols)
    image, geo = tile_with_geometry(colored[:, None, None, :], cols=cols, margin=1, scale=scale)
    return RenderedGrid(
        image=image, factors=np.ones(n, dtype=np.float32), geometry=geo, layout={"cols": geo.cols}
    )


def _signed01(w: np.ndarray, peak: np.ndarray | float) -> np.ndarray:
    """Weights -> [0, 1] with 0.5 = zero weight, divided by peak (broadcast), peak 0 -> 0.5."""
    peak = np.asarray(peak, dtype=np.float32)
    safe = np.where(peak > 0, peak, 1.0).astype(np.float32)
    return np.clip(0.5 + 0.5 * (w / safe), 0.0, 1.0).astype(np.float32)


def _arrange_sections(
    sections: Sequence[tuple[str, list[np.ndarray], list[str], int]],
    margin: int,
    background: tuple[int, int, int],
    scale: int,
    caption: str,
    cols: int | None = None,
    per_row: int = 1,
) -> tuple[np.ndarray, GridGeometry]:
    """Titled section grids, per_row to a row (1 = one under another), SECTION_GAP apart side by side.

    Each section is a grid of ``cols`` columns; geometry indices = filter index, channel =
    the section's channel.
    """
    per_row = min(max(int(per_row), 1), max(len(sections), 1))
    tiles: list[tuple[np.ndarray, GridGeometry, int]] = []
    for title, images, titles, channel in sections:
        img, geo = tile_with_geometry(
            images, cols=cols, margin=margin, background=background, titles=titles, scale=scale, caption=title
        )
        tiles.append((img, geo, channel))
    band = text_height() + margin if caption else 0
    sec_h = max((t[0].shape[0] for t in tiles), default=1)
    sec_w = max((t[0].shape[1] for t in tiles), default=1)
    height, width = _arranged_size((sec_h, sec_w), len(tiles), per_row, band)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    cells = _Cells()
    cols_used = 0
    for k, (img, geo, channel) in enumerate(tiles):
        r, c = divmod(k, per_row)
        y = band + r * sec_h  # each section's own title band separates the rows
        x = c * (sec_w + SECTION_GAP)
        canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
        for i, (rc, ir) in enumerate(zip(geo.rects, geo.image_rects)):
            cells.add(
                i,
                channel,
                (rc[0] + y, rc[1] + x, rc[2] + y, rc[3] + x),
                (ir[0] + y, ir[1] + x, ir[2] + y, ir[3] + x),
            )
        cols_used = max(cols_used, geo.cols)
    if caption:
        canvas = _draw_texts(canvas, [(margin, margin, width - 2 * margin, caption)], background)
    return np.ascontiguousarray(canvas), cells.geometry(height, width, rows=0, cols=cols_used)


def filter_grid(
    weights: np.ndarray,
    shared_scale: bool = True,
    max_in: int = 32,
    max_out: int = 256,
    cols: int | None = None,
    sections_per_row: int | None = None,
    fit: Sequence[int] | None = None,
) -> RenderedGrid:
    """Render conv filters (kh, kw, cin, cout) with zero weight as mid-grey.

    cin == 3 (first-layer colour filters): a section with each filter as an RGB image
    (0.5 = zero weight), then sections with its R, G and B slices as grey maps;
    ``cell_at`` gives the filter index, ``cell_detail`` the channel (-1 for RGB).
    cin == 1: the filters in a near-square grid, signed colormap.
    Otherwise one row per filter, one column per input channel (signed colormap),
    capped at max_out filters and max_in input channels with a caption saying so;
    ``cell_detail`` gives (filter, input channel).
    shared_scale divides by the largest |weight| of the whole layer (filters compare);
    otherwise each filter by its own (factors = layer peak / filter peak).
    cols (filters per row of a grid) and sections_per_row (1 stacked, 2, or 4 side by side;
    for the matrix: blocks of filter rows side by side) set the layout; left None they come from :func:`filter_layout`: the layout that shows
    filters largest in a pane of fit = (height, width), or the fixed one without fit.
    ``layout`` of the result says what was drawn.
    """
    w = np.asarray(weights)
    if w.ndim != 4:
        raise EngineError(f"filter weights must be (kh, kw, cin, cout), got shape {w.shape}")
    kh, kw, cin, cout = w.shape
    if min(kh, kw, cin, cout) == 0:
        raise EngineError(f"filter weights are empty (shape {w.shape})")
    max_in, max_out = int(max_in), int(max_out)
    if max_in < 1 or max_out < 1:
        raise EngineError("max_in and max_out must be at least 1")
    n_out = min(cout, max_out)
    n_in = cin if cin == 3 else min(cin, max_in)
    w = _finite(w[:, :, :n_in, :n_out])
    filter_peak = np.abs(w).reshape(-1, n_out).max(axis=0)  # (n_out,)
    layer_peak = float(filter_peak.max())
    if shared_scale:
        peak: np.ndarray | float = layer_peak
        factors = np.ones(n_out, dtype=np.float32)
    else:
        peak = filter_peak  # broadcasts over the last axis
        factors = np.where(filter_peak > 0, layer_peak / np.where(filter_peak > 0, filter_peak, 1), 1.0)
        factors = factors.astype(np.float32)
    v = _signed01(w, peak)  # (kh, kw, n_in, n_out) in [0, 1]
    notes = []
    if n_out < cout:
        notes.append(f"{n_out} of {cout} filters")
    if n_in < cin:
        notes.append(f"{n_in} of {cin} input channels")
    caption = ("showing " + " and ".join(notes)) if notes else ""
    bg = (255, 255, 255)
    if cin not in (1, 3):
        if sections_per_row is None:
            sections_per_row = filter_layout((kh, kw, cin, cout), fit, max_out, max_in)["sections_per_row"]
        if int(sections_per_row) < 1:
            raise EngineError(f"sections_per_row must be at least 1, got {sections_per_row}")
        return _filter_matrix(v, factors, caption, bg, int(sections_per_row))
    if cols is None or sections_per_row is None:
        chosen = filter_layout((kh, kw, cin, cout), fit, max_out, max_in)
        cols = chosen["cols"] if cols is None else cols
        sections_per_row = chosen["sections_per_row"] if sections_per_row is None else sections_per_row
    if cols is not None and int(cols) < 1:
        raise EngineError(f"cols must be at least 1, got {cols}")
    if sections_per_row is not None and int(sections_per_row) not in SECTION_CHOICES:
        raise EngineError(f"sections_per_row must be one of {SECTION_CHOICES}, got {sections_per_row}")

    if cin == 3:
        scale = _auto_scale(kh, kw, MIN_FILTER_CELL_PX)
        names = [str(k) for k in range(n_out)]
        rgb = [to_uint8(v[:, :, :, k]) for k in range(n_out)]
        sections = [("RGB (grey = 0)", rgb, names, -1)]  # short titles: a section may be narrow
        for ch, cname in enumerate(("red", "green", "blue")):
            grey = [apply_colormap(v[:, :, ch, k], "gray") for k in range(n_out)]
            sections.append((f"{cname} (grey = 0)", grey, names, ch))
        per_row = int(sections_per_row or 1)
        image, geo = _arrange_sections(sections, 2, bg, scale, caption, cols, per_row)
        layout = {"cols": geo.cols, "sections_per_row": per_row}
        return RenderedGrid(image=image, factors=factors, geometry=geo, caption=caption, layout=layout)

    if cin == 1:
        scale = _auto_scale(kh, kw, MIN_FILTER_CELL_PX)
        tiles = [apply_colormap(v[:, :, 0, k], "signed") for k in range(n_out)]
        image, geo = tile_with_geometry(
            tiles,
            cols=cols,
            titles=[str(k) for k in range(n_out)],
            scale=scale,
            background=bg,
            caption=caption or None,
        )
        geo = replace(geo, channels=(0,) * len(geo))
        layout = {"cols": geo.cols, "sections_per_row": 1}
        return RenderedGrid(image=image, factors=factors, geometry=geo, caption=caption, layout=layout)


def _filter_matrix(
    v: np.ndarray, factors: np.ndarray, caption: str, bg: tuple[int, int, int], blocks: int = 1
) -> RenderedGrid:
    """Rows = filters, columns = input channels, with index labels on the left and on top.

    blocks > 1 splits the filter rows into that many blocks side by side (for a wide pane),
    each with its own column header and row labels.
    """
    kh, kw, n_in, n_out = v.shape
    blocks = min(max(int(blocks), 1), n_out)
    g = _matrix_geometry(kh, kw, n_in, n_out, bool(caption), blocks)
    scale, margin, th, label_w = g["scale"], g["margin"], g["th"], g["label_w"]
    ch, cw, per_block, top = g["ch"], g["cw"], g["per_block"], g["top"]
    height, width = g["height"], g["width"]
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = bg
    colored = apply_colormap(v, "signed")  # (kh, kw, n_in, n_out, 3)
    cells = _Cells()
    texts: list[tuple[int, int, int, str]] = []
    if caption:
        texts.append((margin, margin, width - 2 * margin, caption))
    label_offset = max((ch - th) // 2, 0)
    every = max(1, math.ceil(th / (ch + margin)))  # label every row where labels fit
    for b in range(math.ceil(n_out / per_block)):
        left = b * (g["block_w"] + SECTION_GAP) + label_w
        rows = range(b * per_block, min((b + 1) * per_block, n_out))
        for r, o in enumerate(rows):
            y0 = top + margin + r * (ch + margin)
            for i in range(n_in):
                x0 = left + margin + i * (cw + margin)
                canvas[y0 : y0 + ch, x0 : x0 + cw] = _upscale(colored[:, :, i, o], scale)
                cells.add(o, i, (y0, x0, y0 + ch, x0 + cw))
            if r % every == 0:
                texts.append((y0 + label_offset - 1, left - label_w + 1, label_w - 2, str(o)))
        for i in range(n_in):
            x0 = left + margin + i * (cw + margin)
            texts.append((top - th, x0, cw + margin, str(i)))
    image = _draw_texts(canvas, texts, bg)
    geo = cells.geometry(height, width, rows=n_out, cols=n_in)
    layout = {"cols": n_in, "sections_per_row": blocks}
    return RenderedGrid(image=image, factors=factors, geometry=geo, caption=caption, layout=layout)
