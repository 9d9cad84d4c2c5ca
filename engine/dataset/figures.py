"""Every figure of the Dataset tab, drawn from a ScanResult with NumPy, PIL and engine.render.

The GUI's pages and `python main.py export topk --page units|classes|images` draw with the same
functions, so an export equals the screen:

- units: render_units / render_units_layout (a tile of top-k crops per unit) and unit_detail;
- classes: class_heatmap (classes x units), class_grid_figure (dense layers), compare_figure;
- images: maps_figure (each image beside its strongest channel's map), for page_image_ids.

No TensorFlow here; the maps for compare_figure and maps_figure come from the scan_compare and
scan_maps jobs (engine.dataset.stats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.dataset.contract import CompareOutput, StrongestMaps
    from engine.dataset.result import ScanResult

__all__ = [
    "FigureLayout",
    "HeatLayout",
    "chosen_units",
    "class_grid_figure",
    "class_heatmap",
    "colorize",
    "compare_figure",
    "fit_tile",
    "maps_figure",
    "page_image_ids",
    "render_units",
    "render_units_layout",
    "tile_figure",
    "unit_detail",
]


def colorize(
    values: np.ndarray, lo: float | None = None, hi: float | None = None, cmap: str = "viridis"
) -> np.ndarray:
    """float (h, w) -> uint8 RGB through an engine.render colormap; NaN cells are white."""
    from engine import render

    v = np.asarray(values, np.float64)
    finite = np.isfinite(v)
    lo = float(np.min(v[finite])) if lo is None and finite.any() else (lo or 0.0)
    hi = float(np.max(v[finite])) if hi is None and finite.any() else (hi if hi is not None else 1.0)
    scale = (hi - lo) if hi > lo else 1.0
    idx = np.clip((np.nan_to_num(v, nan=lo) - lo) / scale * 255.0, 0, 255).astype(np.uint8)
    out = render.colormap(cmap)[idx]
    out[~finite] = 255
    return out


def upscale(img: np.ndarray, cell_h: int, cell_w: int) -> np.ndarray:
    """Nearest-neighbour enlargement by whole cells."""
    return np.repeat(np.repeat(img, cell_h, axis=0), cell_w, axis=1)


GAP_GREY = 170  # the lines between a unit's crops


def _unit_tile(crops: np.ndarray, cell: int, gap: int = 1) -> np.ndarray:
    """k crops (k, h, w, C) uint8 as one near-square RGB tile of cells `cell` px wide."""
    from PIL import Image

    k = len(crops)
    cols = max(1, math.ceil(math.sqrt(k)))
    rows = max(1, math.ceil(k / cols))
    # grey between and around crops, so a white crop (a unit that fires on blank paper) still shows
    tile = np.full((rows * cell + (rows - 1) * gap, cols * cell + (cols - 1) * gap, 3), GAP_GREY, np.uint8)
    for i, crop in enumerate(crops):
        rgb = np.repeat(crop, 3, axis=-1) if crop.shape[-1] == 1 else crop[..., :3]
        h, w = rgb.shape[:2]
        s = cell / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        resample = Image.Resampling.NEAREST if s >= 1 else Image.Resampling.LANCZOS
        im = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, resample))
        r, c = divmod(i, cols)
        y0 = r * (cell + gap) + (cell - im.shape[0]) // 2
        x0 = c * (cell + gap) + (cell - im.shape[1]) // 2
        tile[y0 : y0 + im.shape[0], x0 : x0 + im.shape[1]] = im
    return tile


def unit_tiles(result: ScanResult, channels: Sequence[int], cell: int = 48) -> list[np.ndarray]:
    """One RGB tile per channel: its top-k crops in a near-square grid."""
    return [_unit_tile(result.crops_of(int(c)), cell) for c in channels]


@dataclass(frozen=True)
class FigureLayout:
    """Where each tile of a grid figure lies (an engine.render.GridGeometry), to map a click to a unit."""

    items: tuple[int, ...]  # the unit (or other item) shown in each tile, row-major
    geometry: Any

    def item_at(self, row: float, col: float) -> int | None:
        """The item whose tile (title included) holds figure pixel (row, col), or None for a margin."""
        pos = self.geometry.position_at(row, col)
        return None if pos is None else self.items[pos]

    def tile_box(self, index: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of tile `index`'s picture (without its title) in figure pixels."""
        return tuple(self.geometry.image_rects[index])


def chosen_units(result: ScanResult, units: Sequence[int] | None) -> list[int]:
    """The units of `result` to show: `units` (all for None) as ints; EngineError for a unit the
    layer lacks or for none at all."""
    chosen = list(range(result.units)) if units is None else [int(u) for u in units]
    for u in chosen:
        if not 0 <= u < result.units:
            raise EngineError(f"no unit {u} in layer {result.layer} ({result.units} units)")
    if not chosen:
        raise EngineError("no units to show")
    return chosen


