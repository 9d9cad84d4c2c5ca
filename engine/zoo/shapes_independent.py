"""An independent renderer of builtin:shapes' four classes: the model's generalization check.

Written apart from engine.zoo.shapes (it imports nothing from it, and its backgrounds, colour rule,
outlines and rasterizer are its own) so that accuracy on its images measures what the model
learned about circles, squares, triangles and stars, not about one generator's habits. Each
image holds one filled shape, 22-54 px on its longest side, drawn at 4x and downsampled
(antialiased edges), mostly unrotated (a square with level sides, a triangle or star with a
point up; one shape in five is turned by a random angle, triangles sometimes point down), with a
little stretch (triangles and stars) on one of these backgrounds:

- 60%: a two-colour linear gradient whose two colours are drawn over the whole RGB cube;
- 15%: a two-colour radial gradient, same colours;
- 25%: "photo-like": a gradient under soft colour blobs (sums of Gaussians) and 1/f noise made
  by filtering white noise in the Fourier domain.

The shape's colour is drawn uniformly from the RGB cube until it stands out from the background
along the shape's outline (mean RGB distance >= 110, and >= 50 at 95% of outline pixels), so the
label stays unambiguous. Then 0-2 thin lines (1-2 px, random colour) run across the image and may
cross the shape, a Gaussian blur of radius 0.3-1.2 px softens everything, and Gaussian pixel
noise (sigma 2-10) is added. Only numpy and Pillow are used.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star")
CANVAS = 128
_SUPER = 4  # supersampling factor of the shape mask


def _gradient_field(rng: np.random.Generator, radial: bool) -> np.ndarray:
    """A (CANVAS, CANVAS) field in [0, 1]: linear along a random direction, or radial from a point."""
    coords = (np.arange(CANVAS, dtype=np.float64) + 0.5) / CANVAS
    ys, xs = np.meshgrid(coords, coords, indexing="ij")
    if radial:
        py, px = rng.uniform(-0.2, 1.2, size=2)
        field = np.hypot(ys - py, xs - px)
    else:
        phi = rng.uniform(-math.pi, math.pi)
        field = xs * math.cos(phi) + ys * math.sin(phi)
    lo, hi = field.min(), field.max()
    return (field - lo) / max(hi - lo, 1e-9)


def _pink_noise(rng: np.random.Generator) -> np.ndarray:
    """(CANVAS, CANVAS, 3) noise with a 1/f amplitude spectrum, scaled to unit standard deviation."""
    fy = np.fft.fftfreq(CANVAS)[:, None]
    fx = np.fft.rfftfreq(CANVAS)[None, :]
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    amplitude = 1.0 / radius ** rng.uniform(0.9, 1.4)
    amplitude[0, 0] = 0.0
    out = np.empty((CANVAS, CANVAS, 3))
    for c in range(3):
        spectrum = np.fft.rfft2(rng.normal(size=(CANVAS, CANVAS))) * amplitude
        plane = np.fft.irfft2(spectrum, s=(CANVAS, CANVAS))
        out[..., c] = plane / (plane.std() + 1e-9)
    return out


def _backdrop(rng: np.random.Generator) -> np.ndarray:
    """A float64 (CANVAS, CANVAS, 3) background in 0..255 (see the module docstring)."""
    first, second = rng.uniform(0, 255, size=(2, 3))
    kind = rng.random()
    t = _gradient_field(rng, radial=0.60 <= kind < 0.75)[..., None]
    img = first * (1 - t) + second * t
    if kind >= 0.75:  # photo-like
        coords = np.arange(CANVAS, dtype=np.float64)
        ys, xs = np.meshgrid(coords, coords, indexing="ij")
        for _ in range(int(rng.integers(3, 9))):
            cy, cx = rng.uniform(-10, CANVAS + 10, size=2)
            sy, sx = rng.uniform(6, 40, size=2)
            weight = np.exp(-0.5 * (((ys - cy) / sy) ** 2 + ((xs - cx) / sx) ** 2))[..., None]
            tint = rng.uniform(0, 255, size=3)
            img = img * (1 - 0.8 * weight) + tint * 0.8 * weight
        img = img + _pink_noise(rng) * rng.uniform(8, 30)
    return np.clip(img, 0, 255)


def _vertices(kind: int, rng: np.random.Generator) -> list[tuple[float, float]] | None:
    """Outline of the shape around the origin with unit circumradius (y grows downwards); None: circle."""
    if kind == 0:
        return None
    turned = rng.random() < 0.2
    spin = rng.uniform(0, 2 * math.pi) if turned else 0.0
    if kind == 1:
        pts = [
            (math.cos(spin + math.pi / 4 + k * math.pi / 2), math.sin(spin + math.pi / 4 + k * math.pi / 2))
            for k in range(4)
        ]
        return pts
    if kind == 2:
        start = -math.pi / 2 if (turned or rng.random() < 0.85) else math.pi / 2  # point up (or down)
        pts = [
            (math.cos(start + spin + k * 2 * math.pi / 3), math.sin(start + spin + k * 2 * math.pi / 3))
            for k in range(3)
        ]
    else:
        depth = rng.uniform(0.36, 0.52)
        pts = []
        for k in range(10):
            a = -math.pi / 2 + spin + k * math.pi / 5
            r = 1.0 if k % 2 == 0 else depth
            pts.append((r * math.cos(a), r * math.sin(a)))
    stretch = rng.uniform(0.88, 1.12)
    return [(x * stretch, y / stretch) for x, y in pts]


def _rasterize(kind: int, rng: np.random.Generator) -> np.ndarray:
    """Coverage in [0, 1] (CANVAS, CANVAS) of one shape, 22-54 px on its longest side, inside the canvas."""
    big = CANVAS * _SUPER
    while True:
        longest = rng.uniform(22, 54)
        pts = _vertices(kind, rng)
        layer = Image.new("L", (big, big), 0)
        pen = ImageDraw.Draw(layer)
        if pts is None:
            half = longest / 2
            x0, y0, x1, y1 = -half, -half, half, half
        else:
            arr = np.asarray(pts)
            arr = arr * (longest / (arr.max(0) - arr.min(0)).max())
            x0, y0 = arr.min(0)
            x1, y1 = arr.max(0)
        cx = rng.uniform(3 - x0, CANVAS - 3 - x1)
        cy = rng.uniform(3 - y0, CANVAS - 3 - y1)
        if pts is None:
            pen.ellipse(
                [(cx + x0) * _SUPER, (cy + y0) * _SUPER, (cx + x1) * _SUPER, (cy + y1) * _SUPER], fill=255
            )
        else:
            pen.polygon([((cx + x) * _SUPER, (cy + y) * _SUPER) for x, y in arr], fill=255)
        cover = np.asarray(layer.resize((CANVAS, CANVAS), Image.Resampling.BOX), dtype=np.float64) / 255.0
        if (cover >= 0.5).sum() >= 40:
            return cover


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels within 2 px outside ``mask`` (a ring around the shape)."""
    grown = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0
    return grown & ~mask


