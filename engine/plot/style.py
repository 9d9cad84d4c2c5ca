"""The figure style presets, set in one place: "paper" and "slide".

"paper": serif 8 pt text, a single-column width of 3.5 in (journal columns are 3.3-3.5 in), thin
lines; "slide": sans-serif 16 pt text on a 16:9 canvas of 10 × 5.625 in. A preset gives the
matplotlib rcParams every figure of that style is drawn with, and the default size when the user
asks for none (the height then follows the figure's layout for "paper").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError


@dataclass(frozen=True)
class Style:
    name: str
    family: str  # "serif" | "sans-serif"
    font_pt: float  # body text; titles are 1.15x, tick labels 0.85x
    width_in: float  # default width
    height_in: float | None  # default height (None: from the layout's aspect)
    dpi: float  # default raster resolution
    line_width: float

    def rc(self) -> dict[str, Any]:
        """The rcParams of this style (applied with matplotlib.rc_context around one figure)."""
        serif = ["DejaVu Serif", "Times New Roman", "Times", "serif"]
        sans = ["DejaVu Sans", "Arial", "Helvetica", "sans-serif"]
        return {
            "font.family": self.family,
            "font.serif": serif,
            "font.sans-serif": sans,
            "font.size": self.font_pt,
            "axes.titlesize": self.font_pt,
            "axes.labelsize": self.font_pt,
            "figure.titlesize": self.font_pt * 1.15,
            "xtick.labelsize": self.font_pt * 0.85,
            "ytick.labelsize": self.font_pt * 0.85,
            "legend.fontsize": self.font_pt * 0.85,
            "lines.linewidth": self.line_width,
            "axes.linewidth": self.line_width * 0.6,
            "xtick.major.width": self.line_width * 0.6,
            "ytick.major.width": self.line_width * 0.6,
            "mathtext.fontset": "dejavuserif" if self.family == "serif" else "dejavusans",
            # reproducible and editable output: text stays text in SVG, fonts embedded as Type 42
            "svg.fonttype": "none",
            "svg.hashsalt": "convscope",
            "pdf.fonttype": 42,
            "image.interpolation": "nearest",
            "image.resample": False,
            "savefig.facecolor": "white",
            "figure.facecolor": "white",
        }


STYLES: dict[str, Style] = {
    "paper": Style("paper", "serif", 8.0, 3.5, None, 300.0, 1.0),
    "slide": Style("slide", "sans-serif", 16.0, 10.0, 5.625, 192.0, 2.0),
}


def get_style(name: str | Style) -> Style:
    """The preset called `name` (a Style passes through); one clear error for an unknown name."""
    if isinstance(name, Style):
        return name
    try:
        return STYLES[str(name)]
    except KeyError:
        raise EngineError(f"unknown figure style {name!r}: choose {' or '.join(STYLES)}") from None
