"""builtin:shapes: procedurally generated shapes on busy backgrounds, and the net that classifies them.

Every image holds one filled shape (circle, square, triangle or star) of random colour, size
(20-56 px on its longest side) and position; a third of the squares, triangles and stars stand
upright (level sides, a point up), the rest are rotated at random, and triangles and stars are
stretched a little. Backgrounds are meant to look like what users drop in, not only like smooth
textures: smooth noise, a two-colour gradient between colours drawn from the whole RGB cube,
stripes, a busy scene of overlapping blobs, bars, ellipses and patches (none of them one of the
four classes), or photo-like noise of several scales. Short thin strokes keep clear of the
shape, 0-2 long thin lines may cross it, and half the images are blurred, 30% JPEG-compressed,
all with some pixel noise. The label stays unambiguous: the shape's colour is drawn until it
stands out from the background just around it (see _pick_colour), whatever the background does
elsewhere.

Image ``i`` of seed ``s`` comes from its own generator seeded with ``(s, i)``: ``generate(n, s)``
equals the concatenation of ``iter_batches(n, s, batch)``, any prefix of a larger set is the same,
and the data needs no storage. Seeds below 1000 are for training, seeds from 1000 on are reserved
for evaluation (the shipped model is trained on seed 0 and tested on seed 1234). A separately
written renderer, engine.zoo.shapes_independent, checks that the model generalizes beyond this
generator (bench/shapes_generalization.py).

The architecture is the classic small "cats vs dogs" teaching net, so its feature maps are big
enough to look at (conv4 is 58x58). engine.zoo.shapes_training trains it in minutes on a CPU
(train() here runs it). Only numpy and Pillow are needed to generate data; TensorFlow is imported
inside the functions that build or train the model.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from engine import zoo
from engine.zoo import TrainRun

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZE = 128
MIN_SHAPE = 20
MAX_SHAPE = 56
EVAL_SEED_MIN = 1000  # seeds >= this are reserved for evaluation
HOLDOUT_SEED = 1234
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class ShapesData:
    """A batch of generated images with their ground truth.

    images: uint8 (n, size, size, 3); labels: int64 (n,) indexes into CLASS_NAMES;
    boxes: int64 (n, 4) as (top, left, bottom, right), bottom/right exclusive;
    masks: bool (n, size, size), True on the shape's pixels.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


# ---------------------------------------------------------------------------------------------
# generation


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size, 3) smooth noise in about [-1, 1]: a coarse random grid upsampled bicubically."""
    grid = rng.integers(0, 256, size=(cells, cells, 3), dtype=np.uint8)
    up = np.asarray(Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    return up * np.float32(2 / 255) - 1


@functools.cache
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (yy, xx) of a size x size canvas, scaled to [0, 1), read-only."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _ramp(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 1) linear ramp from 0 to 1 across the canvas at a random angle."""
    yy, xx = _grid(size)
    theta = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(theta) + yy * math.sin(theta)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return t[..., None]


def _two_colour(rng: np.random.Generator, size: int) -> np.ndarray:
    """A gradient between two colours drawn from the whole RGB cube."""
    a, b = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    return a + (b - a) * _ramp(rng, size)