def render_units_layout(
    result: ScanResult,
    channels: Sequence[int] | None = None,
    cols: int | None = None,
    cell: int = 48,
    titles: bool = True,
    fit: tuple[int, int] | None = None,
) -> tuple[np.ndarray, FigureLayout]:
    """The unit grid figure and its layout (the GUI maps clicks to units with layout.item_at).

    fit = (height, width) of a pane: without explicit cols, the columns that show units largest there.
    """
    chans = chosen_units(result, channels)
    tiles = unit_tiles(result, chans, cell)
    wide = tiles[0].shape[1] >= 84
    names = [f"{c}  max {result.top_values[c, 0]:.3g}" if wide else str(c) for c in chans]
    return tile_figure(tiles, names if titles else None, cols, items=chans, fit=fit)


def render_units(result: ScanResult, *args: Any, **options: Any) -> np.ndarray:
    """The unit grid as one uint8 RGB figure: per unit a tile of its top-k crops, titled "N  max V".

    The arguments are render_units_layout's (channels, cols, cell, titles, fit). The GUI's unit
    grid and `python main.py export topk` both draw with this function.
    """
    return render_units_layout(result, *args, **options)[0]


def tile_figure(
    tiles: list[np.ndarray],
    titles: list[str] | None,
    cols: int | None = None,
    items: Sequence[int] | None = None,
    margin: int = 6,
    fit: tuple[int, int] | None = None,
) -> tuple[np.ndarray, FigureLayout]:
    """Tiles (uint8 RGB or grey) in a near-square grid on white with titles, by engine.render.tile.

    Returns the figure and its layout (render.grid_geometry, the layout render.tile draws).
    """
    from engine import render

    th = render.text_height() if titles is not None else 0
    ch = max(t.shape[0] for t in tiles)
    cw = max(t.shape[1] for t in tiles)
    if cols is None and fit is not None:
        cols = render.best_cols(len(tiles), (ch, cw), fit, margin, th)
    geometry = render.grid_geometry(len(tiles), cols, (ch, cw), margin, th)
    image = render.tile(tiles, cols=geometry.cols, margin=margin, titles=titles)
    return image, FigureLayout(tuple(items if items is not None else range(len(tiles))), geometry)


@dataclass(frozen=True)
class HeatLayout:
    """Where the cells of a class heatmap lie in its image (to map clicks to units)."""

    left: int
    top: int
    cell_h: int
    cell_w: int
    classes: int
    units: int

    def cell_at(self, row: int, col: int) -> tuple[int, int] | None:
        """(class, unit) under image pixel (row, col), or None outside the cells."""
        r, c = row - self.top, col - self.left
        if r < 0 or c < 0:
            return None
        cls, unit = r // self.cell_h, c // self.cell_w
        if cls < self.classes and unit < self.units:
            return int(cls), int(unit)
        return None


