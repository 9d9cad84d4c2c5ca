"""Draw a FigureSpec with matplotlib (Agg, no Qt): title, a grid of panels, colour bar, curve, caption.

The layout is computed in inches, so a figure has exactly the size asked for: with a height
given, the panels shrink to fit it; without one, the height follows from the width and the
panels' aspect (a "paper" figure is as tall as its content). Raster panels are upsampled by an
integer factor with nearest neighbour to about the pixels they cover, so cells stay crisp in
PNG and in the rasters a PDF or SVG embeds; text stays text in vector output (style.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.plot.size import FigureSize, parse_size
from engine.plot.spec import ColorBar, FigureSpec, Panel
from engine.plot.style import Style, get_style

PT = 1 / 72  # inches per point
TICK_SCALE = 0.7  # tick labels of a panel (a heatmap's classes and units), relative to the body text
MAX_UPSAMPLE_PX = 4096  # a panel's raster is upsampled to at most this many pixels a side


def mpl_colormap(name: str) -> Any:
    """A matplotlib colormap: the engine's own tables for its names (the screen's exact colours),
    else matplotlib's registry."""
    import matplotlib
    from matplotlib.colors import ListedColormap

    from engine import render

    if name in render.COLORMAPS:
        return ListedColormap(render.colormap(name).astype(np.float64) / 255.0, name=f"convscope_{name}")
    return matplotlib.colormaps[name]


@dataclass(frozen=True)
class _Layout:
    """Where everything goes, in inches from the top-left corner of the figure."""

    width: float
    height: float
    title_lines: list[str]
    caption_lines: list[str]
    title_pt: float
    caption_pt: float
    rows: int
    cols: int
    cell_w: float  # one panel's image width
    cell_h: float  # one panel's image height
    label_h: float  # the text above each panel
    label_pt: float  # its font size (smaller when the cells are narrow)
    xtick_h: float  # room under each row for column labels (rotated)
    ytick_w: float  # room left of the grid for row labels
    grid_top: float
    grid_left: float  # where the first panel starts (after ytick_w)
    gap: float
    cbar: tuple[float, float, float, float] | None  # left, top, width, height
    curve: tuple[float, float, float, float] | None

    def panel_origin(self, k: int) -> tuple[float, float]:
        """Left and top of panel k's image cell."""
        r, c = divmod(k, self.cols)
        left = self.grid_left + c * (self.cell_w + self.gap)
        top = self.grid_top + r * (self.cell_h + self.label_h + self.xtick_h + self.gap) + self.label_h
        return left, top


def _text_width_in(text: str, font_pt: float, bold: bool) -> float:
    """The width of `text` in inches as matplotlib will draw it (the current rcParams' font)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    prop = FontProperties(size=font_pt, weight="bold" if bold else "normal")
    width, _, _ = text_to_path.get_text_width_height_descent(text, prop, ismath=False)
    return width * PT  # points to inches


def _wrap(text: str, width_in: float, font_pt: float, bold: bool = False) -> list[str]:
    """The lines `text` breaks into, greedily at spaces, so that each fits width_in when drawn at
    font_pt (a single word wider than that stays whole: see _fit_text)."""
    if not text:
        return []
    lines: list[str] = []
    for part in text.split("\n"):
        line = ""
        for word in part.split(" "):
            trial = f"{line} {word}" if line else word
            if line and _text_width_in(trial, font_pt, bold) > width_in:
                lines.append(line)
                trial = word
            line = trial
        lines.append(line)
    return lines


def _fit_text(text: str, width_in: float, font_pt: float, bold: bool = False) -> tuple[list[str], float]:
    """Wrapped lines and the font size they fit at: font_pt, or smaller (to 60 %) when one word
    (a long source spec, a path) is wider than the line."""
    size = font_pt
    lines = _wrap(text, width_in, size, bold)
    while size > 0.6 * font_pt and any(_text_width_in(t, size, bold) > width_in for t in lines):
        size *= 0.92
        lines = _wrap(text, width_in, size, bold)
    return lines, size


def _panel_aspect(spec: FigureSpec) -> float:
    """Height over width of the panels' images (the largest, so every panel fits its cell)."""
    aspects = [p.image.shape[0] / max(1, p.image.shape[1]) for p in spec.panels]
    return max(aspects) if aspects else 1.0


