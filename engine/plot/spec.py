"""What a publication figure shows, as plain data: panels of images, a colour bar, a curve, a title.

Each export kind builds a ``FigureSpec`` from what it computed (the same arrays the screen and
the raw export show); ``engine.plot.compose`` (draw.py) draws it with matplotlib at the size, DPI and
style asked for. Keeping the description free of matplotlib lets the GUI build one on its main
thread and lets tests check what a figure says without reading pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Panel:
    """One image of a figure.

    image: a value map (H, W) drawn with `cmap` between vmin and vmax (the colour bar's scale),
    or an RGB(A) picture (H, W, 3|4) in uint8 or float [0, 1] drawn as it is (cmap None).
    label: the panel's title ("ch 5", "Grad-CAM", "#123 0.87"); xticks/yticks: labels of its
    columns/rows (a classes × units heatmap), which then get room beside the panel. gain: where each map was
    normalized on its own, the factor from its values to the shared scale, shown under the
    label ("×2.3") so maps stay comparable. note: a smaller second line (a score, a class).
    """

    image: np.ndarray
    label: str = ""
    cmap: str | None = None
    vmin: float | None = None
    vmax: float | None = None
    gain: float | None = None
    note: str = ""
    xticks: tuple[str, ...] = ()  # labels of the image's columns (a heatmap's units), left to right
    yticks: tuple[str, ...] = ()  # labels of its rows (a heatmap's classes), top to bottom


@dataclass(frozen=True)
class ColorBar:
    """The value scale shared by the panels drawn with a colormap: real values from vmin to vmax."""

    cmap: str
    vmin: float
    vmax: float
    label: str = ""


@dataclass(frozen=True, eq=False)
class Curve:
    """A line plot beside the panels (a maximization's objective per step, deletion/insertion curves)."""

    x: np.ndarray
    ys: tuple[tuple[str, np.ndarray], ...]  # (legend label, values) per line
    xlabel: str = ""
    ylabel: str = ""


@dataclass(frozen=True, eq=False)
class FigureSpec:
    """A whole figure: a title (model, layer, image, target, score), a grid of panels with `cols`
    columns (None: about square), an optional colour bar and curve, and a caption under it all.

    kind names the export kind ("featuremaps", "cam", ...); the sidecar records it.
    """

    kind: str
    title: str
    panels: tuple[Panel, ...]
    cols: int | None = None
    colorbar: ColorBar | None = None
    curve: Curve | None = None
    caption: str = ""
    settings: dict = field(default_factory=dict)  # what the sidecar adds about the figure

    def __post_init__(self) -> None:
        if not self.panels and self.curve is None:
            raise ValueError("a figure needs at least one panel or a curve")


def value_panels(
    maps: Sequence[np.ndarray] | np.ndarray,
    labels: Sequence[str],
    cmap: str,
    shared: bool = True,
) -> tuple[tuple[Panel, ...], ColorBar]:
    """Panels of value maps with one colour bar: on a shared scale (shared=True), or each map
    scaled to the first map's range with its gain recorded (so a weak map is still visible and
    the reader sees by how much it was amplified)."""
    arrays = [np.asarray(m, np.float32) for m in maps]
    finite = [a[np.isfinite(a)] for a in arrays]
    lo = min((float(f.min()) for f in finite if f.size), default=0.0)
    hi = max((float(f.max()) for f in finite if f.size), default=1.0)
    if hi <= lo:
        hi = lo + 1.0
    if shared:
        panels = tuple(Panel(a, label, cmap, lo, hi) for a, label in zip(arrays, labels))
        return panels, ColorBar(cmap, lo, hi)
    panels_list = []
    for a, f, label in zip(arrays, finite, labels):
        top = float(np.abs(f).max()) if f.size else 0.0
        gain = (max(abs(lo), abs(hi)) / top) if top > 0 else 1.0
        panels_list.append(Panel(a * gain, label, cmap, lo, hi, gain=gain))
    return tuple(panels_list), ColorBar(cmap, lo, hi)
