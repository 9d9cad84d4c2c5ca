"""Figures of a layer's feature maps and of a conv layer's filters, as FigureSpecs.

Pure functions from computed arrays to a :class:`~engine.plot.spec.FigureSpec` (no file I/O, no
matplotlib), so ``export featuremaps|filters`` and the GUI's Export View draw the same figure.
Each follows the screen's normalization (engine.render.normalize, the filters' signed scale) but
its colour bar reads in real units: activations, weights, or standard deviations where the maps
were standardized, and each separately scaled map carries its gain.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import EngineError
from engine.plot.spec import ColorBar, FigureSpec, Panel

_NORM_WORDS = {
    "global": "one scale for all maps",
    "per_map": "each map scaled to the strongest map's range (×gain under its index)",
    "standardize": "each map standardized (0 = its mean)",
    "raw": "activations clipped to 0–1",
}


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(int(d)) for d in shape)


def _squeeze(maps: np.ndarray) -> np.ndarray:
    a = np.asarray(maps)
    while a.ndim in (2, 4) and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[:, :, None]
    return a


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, 0.0).astype(np.float32)


def featuremaps_figure(
    maps: np.ndarray,
    layer: str,
    model_name: str = "",
    image_name: str = "",
    norm: str = "per_map",
    cmap: str = "gray",
    cols: int | None = None,
) -> FigureSpec:
    """Every channel of a layer's (h, w, c) output as a panel labelled with its index, with a colour
    bar of real values; a dense (units,) output as one grid of unit cells.

    norm follows engine.render.normalize: "global" puts every map on the stack's min..max; "per_map"
    draws each map times its gain (strongest |value| / its own), so the bar reads in the strongest
    map's activations and each panel's gain says how much it was amplified; "standardize" reads in
    standard deviations from each map's mean (the screen's ±2 σ window); "raw" in activations
    clipped to 0..1. The title names model, layer, shape and image.
    """
    from engine.render import NORMALIZATIONS

    if norm not in NORMALIZATIONS:
        raise EngineError(f"unknown normalization {norm!r}; use one of {', '.join(NORMALIZATIONS)}")
    a = _squeeze(maps)
    if a.ndim == 1:
        return _dense_figure(a, layer, model_name, image_name, norm, cmap, cols)
    if a.ndim != 3 or 0 in a.shape:
        raise EngineError(f"feature maps must be (h, w, c) or (units,), got shape {np.shape(maps)}")
    x = _finite(a)
    c = x.shape[-1]
    stacks = [x[:, :, k] for k in range(c)]
    labels = [str(k) for k in range(c)]
    images, gains, bar = _scaled_maps(stacks, norm, cmap, np.reshape(x, (-1, c)))
    panels = tuple(
        Panel(img, label, cmap, bar.vmin, bar.vmax, gain=g) for img, label, g in zip(images, labels, gains)
    )
    title = _title(model_name, layer, a.shape, image_name)
    caption = f"Channels 0–{c - 1} of {layer}; {_NORM_WORDS[norm]}."
    settings = {"norm": norm, "cmap": cmap, "maps": c}
    return FigureSpec(
        "featuremaps", title, panels, cols=cols, colorbar=bar, caption=caption, settings=settings
    )


def _title(model_name: str, layer: str, shape: tuple[int, ...], image_name: str) -> str:
    head = " · ".join(t for t in (model_name, f"{layer} ({_shape_text(shape)})") if t)
    return f"{head} on {image_name}" if image_name else head


def _scaled_maps(
    maps: list[np.ndarray], norm: str, cmap: str, flat: np.ndarray
) -> tuple[list[np.ndarray], list[float | None], ColorBar]:
    """The maps in the units of the colour bar, their gains, and the bar (flat: (pixels, maps))."""
    gains: list[float | None] = [None] * len(maps)
    if norm == "global":
        lo, hi = float(flat.min()), float(flat.max())
        if hi <= lo:  # the screen draws a constant stack at 0: the bar's bottom
            hi = lo + 1.0
        return maps, gains, ColorBar(cmap, lo, hi, "activation")
    if norm == "per_map":
        peak = np.abs(flat).max(axis=0)
        top = float(peak.max()) or 1.0
        safe = np.where(peak > 0, peak, 1.0)
        gain = np.where(peak > 0, top / safe, 1.0)
        lo = -top if float(flat.min()) < 0 else 0.0  # signed stacks: zero in the middle, as on screen
        images = [m * float(g) for m, g in zip(maps, gain)]
        gains = [float(g) for g in gain]
        return images, gains, ColorBar(cmap, lo, top, "activation × gain")
    if norm == "standardize":
        images = []
        for m in maps:
            std = float(m.std(dtype=np.float64))
            images.append(
                ((m - m.mean(dtype=np.float64)) / std).astype(np.float32)
                if std > 0
                else np.full_like(m, -2.0)
            )
        return images, gains, ColorBar(cmap, -2.0, 127.0 / 64.0, "σ from the map's mean")
    return maps, gains, ColorBar(cmap, 0.0, 1.0, "activation (clipped)")


def _dense_figure(
    v: np.ndarray, layer: str, model_name: str, image_name: str, norm: str, cmap: str, cols: int | None
) -> FigureSpec:
    """A dense layer's units as one panel: a near-square grid of cells, unit i at row i // cols."""
    n = v.shape[0]
    if n == 0:
        raise EngineError("dense activations are empty")
    x = _finite(v)
    cols = int(min(max(int(cols), 1), n)) if cols else max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    cells = np.full(rows * cols, np.nan, np.float32)
    (image,), _, bar = _scaled_maps([x], norm, cmap, x[:, None])  # the vector is one map, as on screen
    cells[:n] = image
    panel = Panel(cells.reshape(rows, cols), f"units 0–{n - 1}", cmap, bar.vmin, bar.vmax)
    title = _title(model_name, layer, (n,), image_name)
    if norm == "per_map":  # the vector is one map: no gain
        bar = ColorBar(cmap, bar.vmin, bar.vmax, "activation")
    words = "one scale for all units" if norm in ("per_map", "global") else _NORM_WORDS[norm]
    caption = f"One cell per unit, row by row ({cols} per row); {words}."
    settings = {"norm": norm, "cmap": cmap, "units": n, "cols": cols}
    return FigureSpec(
        "featuremaps", title, (panel,), cols=1, colorbar=bar, caption=caption, settings=settings
    )


