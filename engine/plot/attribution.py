"""Figures of attribution maps: `export cam|saliency` and the Attribution tab's Export View.

Pure functions from computed maps to a FigureSpec (no file I/O, no TensorFlow, no matplotlib):

- cam_figure: per target a row of the photo, the map laid over it (the same pixels as the raw
  export) and the map itself on a colour bar of its real values; with a second target
  ("compare") a second row on the same scale, so the two maps can be compared by eye.
- saliency_figure: the photo, the overlay and the map with its colour bar (diverging and
  centred on 0 for signed maps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from engine.plot.spec import ColorBar, FigureSpec, Panel

CAM_LABELS = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "layercam": "Layer-CAM",
    "scorecam": "Score-CAM",
    "eigencam": "Eigen-CAM",
}
SALIENCY_LABELS = {
    "gradient": "Gradient",
    "smoothgrad": "SmoothGrad",
    "integrated": "Integrated Gradients",
    "grad_x_input": "Gradient × Input",
}
SALIENCY_UNITS = {  # the colour bar's label: what a map's values are (short: the bar may be short)
    "gradient": "|gradient|",
    "smoothgrad": "mean |gradient|",
    "integrated": "attribution",
    "grad_x_input": "grad × input",
}
DIVERGING = "signed"  # engine.render's blue-grey-red, the same colours as the signed overlay


def source_name(spec: str | None) -> str:
    """A short name for a model or image spec: builtin:shape_star -> shape_star, /a/b/photo.png -> photo.png."""
    if not spec:
        return ""
    text = str(spec)
    if text.startswith(("builtin:", "keras:")):
        return text.split(":", 1)[1].split("?", 1)[0]
    return PurePath(text).name or text


def num(value: float) -> str:
    """A value as a figure shows it: 3 significant digits, a true minus sign."""
    text = f"{float(value):.3g}"
    return text.replace("-", "−") if text.startswith("-") else text


def _rgb(photo: np.ndarray) -> np.ndarray:
    """A photo as (H, W, 3) float [0, 1] or uint8 (grey photos repeated to RGB)."""
    p = np.asarray(photo)
    if p.ndim == 2:
        p = p[:, :, None]
    if p.shape[2] == 1:
        p = np.repeat(p, 3, axis=2)
    p = p[:, :, :3]
    if np.issubdtype(p.dtype, np.floating):
        p = np.clip(np.nan_to_num(p.astype(np.float32)), 0.0, 1.0)
    return np.ascontiguousarray(p)


def value_scale(maps: Sequence[np.ndarray], signed: bool) -> tuple[float, float]:
    """The colour bar of value maps: their min..max, or ±max|value| centred on 0 when signed."""
    finite = [np.asarray(m, np.float64)[np.isfinite(m)] for m in maps]
    finite = [f for f in finite if f.size]
    if not finite:
        return (-1.0, 1.0) if signed else (0.0, 1.0)
    lo = min(float(f.min()) for f in finite)
    hi = max(float(f.max()) for f in finite)
    if signed:
        top = max(abs(lo), abs(hi)) or 1.0
        return -top, top
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def prob(probability: float) -> str:
    """A probability with 3 significant digits (0.998, not a rounded 1.00); tiny ones as <0.001."""
    p = float(probability)
    return "<0.001" if 0 <= p < 0.001 else f"{p:.3g}"


@dataclass(frozen=True)
class Look:
    """How a map is drawn over its photo (the overlay's options, shared by cam_figure and
    saliency_figure): the colour map, the map's opacity and how far the photo is dimmed under it
    (None: engine.attribution.figures.DIM)."""

    cmap: str = "viridis"
    alpha: float = 0.5
    dim: float | None = None

    def overlay(
        self, photo: np.ndarray, heat: np.ndarray, style: str, scale: float | None = None
    ) -> np.ndarray:
        """engine.attribution.figures.overlay with this look (the raw export's pixels)."""
        from engine.attribution.figures import DIM, overlay

        return overlay(
            photo, heat, style, self.cmap, self.alpha, DIM if self.dim is None else self.dim, scale
        )


def _target_text(name: str | None, index: Any) -> str:
    if name and str(name) != str(index):
        return f"{name} ({index})"
    return str(index)


def cam_figure(
    photo: np.ndarray,
    results: Sequence[Any],
    method: str,
    layer: str,
    model_name: str,
    image_name: str = "",
    style: str = "relu",
    coarse: bool = False,
    look: Look = Look(),
) -> FigureSpec:
    """The CAM figure of one or two targets (engine.attribution.cam.CamResult each: heatmap,
    heatmap_relu, cam, target, target_name, score (logit), probability).

    A row per target: the photo, the map over it (engine.attribution.figures.overlay, the raw
    export's pixels) and the map's real values (relu style: the ReLU map on `cmap`; signed: the
    signed map, diverging around 0), plus with `coarse` the layer's own cells. All maps share one
    colour bar, as `--compare` shares one scale. look: the overlay's cmap, alpha and dim.
    """
    from engine.attribution.figures import map_scale

    results = list(results)
    if not results:
        raise ValueError("cam_figure needs at least one result")
    signed = style == "signed"
    cmap = look.cmap
    label = CAM_LABELS.get(str(method).lower(), str(method))
    heats = [np.asarray(r.heatmap if signed else r.heatmap_relu, np.float32) for r in results]
    cams = [np.asarray(r.cam if signed else np.maximum(r.cam, 0.0), np.float32) for r in results]
    lo, hi = value_scale(heats, signed)
    value_cmap = DIVERGING if signed else cmap
    scale = map_scale(heats, signed)
    # the coarse cells hold larger values than their smooth projection: drawn on the map's scale
    # with their gain shown (as value_panels does for maps normalized on their own)
    cell_top = map_scale(cams, signed)
    gain = max(abs(lo), abs(hi)) / cell_top if cell_top > 0 else 1.0
    rgb = _rgb(photo)
    one = len(results) == 1  # the title names the target and its score
    panels: list[Panel] = []
    for r, heat, cell_map in zip(results, heats, cams):
        score = "" if one else f"logit {num(r.score)}"
        panels.append(Panel(rgb, "photo" if one else _target_text(r.target_name, r.target), note=score))
        panels.append(Panel(look.overlay(photo, heat, style, scale), "overlay"))
        panels.append(Panel(heat, f"{'signed' if signed else 'ReLU'} map", value_cmap, lo, hi))
        if coarse:
            panels.append(Panel(cell_map * gain, "cells", value_cmap, lo, hi, gain=gain))
    first = results[0]
    head = f"{model_name} · {label} at {layer}"
    if len(results) == 1:
        what = _target_text(first.target_name, first.target)
        sub = f"{image_name + ' → ' if image_name else ''}{what}: logit {num(first.score)}, p {prob(first.probability)}"
    else:
        names = " vs ".join(_target_text(r.target_name, r.target) for r in results)
        sub = f"{image_name + ': ' if image_name else ''}{names}"
    field = getattr(first, "field", None)
    caption = f"{getattr(first, 'mapping', '')} projection of {first.cam.shape[0]}×{first.cam.shape[1]} cells"
    if field is not None:
        caption += f" (field {field.size[0]}×{field.size[1]} px, stride {field.stride[0]})"
    fast = (getattr(first, "settings", None) or {}).get("max_channels")
    if fast is not None:  # Score-CAM's fast mode: say so on the figure, not only in the sidecar
        share = f"{fast * 100:g} % of the channels" if fast < 1 else f"{fast:g} channels"
        caption += f"; fast mode: only the {share} whose maps vary most"
    if not one:
        scores = (
            f"{_target_text(r.target_name, r.target)} logit {num(r.score)}, p {prob(r.probability)}"
            for r in results
        )
        caption = "; ".join(scores) + ". " + caption[0].upper() + caption[1:]
    bar = ColorBar(value_cmap, lo, hi, f"{label} ({'signed' if signed else 'ReLU'})")
    return FigureSpec(
        kind="cam",
        title=f"{head}\n{sub}",
        panels=tuple(panels),
        cols=4 if coarse else 3,
        colorbar=bar,
        caption=caption.strip(),
        settings={"rows": len(results)},
    )


def saliency_figure(
    photo: np.ndarray,
    smap: np.ndarray,
    method: str,
    target: str,
    signed: bool,
    model_name: str = "",
    image_name: str = "",
    look: Look = Look(),
) -> FigureSpec:
    """The saliency figure: photo, the map over it, and the map on a colour bar of its real
    values (signed: diverging and centred on 0). target: what the map explains ("star (2)",
    "conv2:3", "conv2 (mean)"); look: the overlay's cmap, alpha and dim."""
    style = "signed" if signed else "relu"
    m = np.asarray(smap, np.float32)
    lo, hi = value_scale([m], signed)
    value_cmap = DIVERGING if signed else look.cmap
    label = SALIENCY_LABELS.get(str(method).lower(), str(method))
    panels = (
        Panel(_rgb(photo), "photo"),
        Panel(look.overlay(photo, m, style), "overlay"),
        Panel(m, "signed map" if signed else "map", value_cmap, lo, hi),
    )
    head = f"{model_name} · {label}" if model_name else label
    sub = f"{image_name + ' → ' if image_name else ''}{target}"
    return FigureSpec(
        kind="saliency",
        title=f"{head}\n{sub}",
        panels=panels,
        cols=3,
        colorbar=ColorBar(value_cmap, lo, hi, SALIENCY_UNITS.get(str(method).lower(), "saliency")),
        caption=f"map {m.shape[0]}×{m.shape[1]} px, sum {num(float(np.nansum(m)))}",
    )
