"""The size a figure is drawn at: inches and DPI, parsed from "3.5x2.5in", "1200x800px" or a width in px."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import EngineError
from engine.plot.style import get_style

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[x×]\s*(\d+(?:\.\d+)?)\s*(in|px)?\s*$", re.IGNORECASE)
MAX_PIXELS = 20000  # per side: larger asks are a typo, not a figure


@dataclass(frozen=True)
class FigureSize:
    """width_in x height_in inches at dpi; height_in None means "from the figure's layout"."""

    width_in: float
    height_in: float | None
    dpi: float

    @property
    def pixels(self) -> tuple[int, int] | None:
        """(width, height) in pixels when both sides are known."""
        if self.height_in is None:
            return None
        return round(self.width_in * self.dpi), round(self.height_in * self.dpi)


def parse_size(
    size: str | None = None, dpi: float | None = None, width: int | None = None, style: str = "paper"
) -> FigureSize:
    """The figure size from the CLI's --size WxH[in|px] (inches without a unit), --dpi and --width PX.

    With neither size nor width the style's default applies (paper: 3.5 in wide, the height from
    the layout; slide: 10 × 5.625 in). Pixel sizes are exact at the given (or the style's) DPI.
    """
    st = get_style(style)
    if dpi is not None and not (10 <= float(dpi) <= 2400):
        raise EngineError(f"--dpi {dpi}: use a value between 10 and 2400")
    d = float(dpi) if dpi is not None else st.dpi
    if size is not None and width is not None:
        raise EngineError("give --size or --width, not both")
    if width is not None:
        if not (16 <= int(width) <= MAX_PIXELS):
            raise EngineError(f"--width {width}: use 16 to {MAX_PIXELS} pixels")
        return FigureSize(int(width) / d, None, d)
    if size is None:
        return FigureSize(st.width_in, st.height_in, d)
    m = _SIZE.match(str(size))
    if not m:
        raise EngineError(
            f"--size {size!r}: write WxH in inches (3.5x2.5 or 3.5x2.5in) or pixels (1200x800px)"
        )
    w, h, unit = float(m.group(1)), float(m.group(2)), (m.group(3) or "in").lower()
    if unit == "px":
        if not (16 <= w <= MAX_PIXELS and 16 <= h <= MAX_PIXELS):
            raise EngineError(f"--size {size}: each side 16 to {MAX_PIXELS} pixels")
        return FigureSize(w / d, h / d, d)
    if not (0.5 <= w <= 100 and 0.5 <= h <= 100):
        raise EngineError(f"--size {size}: each side 0.5 to 100 inches")
    return FigureSize(w, h, d)
