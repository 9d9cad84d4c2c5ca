"""The sanity-check figure (Adebayo et al. 2018, their Fig. 2 and 4): `export sanity` and the GUI's dialog.

A row of maps from the original model's to the fully random one's, each |map| normalized to
[0, 1] on its own (as the paper shows them: what matters is where the map points, not its
scale), labelled with the layer re-initialized at that step; under it the three similarity
measures against the original map per step (Spearman rank correlation of |map|, SSIM, HOG
correlation) as one curve with three lines, and the verdict as the caption. Pure: a
SanityResult in, a FigureSpec out (no TensorFlow, no matplotlib).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from engine.common import SEP
from engine.plot.attribution import CAM_LABELS, SALIENCY_LABELS, _rgb, _target_text
from engine.plot.spec import Curve, FigureSpec, Panel

CMAP = "viridis"
MAX_COLS = 10  # more steps wrap onto further rows


def method_label(method: str) -> str:
    key = str(method).lower()
    return CAM_LABELS.get(key, SALIENCY_LABELS.get(key, str(method)))


def _unit(m: np.ndarray) -> np.ndarray:
    a = np.abs(np.nan_to_num(np.asarray(m, np.float32)))
    top = float(a.max()) if a.size else 0.0
    return a / top if top > 0 else a


def _two(value: float) -> str:
    """A correlation with two decimals and a true minus sign."""
    return f"{float(value):.2f}".replace("-", "−")


def _short(path: str) -> str:
    return str(path).rsplit(SEP, 1)[-1]


def sanity_figure(photo: np.ndarray, result: Any, model_name: str, image_name: str = "") -> FigureSpec:
    """The figure of a SanityResult (engine.attribution.sanity): photo, one |map| per step, the curve."""
    steps = list(result.steps)
    n = len(steps)
    cascade = result.order == "cascade"
    panels = [Panel(_rgb(photo), "photo")]
    for k, (step, m) in enumerate(zip(steps, result.maps)):
        label = "original" if k == 0 else _short(step)
        note = "" if k == 0 else f"ρ {_two(result.spearman[k])}"
        panels.append(Panel(_unit(m), label, CMAP, 0.0, 1.0, note=note))
    total = len(panels)
    rows = math.ceil(total / MAX_COLS)
    cols = math.ceil(total / rows)
    x = np.arange(n, dtype=np.float64)
    curve = Curve(
        x=x,
        ys=(
            ("Spearman |map|", np.asarray(result.spearman, np.float64)),
            ("SSIM", np.asarray(result.ssim, np.float64)),
            ("HOG", np.asarray(result.hog, np.float64)),
        ),
        xlabel="layers randomized, top down" if cascade else "layer randomized alone (step)",
        ylabel="similarity",
    )
    label = method_label(result.method)
    head = f"{model_name} · {label} sanity check ({result.order})"
    at = f" at {result.layer}" if getattr(result, "layer", None) else ""
    what = _target_text(result.target_name, result.target)
    sub = f"{image_name + ' → ' if image_name else ''}{what}{at}, seed {result.seed}"
    how = (
        "Each map re-initializes its layer and every layer above it."
        if cascade
        else "Each map re-initializes only its layer."
    )
    words = re.sub(r"(?<![\w.])-(?=\d)", "−", result.verdict)
    caption = (
        f"{words[0].upper()}{words[1:]}. {how} "
        f"Maps are |map| scaled to [0, 1] each; ρ = Spearman rank correlation with the original."
    )
    return FigureSpec(
        kind="sanity",
        title=f"{head}\n{sub}",
        panels=tuple(panels),
        cols=cols,
        curve=curve,
        caption=caption,
        settings={"rows": rows},  # the sidecar's own "steps", "passed" come from the result
    )


def maps_row(result: Any, photo: np.ndarray | None = None) -> np.ndarray:
    """The raw image of `export sanity --raw`: the |maps| side by side in the colormap, uint8 RGB,
    with the photo first when given."""
    from engine import render

    images = [render.apply_colormap(_unit(m), CMAP) for m in result.maps]
    if photo is not None:
        images.insert(0, render.to_uint8(_rgb(photo)))
    return render.tile(images, cols=len(images))