def _distractors(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """Overlapping blobs, bars, ellipses and patches of other colours that are none of the four classes.

    Ellipses and rectangles are either elongated (aspect >= 1.7) or larger than any shape, and
    polygons are irregular with 7-12 corners, so none reads as a circle, square, triangle or star.
    They are translucent (opacity 0.3-0.85) with soft edges, like out-of-focus things behind the
    subject of a photo, so the sharp shape in front stays the one object that counts.
    """
    size = canvas.shape[0]
    pil = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(3, 11))):
        layer = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(layer)
        fill = int(255 * rng.uniform(0.3, 0.85))  # opacity
        kind = int(rng.integers(4))
        cx, cy = rng.uniform(-0.1, 1.1, size=2) * size
        if kind in (0, 1):  # ellipse or rectangle, as a rotated polygon
            if rng.random() < 0.5:
                a = rng.uniform(0.08, 0.3) * size
                b = a * rng.uniform(1.7, 4.0)
            else:
                a, b = rng.uniform(0.5, 1.0, size=2) * size
            phi = rng.uniform(0, math.pi)
            if kind == 0:
                t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
                px, py = a * np.cos(t), b * np.sin(t)
            else:
                px, py = np.array([-a, a, a, -a]), np.array([-b, -b, b, b])
            xs = cx + px * math.cos(phi) - py * math.sin(phi)
            ys = cy + px * math.sin(phi) + py * math.cos(phi)
            draw.polygon([(float(x), float(y)) for x, y in zip(xs, ys)], fill=fill)
        elif kind == 2:  # irregular blob
            k = int(rng.integers(7, 13))
            t = np.sort(rng.uniform(0, 2 * math.pi, size=k))
            r = rng.uniform(0.1, 0.35) * size * rng.uniform(0.4, 1.0, size=k)
            draw.polygon(
                [(float(cx + ri * math.cos(ti)), float(cy + ri * math.sin(ti))) for ri, ti in zip(r, t)],
                fill=fill,
            )
        else:  # a thick curved band
            pts = np.cumsum(rng.normal(0, 0.15 * size, size=(5, 2)), axis=0) + np.array([cx, cy])
            draw.line(
                [(float(x), float(y)) for x, y in pts],
                fill=fill,
                width=int(rng.integers(3, max(4, size // 10))),
            )
        layer = layer.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 4.0) * size / SIZE))
        colour = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, size=3)))
        pil = Image.composite(colour, pil, layer)
    return np.asarray(pil).astype(np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float32 (size, size, 3) background in 0..255, one of five kinds:

    smooth noise around a base colour, a two-colour gradient over the whole RGB cube, stripes,
    a busy scene of distractor blobs over a gradient, or photo-like noise of several scales.
    """
    kind = rng.choice(5, p=[0.15, 0.3, 0.1, 0.25, 0.2])
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    if kind == 0:
        out = base + _smooth(rng, size, int(rng.integers(3, 12))) * rng.uniform(15, 70)
    elif kind == 1:
        out = _two_colour(rng, size)
    elif kind == 2:
        yy, xx = _grid(size)
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(4, 28) / size
        phase = rng.uniform(0, 2 * math.pi)
        t = np.sin(2 * math.pi * ((xx * math.cos(theta) + yy * math.sin(theta)) / period) + phase)
        if rng.random() < 0.5:
            t = np.sign(t)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction) + 1e-6
        out = base + (t[..., None] * direction * rng.uniform(10, 40)).astype(np.float32)
    elif kind == 3:
        out = _distractors(
            rng, _two_colour(rng, size) if rng.random() < 0.6 else np.broadcast_to(base, (size, size, 3))
        )
        out = out + _smooth(rng, size, int(rng.integers(6, 20))) * rng.uniform(0, 25)
    else:
        out = _two_colour(rng, size) * rng.uniform(0.3, 1.0)
        for cells, amp in ((3, 60.0), (8, 35.0), (24, 20.0)):
            out = out + _smooth(rng, size, cells) * (amp * rng.uniform(0.3, 1.2))
    return np.clip(out, 0, 255).astype(np.float32)


def _pick_colour(rng: np.random.Generator, ring: np.ndarray) -> np.ndarray:
    """A shape colour that stands out from the background pixels ``ring`` around the shape:
    mean RGB distance >= 110 and >= 55 at 90% of them (the farthest cube corner if none of 64 draws does).
    """
    ring = ring[:: max(1, len(ring) // 100)]
    k = max(1, len(ring) // 10)
    for _ in range(4):
        candidates = rng.uniform(0, 255, size=(16, 3)).astype(np.float32)
        dist = np.sqrt(((candidates[:, None, :] - ring[None, :, :]) ** 2).sum(axis=2))  # (16, r)
        ok = (dist.mean(axis=1) >= 110) & (np.partition(dist, k - 1, axis=1)[:, k - 1] >= 55)
        if ok.any():
            return candidates[int(np.argmax(ok))]
    return np.where(ring.mean(axis=0) < 127.5, 255.0, 0.0).astype(np.float32)


def _outline(label: int, rng: np.random.Generator) -> np.ndarray | None:
    """Unit-size polygon vertices (k, 2) as (x, y) around the origin; None for a circle.

    One shape in three is upright (a square with level sides, a triangle or star with a point up,
    y growing downwards), the others are rotated at random; triangles and stars are stretched a little.
    """
    if label == 0:
        return None
    upright = rng.random() < 1 / 3
    angle = rng.uniform(0, 2 * math.pi)
    if upright:
        angle = 0.0 if label == 1 else -math.pi / 2
    if label == 1:
        a = angle + np.arange(4) * math.pi / 2 + math.pi / 4
        r = np.ones(4)
    elif label == 2:
        a = angle + np.arange(3) * 2 * math.pi / 3
        r = np.ones(3)
    else:
        inner = rng.uniform(0.36, 0.52)
        a = angle + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
    verts = np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    if label >= 2:
        stretch = rng.uniform(0.87, 1.15)
        verts = verts * np.array([stretch, 1 / stretch])
    return verts


def _shape_mask(label: int, rng: np.random.Generator, size: int) -> np.ndarray:
    """A bool mask with one shape whose longest bounding-box side is within MIN_SHAPE..MAX_SHAPE."""
    while True:
        target = float(rng.integers(MIN_SHAPE, MAX_SHAPE + 1))
        verts = _outline(label, rng)
        img = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(img)
        if verts is None:
            r = (target - 1) / 2
            cx = rng.uniform(r + 1, size - r - 2)
            cy = rng.uniform(r + 1, size - r - 2)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        else:
            ext = verts.max(axis=0) - verts.min(axis=0)
            verts = verts * ((target - 1) / ext.max())
            lo, hi = verts.min(axis=0), verts.max(axis=0)
            cx = rng.uniform(1 - lo[0], size - 2 - hi[0])
            cy = rng.uniform(1 - lo[1], size - 2 - hi[1])
            draw.polygon([(float(x + cx), float(y + cy)) for x, y in verts], fill=255)
        mask = np.asarray(img) > 0
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if len(rows) == 0:
            continue
        longest = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
        if (
            MIN_SHAPE <= longest <= MAX_SHAPE
            and rows[0] > 0
            and cols[0] > 0
            and rows[-1] < size - 1
            and cols[-1] < size - 1
        ):
            return mask


def _ring(mask: np.ndarray, box: np.ndarray, width: int) -> np.ndarray:
    """The pixels within ``width`` px (chessboard distance) outside ``mask``, whose bounding box is ``box``."""
    size = mask.shape[0]
    top, left = max(int(box[0]) - width, 0), max(int(box[1]) - width, 0)
    bottom, right = min(int(box[2]) + width, size), min(int(box[3]) + width, size)
    crop = np.pad(mask[top:bottom, left:right], width)
    h, w = bottom - top, right - left
    grown = np.zeros((h + 2 * width, w), bool)
    for dx in range(2 * width + 1):
        grown |= crop[:, dx : dx + w]
    rows = np.zeros((h, w), bool)
    for dy in range(2 * width + 1):
        rows |= grown[dy : dy + h]
    out = np.zeros_like(mask)
    out[top:bottom, left:right] = rows
    return out & ~mask


def _lines(rng: np.random.Generator, pil: Image.Image, count: int) -> None:
    """Draw ``count`` long thin lines of random colour right across the image (and any shape on it)."""
    size = pil.size[0]
    draw = ImageDraw.Draw(pil)
    for _ in range(count):
        x0, y0, x1, y1 = rng.uniform(-10, size + 10, size=4)
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.choice([1, 1, 2, 2, 3])))


def _one(
    seed: int, index: int, size: int, difficulty: float = 1.0
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    # difficulty fades every nuisance but never changes what the rng draws, so the shape, its
    # colours and position are the same at every difficulty
    rng = _rng(seed, index)
    d = np.float32(difficulty)
    label = int(rng.integers(len(CLASS_NAMES)))
    mask = _shape_mask(label, rng, size)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], dtype=np.int64)

    back = _background(rng, size)
    ring = back[_ring(mask, box, 3)]
    colour = _pick_colour(rng, ring)
    if difficulty < 1:  # towards white on black (or black on white): the easiest contrast
        lighter = float(colour @ _LUMA) >= float(ring.mean(axis=0) @ _LUMA)
        shape_end, base_end = (255.0, 0.0) if lighter else (0.0, 255.0)
        colour = colour * d + np.float32(shape_end) * (1 - d)
        back = back * d + np.float32(base_end) * (1 - d)
    img = np.clip(back, 0, 255).astype(np.uint8)

    # clutter: a few thin strokes, 12-64 px long, that keep clear of the shape
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    top, left, bottom, right = box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4
    t = np.linspace(0.0, 1.0, 24)[:, None]
    for _ in range(int(rng.integers(0, 4))):
        for _try in range(8):
            cx, cy = rng.uniform(-5, size + 5, size=2)
            angle, half = rng.uniform(0, math.pi), rng.uniform(6, 32)
            dx, dy = half * math.cos(angle), half * math.sin(angle)
            x0, y0, x1, y1 = cx - dx, cy - dy, cx + dx, cy + dy
            stroke = tuple(int(v) for v in rng.integers(0, 256, size=3))
            width = int(rng.integers(1, 4))
            pts = np.array([x0, y0]) + t * np.array([x1 - x0, y1 - y0])
            hits = (pts[:, 0] > left) & (pts[:, 0] < right) & (pts[:, 1] > top) & (pts[:, 1] < bottom)
            if not hits.any():
                draw.line([(x0, y0), (x1, y1)], fill=stroke, width=width)
                break

    # the fill gets a faint shading so it is not a flat colour
    canvas = np.asarray(pil).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = _grid(size)
    shade = ((xx[mask] - 0.5) * math.cos(theta) + (yy[mask] - 0.5) * math.sin(theta)) * rng.uniform(0, 40)
    canvas[mask] = np.clip(colour + shade[:, None], 0, 255)

    # 0-2 long thin lines that may cross the shape
    pil = Image.fromarray(canvas.astype(np.uint8))
    _lines(rng, pil, int(rng.choice(3, p=[0.4, 0.35, 0.25])))
    canvas = np.asarray(pil).astype(np.float32)
    if difficulty < 1:  # strokes, shading and lines fade in with the difficulty
        plain = img.astype(np.float32)
        plain[mask] = colour
        canvas = plain + (canvas - plain) * d

    blur = rng.uniform(0.3, 1.6) * difficulty if rng.random() < 0.5 else 0.0
    sigma = rng.uniform(0, 10) * d
    noise = rng.standard_normal(canvas.shape, dtype=np.float32)
    jpeg = int(rng.integers(30, 90)) if rng.random() < 0.3 else 0
    if blur > 0.05:
        canvas = np.asarray(
            Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(blur))
        ).astype(np.float32)
    image = np.clip(canvas + noise * sigma, 0, 255).astype(np.uint8)
    if jpeg and difficulty >= 0.5:  # compression artefacts
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=jpeg)
        image = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return image, label, box, mask


def _generate_range(start: int, stop: int, seed: int, size: int, difficulty: float = 1.0) -> ShapesData:
    n = stop - start
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int64)
    boxes = np.empty((n, 4), np.int64)
    masks = np.empty((n, size, size), bool)
    for j, i in enumerate(range(start, stop)):
        images[j], labels[j], boxes[j], masks[j] = _one(seed, i, size, difficulty)
    return ShapesData(images, labels, boxes, masks)


def generate(n: int, seed: int, size: int = SIZE, difficulty: float = 1.0) -> ShapesData:
    """Generate ``n`` images from ``seed``; the same arguments always give the same arrays.

    ``difficulty`` below 1 fades the nuisances for curriculum training: at 0 a white shape lies on
    a flat black background (or black on white), without clutter or noise; shapes, positions and
    labels do not depend on it.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if size < MAX_SHAPE + 4:
        raise ValueError(f"size must be at least {MAX_SHAPE + 4}")
    return _generate_range(0, n, seed, size, float(difficulty))


def iter_batches(
    n: int,
    seed: int,
    batch: int,
    size: int = SIZE,
    start: int = 0,
    difficulty: float | Callable[[int], float] = 1.0,
) -> Iterator[ShapesData]:
    """Yield images ``start .. start+n`` of ``seed`` in batches of ``batch`` (the last may be short).

    ``difficulty`` is a number or a function of a batch's first image index (a curriculum).
    """
    if batch <= 0:
        raise ValueError("batch must be > 0")
    for lo in range(start, start + n, batch):
        d = difficulty(lo) if callable(difficulty) else difficulty
        yield _generate_range(lo, min(lo + batch, start + n), seed, size, float(d))


# ---------------------------------------------------------------------------------------------
# model


def conv_stack(x: Any, **conv1: Any) -> Any:
    """The convolutional stack of builtin:shapes on tensor x: conv1, conv2, pool1, conv3, conv4, pool2.

    Returns pool2's output. Keyword arguments go to conv1 (the training twin's kernel constraint).
    The tests build the same architecture with it.
    """
    from keras import layers

    x = layers.Conv2D(16, 3, activation="relu", name="conv1", **conv1)(x)
    x = layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv3")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv4")(x)
    return layers.MaxPooling2D(2, name="pool2")(x)


def build_model() -> Any:
    """The classic small teaching convnet; input 128x128x3 in [0, 1], conv4 is 58x58."""
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, 3), name="input")
    x = conv_stack(inputs, padding="valid")
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    x = layers.Dense(10, activation="relu", name="dense1")(x)
    x = layers.Dense(10, activation="relu", name="dense2")(x)
    outputs = layers.Dense(len(CLASS_NAMES), activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="shapes")


def evaluate(model: Any, n: int = 1000, seed: int = HOLDOUT_SEED, batch: int = 250) -> float:
    """Accuracy of ``model`` on ``n`` fresh images of ``seed`` (inputs scaled to [0, 1])."""
    data = generate(n, seed)
    probs = model.predict(data.images.astype(np.float32) / 255.0, batch_size=batch, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) == data.labels))


def run_training(run: TrainRun) -> dict:
    """Train the shapes net and save it: engine.zoo.shapes_training.run_training (imported on use)."""
    from engine.zoo import shapes_training

    return shapes_training.run_training(run)


# train(out=None, seed=0, epochs=None, progress=None, limit=None) -> metrics: see run_training
train = functools.partial(zoo.train, "shapes")
