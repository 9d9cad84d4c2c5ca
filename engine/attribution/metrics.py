"""Quality scores of an attribution map: does it point at the object, and does it explain the score?

- pointing_game: a hit when the map's maximum lies within `tolerance` (15) pixels of the
  object (Zhang et al. 2016). When several pixels share the maximum (a plateau, e.g. a
  constant map or one cell's tile of a roi projection), the point is their centroid, so
  a flat map points at the image centre.
- energy_pointing_game: the share of the map's positive mass inside the object
  (Wang et al. 2020, Score-CAM). A map with no positive mass counts as uniform.
- deletion_auc / insertion_auc: pixels ranked by the map (ties broken by a fixed random
  order, so a plateau is not removed in raster order) are replaced by a baseline image
  (deletion) or restored into it (insertion) in `steps` equal steps; the target's
  softmax probability is integrated over the fraction of pixels changed with the
  trapezoid rule (Petsiuk et al. 2018, RISE). Lower deletion and higher insertion are
  better. The perturbed images go through the model `batch_size` at a time.
- Baselines (`baseline=`, recorded in CurveScore.baseline): "blur" (the image blurred with
  a Gaussian of sigma max(H, W) / 8 px, as RISE's insertion), "mean" (the image's mean
  colour), "black" and "noise" (seeded uniform noise). The default, blur, was chosen by
  bench/deletion_baselines.py (bench/RESULTS.md): black patches look like shapes to
  builtin:shapes, so with black 49% of its Grad-CAM deletion curves fall below 0.2 and
  climb back above 0.8 later (curve_recovers), against 5% with blur (digits: 10% vs 4%);
  with blur, Grad-CAM also beats a random map on 76% (deletion) and 93% (insertion) of
  the shapes images, against 65% and 43% with black.

`region` is an object box (top, left, bottom, right), bottom/right exclusive, or a bool
mask of the map's shape. pointing_game and energy_pointing_game need no model and no
TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from engine.common import drain
from engine.errors import EngineError
from engine.models import ModelHandle

__all__ = [
    "CurveScore",
    "peak",
    "pointing_game",
    "energy_pointing_game",
    "deletion_auc",
    "insertion_auc",
    "deletion_curve",
    "insertion_curve",
    "centre_baseline",
    "blur",
    "BASELINES",
    "DEFAULT_BASELINE",
    "check_baseline",
    "baseline_image",
    "curve_recovers",
    "curve_falls_after_rising",
]

TOLERANCE = 15.0
BASELINES: tuple[str, ...] = ("blur", "mean", "black", "noise")
DEFAULT_BASELINE = "blur"  # chosen by bench/deletion_baselines.py (bench/RESULTS.md)
BLUR_FRACTION = 8.0  # the blur baseline's sigma is max(H, W) / BLUR_FRACTION px


class CurveScore(NamedTuple):
    """Area under a deletion/insertion curve, with the curve: fractions (steps+1,) and scores (steps+1,).

    baseline: what removed pixels were replaced by (deletion) or restored into (insertion).
    """

    auc: float
    fractions: np.ndarray
    scores: np.ndarray
    baseline: str = DEFAULT_BASELINE


def _map2d(heatmap: np.ndarray) -> np.ndarray:
    m = np.asarray(heatmap, np.float64)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2 or m.size == 0:
        raise EngineError(f"expected a 2-D map, got shape {np.shape(heatmap)}")
    if not np.isfinite(m).all():
        raise EngineError("the map contains NaN or Inf values")
    return m


def _region_mask(region: Any, shape: tuple[int, int]) -> np.ndarray:
    arr = np.asarray(region)
    if arr.dtype == bool or (arr.ndim == 2 and arr.shape == tuple(shape)):
        if arr.shape != tuple(shape):
            raise EngineError(f"object mask of shape {arr.shape} does not match the map's {tuple(shape)}")
        return arr.astype(bool)
    if arr.shape != (4,):
        raise EngineError("region must be a box (top, left, bottom, right) or a bool mask of the map's shape")
    top, left, bottom, right = (int(v) for v in arr)
    mask = np.zeros(shape, bool)
    mask[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = True
    return mask


def peak(heatmap: np.ndarray) -> tuple[float, float]:
    """(row, col) of the map's maximum; the centroid of all pixels that share it (plateau)."""
    m = _map2d(heatmap)
    top = m.max()
    tol = 1e-6 * max(abs(top), 1e-30)
    rows, cols = np.nonzero(m >= top - tol)
    return float(rows.mean()), float(cols.mean())