def _render_one(rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray]:
    kind = int(rng.integers(4))
    back = _backdrop(rng)
    coverage = _rasterize(kind, rng)
    mask = coverage >= 0.5
    ring = back[_outline(mask)]
    for _ in range(200):
        fill = rng.uniform(0, 255, size=3)
        dist = np.linalg.norm(ring - fill, axis=1)
        if dist.mean() >= 110 and np.quantile(dist, 0.05) >= 50:
            break
    else:  # the cube corner farthest from the outline's mean colour
        fill = np.where(ring.mean(0) < 127.5, 255.0, 0.0)
    alpha = coverage[..., None]
    img = back * (1 - alpha) + fill * alpha
    pic = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(pic)
    for _ in range(int(rng.integers(0, 3))):
        ends = rng.uniform(-20, CANVAS + 20, size=4)
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        pen.line([(ends[0], ends[1]), (ends[2], ends[3])], fill=colour, width=int(rng.integers(1, 3)))
    pic = pic.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    out = np.asarray(pic, dtype=np.float64) + rng.normal(0, rng.uniform(2, 10), size=(CANVAS, CANVAS, 3))
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    box = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], dtype=np.int64)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), kind, box


def render(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` images of ``seed``: uint8 (n, 128, 128, 3), int64 labels (n,) indexing NAMES, int64 boxes
    (n, 4) as (top, left, bottom, right), bottom/right exclusive. Image ``i`` depends only on (seed, i).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    images = np.empty((n, CANVAS, CANVAS, 3), np.uint8)
    labels = np.empty(n, np.int64)
    boxes = np.empty((n, 4), np.int64)
    for i in range(n):
        images[i], labels[i], boxes[i] = _render_one(np.random.default_rng([int(seed), 7919, i]))
    return images, labels, boxes
