"""Figures of optimization runs: `export maximize|dream` and the Maximize / Dream tabs' Export View.

Pure functions from a run's result to a FigureSpec (no file I/O, no TensorFlow, no matplotlib):

- maximize_figure: one panel per optimized image, labelled with its objective and the value
  it reached, and the objective curve (real values per step) beside them.
- dream_figure: the photo and the dream side by side, and the objective per step.

The images are pictures, not value maps: they are drawn as RGB and get no colour bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.plot.attribution import num, source_name
from engine.plot.spec import Curve, FigureSpec, Panel


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, C) in [0, 1] as float32 RGB (grey repeated, alpha dropped)."""
    a = np.asarray(image, np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(np.clip(np.nan_to_num(a[:, :, :3]), 0.0, 1.0))


def _curve(
    curve: Sequence[float] | Mapping[str, Sequence[float]] | np.ndarray | None, label: str, ylabel: str
) -> Curve | None:
    """A Curve of one line (values per step) or several ({legend: values per step})."""
    if curve is None:
        return None
    lines = dict(curve) if isinstance(curve, Mapping) else {label: curve}
    ys = tuple((str(k), np.asarray(v, np.float64).reshape(-1)) for k, v in lines.items() if len(v))
    if not ys:
        return None
    n = max(len(v) for _, v in ys)
    return Curve(np.arange(1, n + 1, dtype=np.float64), ys, "step", ylabel)


def _cols(n: int) -> int:
    """Images per row: one row up to 4, then about square."""
    return n if n <= 4 else math.ceil(math.sqrt(n))


def maximize_figure(
    images: np.ndarray,
    objectives: Sequence[str],
    curve: Sequence[float] | Mapping[str, Sequence[float]] | None,
    model_name: str,
    objective: str = "",
    settings: Mapping[str, Any] | None = None,
    start: Sequence[float] | None = None,
    final: Sequence[float] | None = None,
    cols: int | None = None,
) -> FigureSpec:
    """The figure of an activation maximization.

    images: (B, H, W, C) in [0, 1], one per objective (texts `objectives`); curve: the
    objective per step (engine.maximize's info["curve"]: the batch mean) or {label: values};
    objective: what was asked (the --objective text or the layer objective) for the title;
    settings: the run's settings (steps, param, optimizer, lr, transforms, seed) for the caption;
    start/final: each image's objective value before and after, shown under its label.
    """
    batch = np.asarray(images)
    if batch.ndim == 3:
        batch = batch[None]
    settings = dict(settings or {})
    texts = [str(t) for t in objectives] or [objective] * len(batch)
    panels = []
    for i, img in enumerate(batch):
        text = texts[i] if i < len(texts) else f"#{i}"
        note = ""
        if final is not None and i < len(final):
            note = (
                f"{num(start[i])} → {num(final[i])}"
                if start is not None and i < len(start)
                else num(final[i])
            )
        panels.append(Panel(_rgb(img), text, note=note))
    steps = settings.get("steps")
    ran = len(curve) if curve is not None and not isinstance(curve, Mapping) else None
    what = objective or (texts[0] if len(texts) == 1 else f"{len(texts)} objectives")
    title = f"{model_name} · activation maximization\n{what}"
    if ran or steps:
        title += f" · {ran or steps} steps"
    legend = texts[0] if len(texts) == 1 else f"mean of {len(texts)}"
    parts = [
        f"{settings['param']} parameterization" if settings.get("param") else "",
        f"{settings['optimizer']} lr {num(settings['lr'])}" if settings.get("optimizer") else "",
        ", ".join(settings.get("transforms") or ()),
        ", ".join(settings.get("regularizers") or ()),
        f"seed {settings['seed']}" if "seed" in settings else "",
    ]
    return FigureSpec(
        kind="maximize",
        title=title,
        panels=tuple(panels),
        cols=cols or _cols(len(panels)),
        curve=_curve(curve, legend, "objective" if len(texts) == 1 else f"objective (mean of {len(texts)})"),
        caption=" · ".join(p for p in parts if p),
        settings={"objectives": texts},
    )


def dream_figure(
    photo: np.ndarray,
    dreamed: np.ndarray,
    curve: Sequence[float] | None,
    layers: str,
    model_name: str,
    image_name: str = "",
    settings: Mapping[str, Any] | None = None,
) -> FigureSpec:
    """The figure of a DeepDream: the photo and the dream side by side, and the objective
    (`layers`, amplified) per step over all octaves."""
    settings = dict(settings or {})
    dream = np.asarray(dreamed)
    if dream.ndim == 4:
        dream = dream[0]
    image = source_name(image_name) if image_name else ""
    panels = (Panel(_rgb(photo), image or "photo"), Panel(_rgb(dream), "DeepDream"))
    title = f"{model_name} · DeepDream of {layers}"
    if image:
        title += f"\non {image}"
    if settings.get("octaves"):
        title += f" · {settings['octaves']} octaves × {settings.get('steps', '?')} steps"
    caption = ""
    if "octave_scale" in settings:
        per = int(settings.get("steps") or 0)
        starts = ", ".join(str(1 + k * per) for k in range(int(settings.get("octaves") or 0))) if per else ""
        caption = " · ".join(
            t
            for t in (
                f"octaves start at steps {starts}" if starts else "",
                f"scale {num(settings['octave_scale'])}",
                f"lr {num(settings.get('lr', 0))}",
                f"seed {settings.get('seed', 0)}",
            )
            if t
        )
    return FigureSpec(
        kind="dream",
        title=title,
        panels=panels,
        cols=2,
        curve=_curve(curve, layers, "objective"),
        caption=caption,
        settings={"layers": layers},
    )
