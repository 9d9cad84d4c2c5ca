"""The Dataset tab's publication figures: the page shown, built as `export topk --page ...` builds it.

engine.plot.dataset's units_figure / classes_figure / images_figure from the view's scan result
(and, on the images page, the strongest maps it shows); page_values is what a raw export's .npy
holds, the same arrays the CLI's --raw writes. No Qt here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.plot.spec import FigureSpec


def current_page(view: Any) -> str:
    from gui.views.dataset import PAGES

    index = view.pages.currentIndex()
    return PAGES[index] if 0 <= index < len(PAGES) else "units"


def page_figure(view: Any) -> FigureSpec:
    """The FigureSpec of the Dataset page `view` shows."""
    from engine.plot import dataset as plots

    r = view.result
    if r is None:
        raise EngineError("no scan to export yet: Run scan first")
    model = view.state.model
    name = model.name if model else None
    page = current_page(view)
    if page == "classes":
        heatmap, stat = str(view.heat_mode.currentData()), str(view.stat_box.currentData())
        return plots.classes_figure(r, heatmap, stat, model_name=name)
    if page == "images":
        if view.maps_result is None:
            raise EngineError("nothing shown on the images page yet")
        scanned = int(r.done - len(r.skipped))
        return plots.images_figure(
            view.maps_result, name or "", r.layer, r.source, r.class_names, r.labels, scanned
        )
    units = list(range(r.units))
    return plots.units_figure(r, [r.crops_of(u) for u in units], units, model_name=name)


def page_values(view: Any) -> np.ndarray | None:
    """What the page shows as numbers: top-k values per unit, the class matrix, or the maps."""
    from engine.plot.dataset import class_matrix

    r = view.result
    if r is None:
        return None
    page = current_page(view)
    if page == "classes":
        if not r.class_names:
            return None
        return class_matrix(r, str(view.heat_mode.currentData()), str(view.stat_box.currentData()))
    if page == "images":
        maps = view.maps_result
        if maps is None or not len(maps):
            return None
        return np.stack([np.atleast_2d(np.asarray(sm.map, np.float32)) for sm in maps.maps])
    return np.asarray(r.top_values, np.float32)