# ----- filters ---------------------------------------------------------------------------------------
def filters_figure(
    kernel: np.ndarray,
    layer: str,
    model_name: str = "",
    shared_scale: bool = True,
    max_out: int = 256,
    cols: int | None = None,
    max_in: int = 32,
) -> FigureSpec:
    """A conv layer's filters (kh, kw, cin, cout), at most max_out of them (and max_in input channels).

    First-layer colour filters (cin 3) are RGB panels, each channel 0.5 + 0.5·w / peak (grey = zero
    weight, as on screen) with a grey bar of the weight per channel; other layers are value maps on
    the diverging "signed" colormap centred on zero, a panel per filter holding its kernels for every
    input channel side by side, with a colour bar of weights. shared_scale: one peak, the layer's
    largest |w|; otherwise each filter on its own peak, its gain (layer peak / its peak) shown.
    """
    w = np.asarray(kernel)
    if w.ndim != 4 or 0 in w.shape:
        raise EngineError(f"filter weights must be (kh, kw, cin, cout), got shape {w.shape}")
    if int(max_out) < 1 or int(max_in) < 1:
        raise EngineError("max_out and max_in must be at least 1")
    kh, kw, cin, cout = w.shape
    n_out = min(cout, int(max_out))
    n_in = cin if cin == 3 else min(cin, int(max_in))
    x = _finite(w[:, :, :n_in, :n_out])
    filter_peak = np.abs(x).reshape(-1, n_out).max(axis=0)
    layer_peak = float(filter_peak.max()) or 1.0
    if shared_scale:
        gains = np.ones(n_out, np.float32)
    else:
        gains = np.where(filter_peak > 0, layer_peak / np.where(filter_peak > 0, filter_peak, 1.0), 1.0)
    shown = [x[..., k] * float(gains[k]) for k in range(n_out)]  # in the units of the layer's peak
    gain_of = (lambda k: None) if shared_scale else (lambda k: float(gains[k]))
    scale = "one scale for the layer" if shared_scale else "each filter on its own scale (×gain)"
    limits = [f"{n_out} of {cout} filters"] if n_out < cout else []
    if n_in < cin:
        limits.append(f"{n_in} of {cin} input channels")
    shape = f"{kh}×{kw}×{cin}×{cout}"
    title = " · ".join(t for t in (model_name, f"{layer} filters ({shape})") if t)
    settings = {"scale": "shared" if shared_scale else "per-filter", "filters": n_out, "inputs": n_in}
    if cin == 3:
        panels = tuple(
            Panel(np.clip(0.5 + 0.5 * s / layer_peak, 0.0, 1.0), str(k), gain=gain_of(k))
            for k, s in enumerate(shown)
        )
        bar = ColorBar("gray", -layer_peak, layer_peak, "weight (each of R, G, B)")
        caption = f"RGB filters: grey = zero weight, each colour channel linear in its weight; {scale}."
    else:
        mosaics = [_kernel_mosaic(s) for s in shown]
        panels = tuple(
            Panel(m, str(k), "signed", -layer_peak, layer_peak, gain=gain_of(k))
            for k, (m, _) in enumerate(mosaics)
        )
        bar = ColorBar("signed", -layer_peak, layer_peak, "weight")
        if cin == 1:
            caption = f"Blue < 0 < red; {scale}."
        else:
            caption = (
                f"Each panel: one filter's {kh}×{kw} kernels for input channels 0–{n_in - 1}, "
                f"{mosaics[0][1]} per row; blue < 0 < red; {scale}."
            )
    if limits:
        caption += " Showing " + " and ".join(limits) + "."
    return FigureSpec("filters", title, panels, cols=cols, colorbar=bar, caption=caption, settings=settings)


def _kernel_mosaic(k: np.ndarray) -> tuple[np.ndarray, int]:
    """One filter (kh, kw, n_in) as a near-square mosaic of its kernels, row by row, one blank (NaN)
    line between them; returns (image, kernels per row)."""
    kh, kw, n_in = k.shape
    if n_in == 1:
        return k[:, :, 0], 1
    per_row = math.ceil(math.sqrt(n_in))
    rows = math.ceil(n_in / per_row)
    out = np.full((rows * (kh + 1) - 1, per_row * (kw + 1) - 1), np.nan, np.float32)
    for i in range(n_in):
        r, c = divmod(i, per_row)
        out[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = k[:, :, i]
    return out, per_row
