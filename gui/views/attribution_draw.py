"""Pictures and geometry of the Attribution tab: the overlay and coarse panes, hover boxes, export.

Pure NumPy on a CamOutput or SaliencyOutput (engine.attribution.contract), with the drawing
functions of engine.attribution.figures (the ones `python main.py export cam` uses): render()
runs off the main thread in the view's RenderWorker and again for an export, so the screen
and the exported file are drawn alike. No Qt and no TensorFlow here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.attribution import figures
from engine.attribution.contract import CamOutput, MetricsOutput, SaliencyOutput

Output = CamOutput | SaliencyOutput
Box = tuple[float, float, float, float]


def render(photo: np.ndarray, heats: list[np.ndarray], cams: list[np.ndarray] | None, look: dict) -> tuple:
    """(overlay image, coarse image or None, cell size in px) for the panes."""
    style, cmap, alpha = look["style"], look["cmap"], look["alpha"]
    if len(heats) > 1:
        main = figures.compare_overlays(photo, heats, style, cmap, alpha)
    else:
        main = figures.overlay(photo, heats[0], style, cmap, alpha)
    coarse, cell = None, 0
    if cams:
        h = max(c.shape[0] for c in cams)
        cell = int(np.clip(256 // max(h, 1), 2, 32))
        scale = figures.map_scale(cams, style == "signed")
        panels = [figures.coarse_image(c, cell, style, cmap, grid=True, scale=scale) for c in cams]
        coarse = panels[0] if len(panels) == 1 else figures.side_by_side(panels)
    return main, coarse, cell


def render_inputs(out: Output, look: dict) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray] | None]:
    """render()'s (photo, maps over it, coarse maps or None) for a job's result and a look."""
    return out.photo, out.heatmaps(look["style"]), out.cams


def render_job(photo, heats, cams, look, source) -> tuple:
    """render() for the RenderWorker: also hands back the look and the result it drew."""
    main, coarse, cell = render(photo, heats, cams, look)
    return main, coarse, cell, look, source


def panel_hit(out: CamOutput, cell: int, row: int, col: int) -> tuple[int, int, int] | None:
    """(panel, row, col within it) of a coarse-pane pixel; None in the margins between panels."""
    if out.compare is None:
        return 0, row, col
    hh, ww = out.result.cam.shape
    return figures.panel_at(2, (hh * cell, ww * cell), row, col)


def cell_box(out: Output | None, cell: int, row: int, col: int) -> tuple[tuple[int, int], Box] | None:
    """For a pixel of the coarse pane drawn at `cell` px per cell: the cell (i, j) and its
    receptive field in the photo pane's pixels (top, left, bottom, right); None off the cells."""
    if not isinstance(out, CamOutput) or not cell or out.result.field is None:
        return None
    res = out.result
    hit = panel_hit(out, cell, row, col)
    if hit is None:
        return None
    _, row, col = hit
    hh, ww = res.cam.shape
    i, j = int(row // cell), int(col // cell)
    if not (0 <= i < hh and 0 <= j < ww):
        return None
    mh, mw = res.model_shape
    top, left, bottom, right = res.field.box_clipped(i, j, (mh, mw))
    if bottom <= top or right <= left:
        return None
    sy, sx = out.photo.shape[0] / mh, out.photo.shape[1] / mw
    # on the photo pane: the first panel, which sits GAP px in when two are shown
    pad = figures.GAP if out.compare is not None else 0
    return (i, j), (top * sy + pad, left * sx + pad, bottom * sy + pad, right * sx + pad)


def hover_text(out: CamOutput, cell: int, row: int, col: int, cell_rc: tuple[int, int], rect: Box) -> str:
    """The note under the coarse pane for a hovered cell: its value (in the panel hovered) and field."""
    hit = panel_hit(out, cell, row, col)
    res = out.compare if out.compare is not None and hit is not None and hit[0] == 1 else out.result
    value = float(res.cam[cell_rc])
    context = " plus global context" if getattr(res.field, "global_context", False) else ""
    return (
        f"cell {cell_rc}: {value:.3g} · receptive field {rect[2] - rect[0]:.0f}×{rect[3] - rect[1]:.0f} "
        f"px of the photo{context}"
    )


def export_settings(
    out: Output, scores: MetricsOutput | None, request: Any = None, look: dict | None = None
) -> dict[str, Any]:
    """The sidecar entries of an exported map: what it is, what reproduces it (the request it
    answered and the look: engine.attribution.commands builds `export cam|saliency` from them),
    and its scores."""
    meta: dict[str, Any] = {"kind": out.kind, **out.settings()}
    if isinstance(out, CamOutput):
        meta["method"] = out.result.method
        if request is not None:
            meta.update(
                target=request.target,
                compare=request.compare,
                sigma=request.sigma,
                batch_size=request.batch_size,
            )
    else:
        meta["method"] = out.method
        if request is not None:
            meta.update({k: getattr(request, k) for k in ("samples", "noise", "steps", "batch_size", "seed")})
    if look is not None:
        meta.update(map_style=look["style"], cmap=look["cmap"], alpha=look["alpha"], dim=figures.DIM)
    if scores is not None:
        meta["scores"] = scores.settings()
    return meta
