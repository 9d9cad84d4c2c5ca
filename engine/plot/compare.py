"""The method-comparison figure: `export compare` and the Attribution tab's Compare view.

The photo once (with the object box when one was given), then one panel per method: its map's
positive part over the photo, each scaled to its own maximum (the methods' maps have different
units; what is compared is where they point), labelled with the method and, under it, its
scores: deletion and insertion AUC, the pointing game and energy share for the box, and the
sanity-check verdict with its rank correlation. Pure: a CompareResult in, a FigureSpec out (no
TensorFlow, no matplotlib); `rows_image` is the raw export's array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.attribution.metrics import TOLERANCE
from engine.plot.attribution import _rgb, _target_text, prob
from engine.plot.spec import FigureSpec, Panel

CMAP = "viridis"
ALPHA = 0.55
BOX_COLOUR = (255, 64, 32)


def _two(value: float) -> str:
    """Two decimals with a true minus sign."""
    return f"{float(value):.2f}".replace("-", "−")


def score_lines(row: Any) -> list[str]:
    """The note under a method's panel: "del 0.12 · ins 0.81", "pointing hit · E 0.64",
    "sanity: passes ρ 0.21" (lines without a value are left out)."""
    lines = [f"del {_two(row.deletion.auc)} · ins {_two(row.insertion.auc)}"]
    if row.pointing is not None:
        mark = "hit" if row.pointing else "miss"  # words: the paper font has no check mark
        energy = f" · E {_two(row.energy)}" if row.energy is not None else ""
        lines.append(f"pointing {mark}{energy}")
    if row.sanity_passed is not None:
        word = "passes" if row.sanity_passed else "fails"
        lines.append(f"sanity: {word} ρ {_two(row.sanity_rho)}")
    elif row.sanity_verdict:
        lines.append("sanity: not checked")
    return lines


def _photo_panel(photo: np.ndarray, box: Any) -> np.ndarray:
    from engine import render

    rgb = render.to_uint8(_rgb(photo))
    if box is None:
        return rgb
    width = max(1, round(max(rgb.shape[:2]) / 100))
    return render.draw_box(rgb, tuple(box), BOX_COLOUR, width)


def _overlay(photo: np.ndarray, row: Any) -> np.ndarray:
    from engine.attribution.figures import overlay

    return overlay(photo, row.positive, "relu", CMAP, ALPHA)


def compare_figure(
    photo: np.ndarray, result: Any, model_name: str, image_name: str = "", cols: int | None = None
) -> FigureSpec:
    """The figure of a CompareResult (engine.attribution.compare): the photo, then a panel per
    method with its scores and sanity verdict. cols: panels per row; None lets the layout choose
    (about square: 3 for the photo and all eight methods; on a fixed-height slide, the columns
    that make the panels largest)."""
    probability = _probability(result)
    what = _target_text(result.target_name, result.target)
    photo_note = "red: object box" if result.box is not None else ""
    panels = [Panel(_photo_panel(photo, result.box), "photo", note=photo_note)]
    for row in result.rows:
        panels.append(Panel(_overlay(photo, row), row.label, note="\n".join(score_lines(row))))
    n = len(panels)
    cols = max(1, min(int(cols), n)) if cols else None
    head = f"{model_name} · attribution methods compared"
    sub = f"{image_name + ' → ' if image_name else ''}{what}{probability}"
    if result.layer:
        sub += f"\nCAM layer {result.layer}, {result.mapping} mapping"
    return FigureSpec(
        kind="compare",
        title=f"{head}\n{sub}",
        panels=tuple(panels),
        cols=cols,
        caption=_caption(result),
        settings={"panels": n, **({"cols": cols} if cols else {})},
    )


def _probability(result: Any) -> str:
    p = getattr(result, "probability", None)
    return "" if p is None else f", p {prob(p)}"


def _caption(result: Any) -> str:
    parts = [
        "Each map's positive part over the photo, scaled to its own maximum; the scores rank the "
        "method's own map (signed where the method is).",
        f"del / ins: deletion / insertion AUC ({result.baseline} baseline, {result.steps} steps; "
        "lower del and higher ins are better).",
    ]
    if any(r.pointing is not None for r in result.rows):
        parts.append(
            f"pointing: a hit when the map's peak lies within {TOLERANCE:g} px of the box; "
            "E: share of the map's positive mass inside it."
        )
    if result.sanity:
        parts.append(
            "sanity: cascading model randomization (Adebayo et al. 2018); a map passes when its Spearman "
            "rank correlation ρ with the original falls below 0.5 with every layer random."
        )
    return " ".join(parts)


def rows_image(photo: np.ndarray, result: Any) -> np.ndarray:
    """The raw image of `export compare --raw`: a row per method of its overlay and its map
    (|positive part| scaled to [0, 1] in the colormap), labelled; uint8 RGB."""
    from engine import render

    images, titles = [], []
    for row in result.rows:
        pos = row.positive
        top = float(pos.max()) if pos.size else 0.0
        images += [_overlay(photo, row), render.apply_colormap(pos / top if top > 0 else pos, CMAP)]
        titles += [row.label, "map"]
    return render.tile(images, cols=2, titles=titles)
