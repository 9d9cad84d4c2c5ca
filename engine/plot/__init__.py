"""Publication figures drawn with matplotlib (Agg, no Qt): every export kind composes one.

spec.py describes a figure as plain data (FigureSpec: title, panels, colour bar, curve, caption);
the builders turn what a kind computed into one (features.py: feature maps and filters,
optimize.py: maximize and dream, attribution.py: cam and saliency, dataset.py: the top-k pages);
draw.py composes it at the size (size.py) and in the style (style.py: "paper", "slide") asked
for; save.py writes PNG, TIFF, SVG or PDF reproducibly with a sidecar, or the raw array and its
values. matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from engine.plot.size import FigureSize, parse_size
from engine.plot.spec import ColorBar, Curve, FigureSpec, Panel, value_panels
from engine.plot.style import STYLES, Style, get_style


def __getattr__(name: str):  # the drawing side loads matplotlib: import it on first use
    if name in ("compose", "mpl_colormap"):
        from engine.plot import draw

        return getattr(draw, name)
    if name in (
        "figure_bytes",
        "figure_rgb",
        "render_figure",
        "write_figure",
        "raw_export",
        "FIGURE_FORMATS",
        "figure_settings",
    ):
        from engine.plot import save

        return getattr(save, name)
    raise AttributeError(f"module 'engine.plot' has no attribute {name!r}")


__all__ = [
    "FIGURE_FORMATS",
    "STYLES",
    "ColorBar",
    "Curve",
    "FigureSize",
    "FigureSpec",
    "Panel",
    "Style",
    "compose",
    "figure_bytes",
    "figure_rgb",
    "figure_settings",
    "get_style",
    "mpl_colormap",
    "parse_size",
    "raw_export",
    "render_figure",
    "value_panels",
    "write_figure",
]