def _cols(spec: FigureSpec) -> int:
    n = len(spec.panels)
    if spec.cols:
        return max(1, min(int(spec.cols), n))
    return max(1, math.ceil(math.sqrt(n)))


def _tick_room(labels: list[str], font_pt: float) -> float:
    """Inches for tick labels of up to this many characters at font_pt (0 without labels)."""
    longest = max((len(t) for t in labels), default=0)
    return longest * 0.6 * font_pt * PT + 0.06 if longest else 0.0


def layout(spec: FigureSpec, style: Style, size: FigureSize, cols: int | None = None) -> _Layout:
    """Place title, panels, colour bar, curve and caption for this width (and height, if given).

    Without spec.cols the grid is about square; with a fixed height (a 16:9 slide) the number of
    columns that makes the panels largest wins instead.
    """
    n = len(spec.panels)
    if cols is None and not spec.cols and size.height_in is not None and n > 1:
        best = max(range(1, n + 1), key=lambda c: (round(layout(spec, style, size, c).cell_w, 4), -c))
        return layout(spec, style, size, best)
    f = style.font_pt
    width = size.width_in
    margin = 0.06 + 0.25 * f * PT * 4
    title_lines, title_pt = _fit_text(spec.title, width - 2 * margin, f * 1.15, bold=True)
    caption_lines, caption_pt = _fit_text(spec.caption, width - 2 * margin, f * 0.85)
    title_h = len(title_lines) * title_pt * 1.35 * PT + (0.5 * f * PT if title_lines else 0)
    caption_h = len(caption_lines) * caption_pt * 1.35 * PT + (0.4 * f * PT if caption_lines else 0)
    cols = (cols or _cols(spec)) if n else 1
    rows = math.ceil(n / cols) if n else 0
    tick_pt = f * TICK_SCALE
    ytick_w = _tick_room([t for p in spec.panels for t in p.yticks], tick_pt)
    xtick_h = _tick_room([t for p in spec.panels for t in p.xticks], tick_pt)
    gap = max(0.04, 0.35 * f * PT * 2)
    cbar_w = (
        (0.12 + 4.2 * f * 0.85 * PT + (1.4 * f * PT if spec.colorbar and spec.colorbar.label else 0))
        if spec.colorbar
        else 0.0
    )
    grid_w = width - 2 * margin - cbar_w - ytick_w
    cell_w = (grid_w - (cols - 1) * gap) / cols if rows else 0.0
    # panel labels: at most the body's 0.85, shrunk (to 5 pt) so the longest line fits its cell
    texts = [line for p in spec.panels for line in _panel_text(p).split("\n") if line]
    longest = max((len(t) for t in texts), default=0)
    label_pt = f * 0.85 if not longest else max(5.0, min(f * 0.85, cell_w / (longest * 0.55 * PT)))
    lines = max((len(_panel_text(p).split("\n")) for p in spec.panels if _panel_text(p)), default=0)
    label_h = lines * label_pt * 1.3 * PT
    curve_h_wanted = (min(0.42 * width, 2.6) if rows else width * 0.55) if spec.curve is not None else 0.0
    curve_pad = 3.2 * f * PT if spec.curve is not None else 0.0  # tick labels and axis label below
    aspect = _panel_aspect(spec)
    cell_h = cell_w * aspect
    pitch_extra = label_h + xtick_h  # text above and below each row of images
    curve_h_fixed = curve_h_wanted  # the part of `fixed` that is the curve's own height
    fixed = (
        margin + title_h + caption_h + margin * 0.5 + (curve_h_wanted + curve_pad + gap if spec.curve else 0)
    )
    grid_h = rows * (cell_h + pitch_extra) + max(0, rows - 1) * gap
    if size.height_in is None:
        height = fixed + grid_h
    else:
        height = size.height_in
        room = height - fixed
        if rows and spec.curve is not None and room < grid_h:  # panels and curve share the height:
            both = room + curve_h_wanted  # the curve gets at most 40 % of it (it needs less detail)
            curve_h_wanted = max(0.3, min(curve_h_wanted, 0.4 * both, both - grid_h))
            room = both - curve_h_wanted
        if rows and room < grid_h:  # shrink the panels to the room left
            cell_h = max(0.05, (room - (rows - 1) * gap) / rows - pitch_extra)
            cell_w = cell_h / aspect
            if longest:  # narrower cells: smaller labels, so neighbours do not overlap
                label_pt = max(5.0, min(label_pt, cell_w / (longest * 0.55 * PT)))
                label_h = lines * label_pt * 1.3 * PT
        elif not rows and spec.curve is not None:
            curve_h_wanted = max(0.3, height - fixed + curve_h_wanted)
    grid_w_used = cols * cell_w + (cols - 1) * gap if rows else 0.0
    grid_left = margin + ytick_w + max(0.0, (grid_w - grid_w_used) / 2)
    grid_top = margin * 0.5 + title_h
    grid_h = rows * (cell_h + pitch_extra) + max(0, rows - 1) * gap
    if size.height_in is not None and spec.curve is not None and rows:  # the curve takes what is left
        curve_h_wanted = max(curve_h_wanted, height - (fixed - curve_h_fixed) - grid_h)
    cbar = None
    if spec.colorbar is not None:
        bar_h = grid_h - pitch_extra if rows else min(2.0, curve_h_wanted)
        cbar = (grid_left + grid_w_used + gap * 1.5, grid_top + label_h, 0.09 + 0.4 * f * PT, max(0.2, bar_h))
    curve = None
    if spec.curve is not None:
        left_pad = 5.5 * f * 0.85 * PT
        top = grid_top + grid_h + (gap + 0.6 * f * PT if rows else 0)
        curve = (margin + left_pad, top, width - 2 * margin - left_pad, curve_h_wanted)
    return _Layout(
        width,
        height,
        title_lines,
        caption_lines,
        title_pt,
        caption_pt,
        rows,
        cols,
        cell_w,
        cell_h,
        label_h,
        label_pt,
        xtick_h,
        ytick_w,
        grid_top,
        grid_left,
        gap,
        cbar,
        curve,
    )


