"""Grouped bar charts as PNG bytes (matplotlib Agg): one panel per measure, bars per group and series.

FigureSpec draws maps and one curve, not bars, so dataset-level score tables (engine.attribution
.evaluate: methods x mappings) are drawn here. The bytes depend only on the arguments (fixed
PNG metadata through engine.plot.save.render_figure), so the same table gives the same file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.errors import EngineError
from engine.plot.style import get_style

__all__ = ["BarPanel", "bar_chart"]

# Okabe-Ito colours: distinguishable with colour-blindness and in greyscale print
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


@dataclass(frozen=True)
class BarPanel:
    """One measure: values[series][group] (None or NaN: no bar, "n/a" written), its y range and
    which way is better ("higher" / "lower" / "": shown after the title), and the value format."""

    title: str
    values: tuple[tuple[float | None, ...], ...]
    limits: tuple[float, float] | None = None
    better: str = ""
    fmt: str = "{:.2f}"


def _missing(v: float | None) -> bool:
    return v is None or not math.isfinite(float(v))


def bar_chart(
    panels: Sequence[BarPanel],
    groups: Sequence[str],
    series: Sequence[str],
    title: str = "",
    *,
    style: str = "paper",
    width_in: float | None = None,
    dpi: float | None = None,
    cols: int | None = None,
) -> bytes:
    """PNG bytes of `panels` side by side (`cols` per row), each with a bar per series in each group.

    groups: the x-axis categories (methods); series: the bars within a group (mappings), one
    colour each, named in one legend. Every bar carries its value (fmt) above it.
    """
    if not panels or not groups or not series:
        raise EngineError("a bar chart needs at least one panel, group and series")
    for panel in panels:
        if len(panel.values) != len(series) or any(len(v) != len(groups) for v in panel.values):
            raise EngineError(
                f"panel {panel.title!r}: values must be [series][group], {len(series)}x{len(groups)}"
            )
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from engine.plot.save import render_figure

    st = get_style(style)
    cols = max(1, min(int(cols or len(panels)), len(panels)))
    rows = math.ceil(len(panels) / cols)
    width = float(width_in or max(st.width_in, 1.9 * cols))
    height = 2.0 * rows * (st.font_pt / 8.0) ** 0.5 + 0.5
    with matplotlib.rc_context(st.rc()):
        fig = Figure(figsize=(width, height), dpi=float(dpi or st.dpi))
        axes = fig.subplots(rows, cols, squeeze=False)
        n, k = len(groups), len(series)
        bar_w = 0.8 / k
        for i, ax in enumerate(axes.flat):
            if i >= len(panels):
                ax.axis("off")
                continue
            panel = panels[i]
            lo, hi = panel.limits if panel.limits else (0.0, _top(panel))
            for s, name in enumerate(series):
                for g in range(n):
                    x = g - 0.4 + bar_w * (s + 0.5)
                    v = panel.values[s][g]
                    if _missing(v):
                        ax.text(
                            x, lo, "n/a", ha="center", va="bottom", rotation=90, fontsize=st.font_pt * 0.6
                        )
                        continue
                    ax.bar(
                        x,
                        float(v),
                        bar_w * 0.92,
                        color=PALETTE[s % len(PALETTE)],
                        label=name if g == 0 else None,
                    )
                    ax.text(
                        x,
                        float(v) + 0.01 * (hi - lo),
                        panel.fmt.format(float(v)),
                        ha="center",
                        va="bottom",
                        rotation=90 if k * n > 4 else 0,
                        fontsize=st.font_pt * 0.6,
                    )
            ax.set_ylim(lo, hi + 0.18 * (hi - lo))
            ax.set_xticks(range(n))
            tilt = n > 2 or max(len(g) for g in groups) * n > 24
            ax.set_xticklabels(groups, rotation=30 if tilt else 0, ha="right" if tilt else "center")
            if tilt:
                for label in ax.get_xticklabels():
                    label.set_rotation_mode("anchor")
            ax.set_xlim(-0.6, n - 0.4)
            arrow = {"higher": " (higher better)", "lower": " (lower better)"}.get(panel.better, "")
            ax.set_title(panel.title + arrow)
            ax.spines[["top", "right"]].set_visible(False)
        if title:
            fig.suptitle(title)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        spare = len(panels) < rows * cols  # an empty cell holds the legend
        bottom = 0.0
        if k > 1 and handles and spare:
            axes.flat[-1].legend(handles, labels, loc="center", frameon=False, title="mapping")
        elif k > 1 and handles:
            fig.legend(handles, labels, loc="lower center", ncol=k, frameon=False)
            bottom = 0.3 / height
        fig.tight_layout(rect=(0, bottom, 1, 1))
        fig._convscope_style = st  # noqa: SLF001 - render_figure draws with the same rcParams
    return render_figure(fig, "png")


def _top(panel: BarPanel) -> float:
    vals = [float(v) for row in panel.values for v in row if not _missing(v)]
    top = max(vals, default=1.0)
    return top if top > 0 else 1.0
