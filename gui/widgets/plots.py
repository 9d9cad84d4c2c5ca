"""Plots that only show: a pg.PlotWidget without context menu, mouse pan/zoom or auto-range button
(the histogram of a feature map, the predictions' bars, the deletion/insertion curves)."""

from __future__ import annotations

import pyqtgraph as pg


def static_plot(bottom: str = "", left: str = "") -> pg.PlotWidget:
    """A PlotWidget the user cannot pan, zoom or open a menu on; `bottom`/`left` label its axes."""
    plot = pg.PlotWidget()
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(False, False)
    plot.hideButtons()
    if bottom:
        plot.setLabel("bottom", bottom)
    if left:
        plot.setLabel("left", left)
    return plot