def _crisp(image: np.ndarray, px_w: float) -> tuple[np.ndarray, int]:
    """Upsample by the integer factor that brings the image to about px_w pixels wide (nearest);
    returns the image and the factor."""
    w = image.shape[1]
    factor = int(
        max(1, min(px_w / max(1, w), MAX_UPSAMPLE_PX / max(1, w), MAX_UPSAMPLE_PX / max(1, image.shape[0])))
    )
    if factor <= 1:
        return image, 1
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1), factor


def _as_displayable(panel: Panel) -> tuple[np.ndarray, dict[str, Any]]:
    img = np.asarray(panel.image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        cmap = mpl_colormap(panel.cmap or "gray")
        vmin = panel.vmin if panel.vmin is not None else float(np.nanmin(img)) if img.size else 0.0
        vmax = panel.vmax if panel.vmax is not None else float(np.nanmax(img)) if img.size else 1.0
        return img.astype(np.float32), {"cmap": cmap, "vmin": vmin, "vmax": vmax}
    if img.dtype != np.uint8:
        img = np.clip(np.nan_to_num(img.astype(np.float32)), 0.0, 1.0)
    return img, {}


def _panel_text(panel: Panel) -> str:
    second = " ".join(t for t in (panel.note, f"×{panel.gain:.3g}" if panel.gain is not None else "") if t)
    return "\n".join(t for t in (panel.label, second) if t)


def compose(spec: FigureSpec, style: str | Style = "paper", size: FigureSize | None = None) -> Any:
    """The matplotlib Figure of `spec` at `size` (default: the style's) in `style`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    st = get_style(style)
    size = size or parse_size(style=st.name)
    with matplotlib.rc_context(st.rc()):
        lay = layout(spec, st, size)
        fig = Figure(figsize=(lay.width, lay.height), dpi=size.dpi)

        def axes(left: float, top: float, w: float, h: float) -> Any:
            return fig.add_axes((left / lay.width, 1 - (top + h) / lay.height, w / lay.width, h / lay.height))

        f = st.font_pt
        if lay.title_lines:
            fig.text(
                0.5,
                1 - (0.5 * f * PT + 0.06) / lay.height,
                "\n".join(lay.title_lines),
                ha="center",
                va="top",
                fontsize=lay.title_pt,
                fontweight="bold",
                linespacing=1.25,
            )
        for k, panel in enumerate(spec.panels):
            left, top = lay.panel_origin(k)
            img, kw = _as_displayable(panel)
            aspect = img.shape[0] / max(1, img.shape[1])
            h = min(lay.cell_h, lay.cell_w * aspect)
            w = h / aspect if aspect > 0 else lay.cell_w
            ax = axes(left + (lay.cell_w - w) / 2, top, w, h)
            ax.set_label(f"panel {k}")
            crisp, factor = _crisp(img, w * size.dpi)
            ax.imshow(crisp, interpolation="nearest", resample=False, **kw)
            _ticks(ax, panel, img.shape[:2], factor, f)
            for side in ax.spines.values():
                side.set_linewidth(0.4)
            text = _panel_text(panel)
            if text:
                ax.set_title(text, fontsize=lay.label_pt, pad=2, linespacing=1.15)
        if spec.colorbar is not None and lay.cbar is not None:
            cax = axes(*lay.cbar)
            cax.set_label("colorbar")  # tests and callers find the axes by label
            _colorbar(fig, cax, spec.colorbar, ScalarMappable, Normalize)
        if spec.curve is not None and lay.curve is not None:
            ax = axes(*lay.curve)
            ax.set_label("curve")
            for label, ys in spec.curve.ys:
                ax.plot(np.asarray(spec.curve.x)[: len(ys)], np.asarray(ys, np.float64), label=label or None)
            x = np.asarray(spec.curve.x)
            if x.size and np.all(np.equal(np.mod(x, 1), 0)):  # steps: whole numbers on the axis
                from matplotlib.ticker import MaxNLocator

                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(spec.curve.xlabel)
            ax.set_ylabel(spec.curve.ylabel)
            ax.spines[["top", "right"]].set_visible(False)
            if any(label for label, _ in spec.curve.ys) and len(spec.curve.ys) > 1:
                ax.legend(frameon=False)
        if lay.caption_lines:
            fig.text(
                0.5,
                (0.06 + 0.2 * f * PT) / lay.height,
                "\n".join(lay.caption_lines),
                ha="center",
                va="bottom",
                fontsize=lay.caption_pt,
                linespacing=1.25,
            )
    fig._convscope_style = st  # noqa: SLF001 - save.py renders with the same rcParams
    return fig


def _ticks(ax: Any, panel: Panel, shape: tuple[int, int], factor: int, font_pt: float) -> None:
    """Label the rows/columns of a panel (a heatmap's classes and units), or hide the ticks."""
    rows, cols = shape
    for labels, n, set_ticks, axis in (
        (panel.xticks, cols, ax.set_xticks, "x"),
        (panel.yticks, rows, ax.set_yticks, "y"),
    ):
        if labels and len(labels) == n:
            set_ticks((np.arange(n) + 0.5) * factor - 0.5, list(labels), fontsize=font_pt * TICK_SCALE)
            ax.tick_params(axis=axis, length=0, labelrotation=90 if axis == "x" else 0)
        else:
            set_ticks([])


def _colorbar(fig: Any, cax: Any, bar: ColorBar, ScalarMappable: Any, Normalize: Any) -> None:
    mappable = ScalarMappable(norm=Normalize(vmin=bar.vmin, vmax=bar.vmax), cmap=mpl_colormap(bar.cmap))
    cb = fig.colorbar(mappable, cax=cax)
    cb.outline.set_linewidth(0.4)
    if bar.label:
        cb.set_label(bar.label)
