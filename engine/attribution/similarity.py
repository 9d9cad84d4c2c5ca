"""How alike two attribution maps are: the three measures of Adebayo et al.'s sanity checks.

NumPy only (no SciPy, no scikit-image), so the sanity check adds no dependency:

- `spearman(a, b)`: Spearman rank correlation of the absolute maps (ties get their average rank).
- `ssim(a, b)`: the structural similarity of Wang et al. (2004) of the maps min-max normalized to
  [0, 1]: an 11-tap Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, averaged
  over the positions where the whole window lies inside the map (as scikit-image's
  ``structural_similarity(gaussian_weights=True)``). Maps smaller than the window get a window
  of their own size.
- `hog_similarity(a, b)`: the Pearson correlation of the HOG features (Dalal & Triggs 2005) of the
  normalized maps: centred differences, 9 unsigned orientation bins over 0-180°, cells of 8 px
  (smaller for maps under 32 px: a quarter of the short side, at least 2), blocks of 2×2 cells
  normalized with L2-Hys (clipped at 0.2).

A constant map has no ranks and no structure: its correlation with anything is 0, except with a
map equal to it (1).
"""

from __future__ import annotations

import numpy as np

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
HOG_BINS = 9
HOG_CELL = 8


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.nan_to_num(np.asarray(a, np.float64))
    y = np.nan_to_num(np.asarray(b, np.float64))
    if x.shape != y.shape:
        raise ValueError(f"maps differ in shape: {x.shape} vs {y.shape}")
    return x, y


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = x.ravel() - x.mean()
    y = y.ravel() - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    if den <= 1e-300:
        return 1.0 if np.allclose(x, y) else 0.0
    return float(np.clip((x * y).sum() / den, -1.0, 1.0))


def rankdata(a: np.ndarray) -> np.ndarray:
    """The ranks (1..n) of a flattened array, ties sharing their average rank (SciPy's "average")."""
    flat = np.asarray(a).ravel()
    order = np.argsort(flat, kind="mergesort")
    inverse = np.empty(flat.size, np.intp)
    inverse[order] = np.arange(flat.size)
    ordered = flat[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    dense = np.cumsum(starts)[inverse]
    bounds = np.r_[np.nonzero(starts)[0], flat.size]
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of |a| and |b| (maps of one shape)."""
    x, y = _pair(a, b)
    return _pearson(rankdata(np.abs(x)), rankdata(np.abs(y)))


def normalize01(a: np.ndarray) -> np.ndarray:
    """A map min-max scaled to [0, 1] (a constant map becomes zeros)."""
    x = np.nan_to_num(np.asarray(a, np.float64))
    if not x.size:
        return x
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _gaussian_filter(x: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """Separable Gaussian filter with reflected borders, output the size of x."""
    half = size // 2
    t = np.arange(size, dtype=np.float64) - half
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    padded = np.pad(x, half, mode="reflect")
    rows = sum(k[i] * padded[i : i + x.shape[0], :] for i in range(size))
    return sum(k[j] * rows[:, j : j + x.shape[1]] for j in range(size))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the two maps, each min-max normalized to [0, 1] first (module docstring)."""
    x, y = _pair(a, b)
    x, y = normalize01(x), normalize01(y)
    size = min(SSIM_WINDOW, *x.shape)
    size -= 1 - size % 2  # odd
    if size < 3:
        return _pearson(x, y)
    sigma = SSIM_SIGMA * size / SSIM_WINDOW
    c1, c2 = 0.01**2, 0.03**2
    n = size * size
    cov = n / (n - 1)  # sample covariance, as Wang et al. and scikit-image

    def f(v: np.ndarray) -> np.ndarray:
        return _gaussian_filter(v, size, sigma)

    ux, uy = f(x), f(y)
    vx = cov * (f(x * x) - ux * ux)
    vy = cov * (f(y * y) - uy * uy)
    vxy = cov * (f(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (size - 1) // 2
    inner = s[pad : s.shape[0] - pad, pad : s.shape[1] - pad]
    return float(inner.mean()) if inner.size else float(s.mean())


def hog_cell(shape: tuple[int, ...]) -> int:
    """The HOG cell size for a map of this shape: 8 px, or a quarter of a short side under 32 px."""
    short = min(shape[:2])
    return HOG_CELL if short >= 4 * HOG_CELL else max(2, short // 4)


def hog(a: np.ndarray, cell: int | None = None, bins: int = HOG_BINS) -> np.ndarray:
    """HOG features of a 2-D map (normalized to [0, 1] first): one L2-Hys block vector per 2×2 cells."""
    x = normalize01(a)
    cell = hog_cell(x.shape) if cell is None else int(cell)
    gy = np.zeros_like(x)
    gx = np.zeros_like(x)
    gy[1:-1, :] = x[2:, :] - x[:-2, :]
    gx[:, 1:-1] = x[:, 2:] - x[:, :-2]
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180.0
    which = np.minimum((angle / (180.0 / bins)).astype(np.intp), bins - 1)
    cy, cx = x.shape[0] // cell, x.shape[1] // cell
    if cy < 1 or cx < 1:
        return magnitude.ravel()
    hist = np.zeros((cy, cx, bins))
    m = magnitude[: cy * cell, : cx * cell].reshape(cy, cell, cx, cell)
    w = which[: cy * cell, : cx * cell].reshape(cy, cell, cx, cell)
    for k in range(bins):
        hist[:, :, k] = np.where(w == k, m, 0.0).sum(axis=(1, 3))
    if cy < 2 or cx < 2:
        blocks = hist.reshape(1, -1)
    else:
        blocks = np.concatenate(
            [hist[:-1, :-1], hist[1:, :-1], hist[:-1, 1:], hist[1:, 1:]], axis=-1
        ).reshape(-1, 4 * bins)
    eps = 1e-5
    blocks = blocks / np.sqrt((blocks**2).sum(axis=1, keepdims=True) + eps**2)
    blocks = np.minimum(blocks, 0.2)
    blocks = blocks / np.sqrt((blocks**2).sum(axis=1, keepdims=True) + eps**2)
    return blocks.ravel()


def hog_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the HOG features of two maps of one shape."""
    x, y = _pair(a, b)
    return _pearson(hog(x), hog(y))
