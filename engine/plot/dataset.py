"""The Dataset (top-k) figures: the units, classes and images pages of a scan, as FigureSpecs.

Pure functions from what a scan computed (a ScanResult, the crops of its units, the strongest
maps of some images) to a FigureSpec, so `python main.py export topk` and the GUI's Export
View build the same figure. No file I/O, no matplotlib: engine.plot.compose draws them.

- units_figure: each unit's top-k receptive-field crops, each labelled with its activation and
  image id; a row per unit when the crops are few enough to label, else a block per unit.
- classes_figure: the class x unit heatmap of mean activations (or their z-scores per unit),
  with a colour bar of the real values.
- images_figure: images of the set beside the map of the unit that fired most for each, all
  maps on one scale with a colour bar of activation values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from engine.dataset.figures import chosen_units
from engine.errors import EngineError
from engine.plot.spec import ColorBar, FigureSpec, Panel

if TYPE_CHECKING:
    from engine.dataset.contract import StrongestMaps
    from engine.dataset.result import ScanResult

__all__ = ["DETAIL_LIMIT", "class_matrix", "classes_figure", "images_figure", "units_figure"]

# At most this many crops are drawn one panel each (a row per unit, each crop labelled);
# beyond it each unit is one block of its crops, so 32 units x 9 crops stay legible on a page.
DETAIL_LIMIT = 48
HEAT_CMAP = {"raw": "viridis", "zscore": "signed"}  # z-scores: blue below the unit's mean, red above
MAP_CMAP = "magma"
MAX_HEAT_ASPECT = 4.0  # a classes x units heatmap is drawn at most 4 times wider than tall


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _title(what: str, model_name: str, layer: str, source: str, scanned: int | None) -> str:
    scan = f": {scanned:,} images" if scanned is not None else ""
    return f"{model_name} · {layer}: {what}\n{source}{scan}"


def _band_labels(rows: int, label: str) -> tuple[str, ...]:
    """Tick labels for `rows` image rows with `label` on the middle one: a row label beside a panel."""
    out = [""] * rows
    out[rows // 2] = label
    return tuple(out)


def _sparse_labels(n: int, most: int = 32) -> tuple[str, ...]:
    """Labels 0..n-1 with a round step, so at most about `most` of them are written."""
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000, 2000) if n / s <= most), 5000)
    return tuple(str(i) if i % step == 0 else "" for i in range(n))


def _scanned(result: ScanResult) -> int:
    return int(result.done - len(result.skipped))


def _rgb(crop: np.ndarray) -> np.ndarray:
    """uint8 (h, w, C) -> uint8 RGB (h, w, 3)."""
    a = np.asarray(crop)
    if a.ndim == 2:
        a = a[..., None]
    return np.ascontiguousarray(np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a[..., :3])


def _block(crops: Sequence[np.ndarray], gap: int = 1) -> np.ndarray:
    """Crops (same size) in a near-square grid on white, best first, row-major, at native size."""
    k = len(crops)
    cols = max(1, math.ceil(math.sqrt(k)))
    rows = max(1, math.ceil(k / cols))
    h, w = crops[0].shape[:2]
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 255, np.uint8)
    for i, crop in enumerate(crops):
        r, c = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = _rgb(crop)
    return out


def units_figure(
    result: ScanResult,
    crops: Sequence[np.ndarray],
    units: Sequence[int] | None = None,
    model_name: str | None = None,
    layer: str | None = None,
    source: str | None = None,
    *,
    cols: int | None = None,
    detail: bool | None = None,
) -> FigureSpec:
    """The units page: per unit its top-k crops (crops[i] = result.crops_of(units[i]), uint8 (k, h, w, C)).

    detail (None: when at most DETAIL_LIMIT crops) draws one row per unit, each crop a panel
    labelled with its activation and image id, the unit named on the row's first crop; else
    each unit is one panel, its crops best first, row-major, labelled with the unit and its
    range of top values (cols units per row). Crops are pictures, so there is no colour bar.
    """
    chosen = chosen_units(result, units)
    if len(crops) != len(chosen):
        raise EngineError(f"{len(crops)} crop sets for {len(chosen)} units")
    hits = [result.hits(u) for u in chosen]
    k = max((len(h) for h in hits), default=0)
    if k == 0:
        raise EngineError("the scan found no images for these units")
    shown = sum(len(h) for h in hits)
    if detail is None:
        detail = shown <= DETAIL_LIMIT
    rf = result.rf
    where = (
        f"the {rf[0][0]}×{rf[0][1]} px receptive field of the cell where the unit peaked"
        if rf is not None
        else "the whole image (a dense layer)"
    )
    panels: list[Panel] = []
    if detail:
        blank = np.full((*np.asarray(crops[0]).shape[1:3], 3), 255, np.uint8)
        for u, unit_crops, unit_hits in zip(chosen, crops, hits):
            for rank in range(k):
                if rank >= len(unit_hits):
                    panels.append(Panel(blank))
                    continue
                hit = unit_hits[rank]
                image = _rgb(unit_crops[rank])
                rows = _band_labels(image.shape[0], f"unit {u}") if rank == 0 else ()
                panels.append(Panel(image, _fmt(hit.value), note=f"#{hit.image_id}", yticks=rows))
        n_cols = k
        caption = (
            f"One row per unit, best first; each crop is {where}, "
            "labelled with the unit's activation there and the image id (#)."
        )
    else:
        for u, unit_crops, unit_hits in zip(chosen, crops, hits):
            if not unit_hits:
                panels.append(Panel(_block([np.full_like(unit_crops[0], 255)]), f"unit {u}", note="no hits"))
                continue
            block = _block(unit_crops[: len(unit_hits)])
            panels.append(Panel(block, f"unit {u}", note=f"max {_fmt(unit_hits[0].value)}"))
        n_cols = cols if cols else max(1, min(len(panels), math.ceil(math.sqrt(len(panels)))))
        caption = (
            f"Each block: a unit's top {k} crops, best first, row-major; each crop is {where}. "
            "Above each block: the unit and its highest activation (all values in the sidecar)."
        )
    title = _title(
        f"top {k} crops per unit",
        model_name or result.model_name,
        layer or result.layer,
        source or result.source,
        _scanned(result),
    )
    settings = {"page": "units", "layout": "rows" if detail else "blocks", "units": chosen}
    return FigureSpec("topk", title, tuple(panels), cols=n_cols, caption=caption, settings=settings)


def class_matrix(result: ScanResult, heatmap: str = "zscore", stat: str = "mean") -> np.ndarray:
    """The classes page's values, float32 (classes, units): each class's mean of every unit's
    spatial `stat` ("raw"), or those means standardized across classes per unit ("zscore").
    Classes with no scanned image are NaN."""
    if heatmap not in HEAT_CMAP:
        raise EngineError(f"unknown heatmap {heatmap!r}; choose zscore or raw")
    stats = result.class_stats(stat)
    m = np.asarray(stats.mean, np.float64)
    m = np.where(np.asarray(stats.count)[:, None] > 0, m, np.nan)
    if heatmap == "zscore" and np.isfinite(m).any():
        with np.errstate(invalid="ignore"):
            mu = np.nanmean(m, axis=0, keepdims=True)
            sd = np.nanstd(m, axis=0, keepdims=True)
        m = (m - mu) / np.where(sd > 0, sd, 1.0)
    return m.astype(np.float32)


def _heat_image(m: np.ndarray) -> np.ndarray:
    """The matrix with each class row repeated so the panel is at most MAX_HEAT_ASPECT times wider than tall."""
    classes, units = m.shape
    rep = max(1, math.ceil(units / (MAX_HEAT_ASPECT * max(classes, 1))))
    rep += 1 - rep % 2  # odd, so a class's tick label sits on its band's middle row
    return np.repeat(m, rep, axis=0)


def classes_figure(
    result: ScanResult,
    heatmap: str = "zscore",
    stat: str = "mean",
    model_name: str | None = None,
    layer: str | None = None,
    source: str | None = None,
) -> FigureSpec:
    """The classes page: one row per class (named), one column per unit, coloured by the class
    mean of the unit's spatial `stat`, with a colour bar of those real values ("raw"), or of their
    z-scores across classes within each unit ("zscore", a diverging scale centred on 0)."""
    if not result.class_names:
        raise EngineError("this dataset has no labels: the classes page needs one sub-folder per class")
    m = class_matrix(result, heatmap, stat)
    finite = m[np.isfinite(m)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    what = f"spatial {stat}" if result.kind == "spatial" else "activation"
    if heatmap == "zscore":
        top = max(abs(lo), abs(hi)) or 1.0
        lo, hi = -top, top
        bar = "z-score per unit"
        how = (
            f"Each cell: the class mean of the unit's {what}, as a z-score across classes within "
            "the unit (how class-specific the unit is)."
        )
    else:
        if hi <= lo:
            hi = lo + 1.0
        bar = f"mean {what}"
        how = f"Each cell: the class mean of the unit's {what}."
    cmap = HEAT_CMAP[heatmap]
    image = _heat_image(m)
    rep = image.shape[0] // max(1, m.shape[0])
    yticks = sum((_band_labels(rep, str(n)) for n in result.class_names), ())
    panel = Panel(image, "unit", cmap, lo, hi, xticks=_sparse_labels(result.units), yticks=yticks)
    counts = np.asarray(result.class_stats(stat).count)
    per_class = ", ".join(f"{n} {int(c)}" for n, c in zip(result.class_names, counts))
    title = _title(
        "class means per unit",
        model_name or result.model_name,
        layer or result.layer,
        source or result.source,
        _scanned(result),
    )
    caption = f"{how} Images per class: {per_class}."
    settings = {"page": "classes", "heatmap": heatmap, "stat": stat}
    return FigureSpec(
        "topk",
        title,
        (panel,),
        cols=1,
        colorbar=ColorBar(cmap, lo, hi, bar),
        caption=caption,
        settings=settings,
    )


def images_figure(
    result: ScanResult,
    maps: StrongestMaps,
    model_name: str | None = None,
    layer: str | None = None,
    source: str | None = None,
) -> FigureSpec:
    """The images page: each image (labelled with its id and class) beside the map of the unit
    that fired most for it (labelled with the unit and its peak), all maps on one scale with a
    colour bar of the layer's activation values. maps: strongest_maps_of(h, result, ids), the
    scan_maps job's answer."""
    if not len(maps):
        raise EngineError("no images to show")
    arrays = [np.atleast_2d(np.asarray(sm.map, np.float32)) for sm in maps.maps]
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    panels: list[Panel] = []
    for i, img, sm, a in zip(maps.ids, maps.images, maps.maps, arrays):
        cls = int(result.labels[i]) if 0 <= i < len(result.labels) else -1
        note = str(result.class_names[cls]) if 0 <= cls < len(result.class_names) else ""
        panels.append(Panel(np.clip(np.asarray(img, np.float32), 0.0, 1.0), f"#{i}", note=note))
        panels.append(Panel(a, f"unit {sm.channel}", MAP_CMAP, lo, hi, note=f"peak {_fmt(sm.value)}"))
    pairs_per_row = 2 if len(maps) > 1 else 1
    layer = layer or result.layer
    title = _title(
        "each image's strongest unit",
        model_name or result.model_name,
        layer,
        source or result.source,
        _scanned(result),
    )
    caption = "Beside each image: the map of the unit with the highest peak on it, all maps on one scale."
    return FigureSpec(
        "topk",
        title,
        tuple(panels),
        cols=2 * pairs_per_row,
        colorbar=ColorBar(MAP_CMAP, lo, hi, f"{layer} activation"),
        caption=caption,
        settings={"page": "images", "ids": [int(i) for i in maps.ids]},
    )