def pointing_game(heatmap: np.ndarray, region: Any, tolerance: float = TOLERANCE) -> bool:
    """True when the map's peak (plateau centroid for ties) is within `tolerance` px of the object."""
    m = _map2d(heatmap)
    mask = _region_mask(region, m.shape)
    if not mask.any():
        raise EngineError("the object region is empty")
    py, px = peak(m)
    rows, cols = np.nonzero(mask)
    dist = np.sqrt((rows - py) ** 2 + (cols - px) ** 2).min()
    return bool(dist <= tolerance)


def energy_pointing_game(heatmap: np.ndarray, region: Any) -> float:
    """Share in [0, 1] of the map's positive mass that lies inside the object."""
    m = _map2d(heatmap)
    mask = _region_mask(region, m.shape)
    pos = np.maximum(m, 0.0)
    total = pos.sum()
    if total <= 0:
        return float(mask.mean())  # no positive evidence anywhere: as a uniform map
    return float(pos[mask].sum() / total)


def centre_baseline(shape: tuple[int, int]) -> np.ndarray:
    """The centre-point baseline map: highest at the image centre, falling with distance from it."""
    hh, ww = int(shape[0]), int(shape[1])
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    return -np.sqrt((yy - (hh - 1) / 2.0) ** 2 + (xx - (ww - 1) / 2.0) ** 2).astype(np.float32)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float (H, W, C) image (separable, edges reflected)."""
    img = np.asarray(img, np.float32)
    if sigma <= 0:
        return img.copy()
    radius = max(1, int(round(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (t / sigma) ** 2)
    kernel /= kernel.sum()
    out = img
    for axis in (0, 1):
        n = out.shape[axis]
        r = min(radius, n - 1)
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect" if r > 0 else "edge")
        k = kernel[radius - r : radius + r + 1]
        k = k / k.sum()
        acc = np.zeros_like(out)
        for i, w in enumerate(k):
            acc += w * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return out


def check_baseline(baseline: str | None) -> str:
    """Normalise a baseline name (None means the default); raise EngineError for an unknown one."""
    key = str(baseline or DEFAULT_BASELINE).strip().lower()
    if key not in BASELINES:
        raise EngineError(f"unknown baseline {baseline!r}; choose from: {', '.join(BASELINES)}")
    return key


def baseline_image(
    photo: np.ndarray, baseline: str = DEFAULT_BASELINE, *, blur_sigma: float | None = None, seed: int = 0
) -> np.ndarray:
    """The image a deletion curve ends on and an insertion curve starts from, float32 like `photo`.

    blur: Gaussian blur of sigma `blur_sigma` (default max(H, W) / 8 px); mean: the image's mean
    colour everywhere; black: zeros; noise: uniform noise in [0, 1) drawn from `seed`.
    """
    photo = np.asarray(photo, np.float32)
    key = check_baseline(baseline)
    if key == "blur":
        sigma = blur_sigma if blur_sigma is not None else max(photo.shape[:2]) / BLUR_FRACTION
        return blur(photo, float(sigma))
    if key == "mean":
        return np.broadcast_to(photo.mean(axis=(0, 1), keepdims=True), photo.shape).astype(np.float32)
    if key == "black":
        return np.zeros_like(photo)
    return np.random.default_rng([int(seed), 1]).random(photo.shape, dtype=np.float32)


def curve_recovers(scores: Any, low: float = 0.2, high: float = 0.8) -> bool:
    """True when a (deletion) curve falls below `low` and later climbs above `high`: a curve that measures nothing."""
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.size < 2:
        return False
    fell = np.minimum.accumulate(s)[:-1] < low  # below `low` at some earlier step
    return bool(np.any(fell & (s[1:] > high)))


def curve_falls_after_rising(scores: Any, high: float = 0.8, low: float = 0.2) -> bool:
    """True when an (insertion) curve rises above `high` and later falls below `low`."""
    s = np.asarray(scores, np.float64).reshape(-1)
    if s.size < 2:
        return False
    rose = np.maximum.accumulate(s)[:-1] > high
    return bool(np.any(rose & (s[1:] < low)))


def _order(m: np.ndarray, seed: int) -> np.ndarray:
    """Pixel indices by decreasing map value, ties in a fixed random order."""
    flat = m.reshape(-1)
    tiebreak = np.random.default_rng(seed).permutation(flat.size)
    return np.lexsort((tiebreak, -flat))


def _curve(
    h: ModelHandle,
    img: Any,
    heatmap: np.ndarray,
    target: Any,
    steps: int,
    batch_size: int,
    insertion: bool,
    baseline: str,
    blur_sigma: float | None,
    seed: int,
) -> Iterator[tuple[int, int]]:
    import tensorflow as tf

    from engine.attribution.functions import logits_fn
    from engine.attribution.target import Target
    from engine.images import fit_image, load_image
    from engine.scaling import to_model_range

    photo = (
        load_image(img)
        if not (isinstance(img, np.ndarray) and img.dtype == np.float32 and img.ndim == 3)
        else img
    )
    m = _map2d(heatmap)
    if m.shape != photo.shape[:2]:
        raise EngineError(f"map of shape {m.shape} does not match the image's {photo.shape[:2]}")
    steps = int(steps)
    if steps < 1:
        raise EngineError("steps must be at least 1")
    baseline = check_baseline(baseline)
    order = _order(m, seed)
    n_pix = order.size
    counts = np.round(np.linspace(0, n_pix, steps + 1)).astype(int)
    base = baseline_image(photo, baseline, blur_sigma=blur_sigma, seed=seed)
    start, end = (base, photo) if insertion else (photo, base)
    flat_start = start.reshape(n_pix, -1)
    flat_end = end.reshape(n_pix, -1)
    fn = logits_fn(h)
    goal = Target.of(h, target)
    logits_all: list[np.ndarray] = []
    batch_size = max(1, int(batch_size))
    yield 0, steps + 1
    for lo in range(0, steps + 1, batch_size):
        batch = []
        for k in counts[lo : lo + batch_size]:
            cur = flat_start.copy()
            cur[order[:k]] = flat_end[order[:k]]
            batch.append(to_model_range(fit_image(cur.reshape(photo.shape), h.input_shape), h.scaling))
        logits = np.asarray(fn(tf.constant(np.stack(batch).astype(np.float32))))
        logits_all.append(logits)
        yield min(lo + batch_size, steps + 1), steps + 1
    logits = np.concatenate(logits_all)
    probs = goal.probabilities(logits)
    index = goal.chosen(logits[-1] if insertion else logits[0])  # top-1: of the unmodified image
    scores = probs[:, index].astype(np.float64)
    fractions = counts / n_pix
    auc = float(np.sum((scores[1:] + scores[:-1]) * np.diff(fractions)) / 2.0)
    return CurveScore(auc, fractions.astype(np.float32), scores.astype(np.float32), baseline)


def _curve_function(name: str, doc: str, *, insertion: bool, drained: bool) -> Callable[..., Any]:
    """One of the four public curve functions: `_curve` with `insertion` fixed, run to its end
    (drained: returns the CurveScore) or left as a generator of (done, total) (for jobs)."""

    def curve(
        h: ModelHandle,
        img: Any,
        heatmap: np.ndarray,
        target: Any = None,
        *,
        steps: int = 32,
        batch_size: int = 33,
        baseline: str = DEFAULT_BASELINE,
        blur_sigma: float | None = None,
        seed: int = 0,
    ) -> Any:
        gen = _curve(h, img, heatmap, target, steps, batch_size, insertion, baseline, blur_sigma, seed)
        return drain(gen) if drained else gen

    curve.__name__ = curve.__qualname__ = name
    curve.__doc__ = doc
    return curve


deletion_curve: Callable[..., Iterator[tuple[int, int]]] = _curve_function(
    "deletion_curve",
    "deletion_auc as a generator: yields (done, total) and returns the CurveScore (for jobs).",
    insertion=False,
    drained=False,
)
insertion_curve: Callable[..., Iterator[tuple[int, int]]] = _curve_function(
    "insertion_curve",
    "insertion_auc as a generator: yields (done, total) and returns the CurveScore (for jobs).",
    insertion=True,
    drained=False,
)
deletion_auc: Callable[..., CurveScore] = _curve_function(
    "deletion_auc",
    """Deletion score: pixels replaced by the baseline in map order; area under the target's probability.

    Lower is better. heatmap lies on img's own grid (as CamResult.heatmap and saliency maps
    do); target None means the model's top-1 on the unmodified image; baseline is one of
    BASELINES (see baseline_image).
    """,
    insertion=False,
    drained=True,
)
insertion_auc: Callable[..., CurveScore] = _curve_function(
    "insertion_auc",
    """Insertion score: pixels restored in map order into the baseline image (default: a strong blur).

    Higher is better; target None means the model's top-1 on the unmodified image.
    """,
    insertion=True,
    drained=True,
)


def randomization(*args: Any, **kwargs: Any) -> Any:
    """The model-randomization sanity check (engine.attribution.sanity.randomization): how a
    method's map changes as the model's layers are re-initialized from the top down."""
    from engine.attribution.sanity import randomization as run

    return run(*args, **kwargs)