def class_heatmap(
    result: ScanResult, mode: str = "zscore", stat: str = "mean"
) -> tuple[np.ndarray, HeatLayout]:
    """uint8 RGB heatmap, one row per class (named on the left), one column per unit (indexed on top).

    mode "zscore": each unit's class means standardized across classes (what makes a unit
    class-specific); "raw": the class means on one shared scale.
    """
    from PIL import Image, ImageDraw

    stats = result.class_stats(stat)
    m = np.asarray(stats.mean, np.float64)
    m = np.where(stats.count[:, None] > 0, m, np.nan)
    if mode == "zscore":
        with np.errstate(invalid="ignore"):
            mu = np.nanmean(m, axis=0, keepdims=True)
            sd = np.nanstd(m, axis=0, keepdims=True)
        m = (m - mu) / np.where(sd > 0, sd, 1.0)
        img = colorize(m, -2.5, 2.5, "viridis")
    else:
        img = colorize(m, cmap="viridis")
    k, units = m.shape
    cw = max(2, min(24, 1200 // max(units, 1)))
    ch = max(8, min(32, 400 // max(k, 1)))
    cells = upscale(img, ch, cw)
    names = [str(n)[:16] for n in result.class_names]
    left = 6 + 6 * max((len(n) for n in names), default=1)
    top = 14
    out = np.full((top + cells.shape[0] + 2, left + cells.shape[1] + 2, 3), 255, np.uint8)
    out[top : top + cells.shape[0], left : left + cells.shape[1]] = cells
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    for i, name in enumerate(names):
        draw.text((2, top + i * ch + max(0, ch // 2 - 6)), name, fill=(0, 0, 0))
    need = max(1, int(np.ceil(40 / cw)))
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000) if s >= need), need)
    for u in range(0, units, step):
        draw.text((left + u * cw, 1), str(u), fill=(0, 0, 0))
    return np.ascontiguousarray(np.asarray(pil)), HeatLayout(left, top, ch, cw, k, units)


def fit_tile(rgb: np.ndarray, size: int, smooth: bool = True) -> np.ndarray:
    """A uint8 RGB image scaled to fit a size x size square, centred on white.

    Enlarging is nearest-neighbour (maps and crops keep their cells); shrinking is Lanczos
    when smooth, else nearest.
    """
    from PIL import Image

    a = rgb if rgb.ndim == 3 else rgb[..., None]
    a = np.ascontiguousarray(np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a[..., :3])
    h, w = a.shape[:2]
    scale = size / max(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.LANCZOS if (smooth and scale < 1) else Image.Resampling.NEAREST
    im = np.asarray(Image.fromarray(a).resize(new, resample))
    out = np.full((size, size, 3), 255, np.uint8)
    y0, x0 = (size - im.shape[0]) // 2, (size - im.shape[1]) // 2
    out[y0 : y0 + im.shape[0], x0 : x0 + im.shape[1]] = im
    return out


def class_grid_figure(result: ScanResult, stat: str = "mean") -> np.ndarray:
    """For dense layers: each class's mean unit activations as a small grid, side by side, shared scale."""
    grids = result.class_grids(stat)
    finite = grids[np.isfinite(grids)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    cell = max(2, min(16, 160 // max(grids.shape[1:])))
    tiles = [upscale(colorize(g, lo, hi), cell, cell) for g in grids]
    return tile_figure(tiles, list(result.class_names), cols=min(len(tiles), 10))[0]


def map_tile(m: np.ndarray, size: int, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """A map coloured (magma) and enlarged with whole cells to a size x size tile."""
    return fit_tile(colorize(np.atleast_2d(m), lo, hi, "magma"), size, smooth=False)


def image_tile(img: np.ndarray, size: int) -> np.ndarray:
    """A [0, 1] image (H, W, C) as a size x size uint8 RGB tile."""
    from engine.common import unit_to_uint8

    a = unit_to_uint8(img)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return fit_tile(a, size)


def compare_figure(out: CompareOutput, class_names: tuple[str, ...], size: int = 96) -> np.ndarray:
    """Images of the two classes (rows) with their maps of the most separating units, side by side."""
    ex = out.examples
    sep = out.separation
    tiles: list[np.ndarray] = []
    titles: list[str] = []
    n = ex.ids.shape[1]
    chans = ex.channels
    maps = ex.maps
    valid = ex.ids >= 0
    # one colour scale per unit, shared by both classes so their maps compare fairly
    scales = []
    for ci in range(len(chans)):
        vals = maps[:, :, ci][valid]
        scales.append((float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0))
    d_of = {int(c): float(d) for c, d in zip(sep.channels, sep.d)}
    for row, cls in enumerate(ex.classes):
        for col in range(n):
            i = int(ex.ids[row, col])
            if i < 0:
                tiles.append(np.full((size, size, 3), 255, np.uint8))
                titles.append("")
                continue
            tiles.append(image_tile(ex.images[row, col], size))
            titles.append(f"{class_names[cls]} #{i}")
            for ci, c in enumerate(chans):
                tiles.append(map_tile(maps[row, col, ci], size, *scales[ci]))
                titles.append(f"u{c} d={d_of.get(int(c), 0.0):+.2f}")
    if not tiles:
        raise EngineError("no images of these classes in the scan")
    return tile_figure(tiles, titles, cols=n * (1 + len(chans)))[0]


def maps_figure(out: StrongestMaps, size: int = 128) -> np.ndarray:
    """Each image beside the map of the channel that fired most for it."""
    tiles: list[np.ndarray] = []
    titles: list[str] = []
    for i, img, sm in zip(out.ids, out.images, out.maps):
        tiles.append(image_tile(img, size))
        titles.append(f"#{i}")
        tiles.append(map_tile(sm.map, size))
        titles.append(f"ch {sm.channel} max {sm.value:.3g}")
    if not tiles:
        raise EngineError("no images to show")
    return tile_figure(tiles, titles, cols=8)[0]


def unit_detail(result: ScanResult, unit: int, size: int = 96) -> np.ndarray:
    """The unit's top-k crops large (3 per row), titled with value, image id and class."""
    crops = result.crops_of(unit)
    hits = result.hits(unit)
    tiles, titles = [], []
    for rank, crop in enumerate(crops[: len(hits)]):
        rgb = np.repeat(crop, 3, axis=-1) if crop.shape[-1] == 1 else crop[..., :3]
        tiles.append(fit_tile(rgb, size, smooth=False))
        hit = hits[rank]
        label = f" {result.class_names[hit.label]}"[:9] if 0 <= hit.label < len(result.class_names) else ""
        titles.append(f"{hit.value:.3g} #{hit.image_id}{label}")
    if not tiles:
        raise EngineError(f"unit {unit} has no hits")
    return tile_figure(tiles, titles, cols=3)[0]


def page_image_ids(result: ScanResult, first: int = 0, count: int = 8) -> list[int]:
    """The Images page's images: ids first .. first + count - 1 of the set, skipped ones left out."""
    skipped = {i for i, _ in result.skipped}
    return [i for i in range(first, min(result.total, first + count)) if i not in skipped]
