"""builtin:shapes: procedurally generated shapes on textured backgrounds, and the net that classifies them.

Every image holds one filled shape (circle, square, triangle or star) of random colour, size
(20-56 px on its longest side) and position, rotated at random where that matters, over a random
background (smooth noise, a gradient or stripes) with a few short, thin clutter strokes that keep
clear of the shape. The shape's colour is always far (>= 130 in RGB) from the background's base
colour and the texture stays within about 50 of it, so the label is never ambiguous.

Image ``i`` of seed ``s`` comes from its own generator seeded with ``(s, i)``: ``generate(n, s)``
equals the concatenation of ``iter_batches(n, s, batch)``, any prefix of a larger set is the same,
and the data needs no storage. Seeds below 1000 are for training, seeds from 1000 on are reserved
for evaluation (the shipped model is trained on seed 0 and tested on seed 1234).

The architecture is the classic small "cats vs dogs" teaching net, so its feature maps are big
enough to look at (conv4 is 58x58). See train() for how it is trained in minutes on a CPU. Only numpy and Pillow are needed to generate data; TensorFlow is
imported inside the functions that build or train the model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from engine.errors import EngineError

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZE = 128
MIN_SHAPE = 20
MAX_SHAPE = 56
EVAL_SEED_MIN = 1000  # seeds >= this are reserved for evaluation
HOLDOUT_SEED = 1234
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# training defaults for the shipped model (about 15 min on 2 shared CPU cores)
SMALL_SIZE = 64  # phase 1 canvas
SMALL_IMAGES = 48_000  # fresh images per phase-1 pass
TRAIN_EPOCHS = 10  # phase-1 passes
RAMP_IMAGES = 96_000  # the curriculum reaches full difficulty after this many images
FULL_IMAGES = 24_000  # phase 2, at SIZE
BATCH = 32


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


def _background(rng: np.random.Generator, size: int, base: np.ndarray, difficulty: float = 1.0) -> np.ndarray:
    """A float32 (size, size, 3) textured background within ~50 of ``base`` (scaled by difficulty)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = rng.integers(3)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction) + 1e-6
    amp = rng.uniform(15, 45)
    if kind == 0:  # smooth noise: a coarse random grid upsampled
        k = int(rng.integers(3, 12))
        grid = rng.uniform(-1, 1, size=(k, k, 3)).astype(np.float32)
        up = np.stack(
            [
                np.asarray(Image.fromarray(grid[..., c]).resize((size, size), Image.Resampling.BICUBIC))
                for c in range(3)
            ],
            axis=-1,
        )
        tex = np.clip(up, -1, 1) * amp
    elif kind == 1:  # linear gradient at a random angle
        theta = rng.uniform(0, 2 * math.pi)
        t = (xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta)
        tex = (t / 0.71)[..., None] * direction * amp
    else:  # stripes, soft or hard
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(4, 28) / size
        phase = rng.uniform(0, 2 * math.pi)
        t = np.sin(2 * math.pi * ((xx * math.cos(theta) + yy * math.sin(theta)) / period) + phase)
        if rng.random() < 0.5:
            t = np.sign(t)
        tex = t[..., None] * direction * amp * 0.8
    return base[None, None, :] + tex.astype(np.float32) * np.float32(difficulty)


def _pick_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background base colour and a shape colour at least 130 apart in RGB."""
    base = rng.uniform(0, 255, size=3)
    while True:
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - base) >= 130:
            return base.astype(np.float32), colour.astype(np.float32)


def _outline(label: int, rng: np.random.Generator) -> np.ndarray | None:
    """Unit-size polygon vertices (k, 2) as (x, y) around the origin, rotated; None for a circle."""
    if label == 0:
        return None
    angle = rng.uniform(0, 2 * math.pi)
    if label == 1:
        a = angle + np.arange(4) * math.pi / 2 + math.pi / 4
        r = np.ones(4)
    elif label == 2:
        a = angle + np.arange(3) * 2 * math.pi / 3
        r = np.ones(3)
    else:
        inner = rng.uniform(0.38, 0.5)
        a = angle + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


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


def _one(
    seed: int, index: int, size: int, difficulty: float = 1.0
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    # difficulty scales texture, clutter, shading and noise but never changes what the rng draws,
    # so the shape, its colours and position are the same at every difficulty
    rng = _rng(seed, index)
    label = int(rng.integers(len(CLASS_NAMES)))
    base, colour = _pick_colours(rng)
    if difficulty < 1:  # towards white on black (or black on white): the easiest contrast
        lighter = float(colour @ _LUMA) >= float(base @ _LUMA)
        shape_end, base_end = (255.0, 0.0) if lighter else (0.0, 255.0)
        colour = (colour * difficulty + shape_end * (1 - difficulty)).astype(np.float32)
        base = (base * difficulty + base_end * (1 - difficulty)).astype(np.float32)
    img = np.clip(_background(rng, size, base, difficulty), 0, 255).astype(np.uint8)

    mask = _shape_mask(label, rng, size)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1], dtype=np.int64)

    # clutter: a few thin strokes, 12-64 px long, that keep clear of the shape (a stroke running into its outline
    # would add corners and junctions that a square or star has and a circle has not)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    top, left, bottom, right = box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4
    t = np.linspace(0.0, 1.0, 24)[:, None]
    for _ in range(int(rng.integers(1, 6))):
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
    canvas = np.asarray(pil).astype(np.float32)
    if difficulty < 1:
        canvas = img + (canvas - img) * np.float32(difficulty)

    # the fill gets a faint shading so it is not a flat colour
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    shade = ((xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta)) * rng.uniform(0, 40) * difficulty
    canvas[mask] = colour + shade[mask][:, None]
    sigma = rng.uniform(0, 8) * difficulty
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * sigma
    image = np.clip(canvas, 0, 255).astype(np.uint8)
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


def build_model() -> Any:
    """The classic small teaching convnet; input 128x128x3 in [0, 1], conv4 is 58x58."""
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, 3), name="input")
    x = layers.Conv2D(16, 3, padding="valid", activation="relu", name="conv1")(inputs)
    x = layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv3")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv4")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
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


def _build_gap_model() -> Any:
    """The training twin of build_model: same conv stack, any input size, global average pooling.

    Its dense1 reads the spatial mean of pool2, which build_model's flattened dense1 computes
    exactly when its kernel repeats the same weights at every position divided by their number
    (see _to_flat). Position-tied weights learn this task many times faster than 26,912 free ones.
    """
    import keras
    from keras import layers

    class ZeroMean(keras.constraints.Constraint):
        """Each conv1 filter sums to zero over space in every colour channel."""

        def __call__(self, w: Any) -> Any:
            return w - keras.ops.mean(w, axis=(0, 1), keepdims=True)

    inputs = keras.Input((None, None, 3), name="input")
    x = layers.Conv2D(16, 3, activation="relu", name="conv1", kernel_constraint=ZeroMean())(inputs)
    x = layers.Conv2D(16, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv3")(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv4")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    bias = keras.initializers.Constant(0.1)  # keeps the narrow relu layers alive at the start
    x = layers.Dense(10, activation="relu", name="dense1", bias_initializer=bias)(x)
    x = layers.Dense(10, activation="relu", name="dense2", bias_initializer=bias)(x)
    outputs = layers.Dense(len(CLASS_NAMES), activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="shapes_gap")


def _to_flat(gap_model: Any) -> Any:
    """build_model() computing the same function as the trained ``gap_model``."""
    flat = build_model()
    for layer in flat.layers:
        if layer.weights and layer.name != "dense1":
            layer.set_weights(gap_model.get_layer(layer.name).get_weights())
    kernel, bias = gap_model.get_layer("dense1").get_weights()  # (32, 10), (10,)
    h, w, c = flat.get_layer("pool2").output.shape[1:]
    tiled = np.tile(kernel[None, None], (h, w, 1, 1)).reshape(h * w * c, -1) / (h * w)
    flat.get_layer("dense1").set_weights([tiled.astype(np.float32), bias])
    return flat


def _dataset(n: int, seed: int, size: int, start: int = 0, difficulty: Any = 1.0) -> Any:
    """A tf.data pipeline streaming images ``start .. start+n`` of ``seed`` in [0, 1], batched.

    Every image is generated once, while the previous batches train, so no pass repeats one.
    """
    import tensorflow as tf

    def gen() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in iter_batches(n, seed, BATCH, size=size, start=start, difficulty=difficulty):
            yield b.images, b.labels

    spec = (tf.TensorSpec((None, size, size, 3), tf.uint8), tf.TensorSpec((None,), tf.int64))
    return (
        tf.data.Dataset.from_generator(gen, output_signature=spec)
        .apply(tf.data.experimental.assert_cardinality(-(-n // BATCH)))
        .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        .prefetch(8)
    )


def train(
    out: Path | None = None,
    seed: int = 0,
    epochs: int | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    limit: int | None = None,
) -> dict:
    """Train the shapes net on generated images of ``seed`` and save it to ``out``.

    From scratch, the flattened 26,912-input dense1 sits at chance for thousands of steps, and
    random colours slow learning further. So the net is trained in its position-tied form
    (_build_gap_model, whose conv1 filters are kept zero-mean so a flat colour region gives the
    same response whatever its colour), on a curriculum, then converted:

    1. ``epochs`` passes (default 10), each over SMALL_IMAGES fresh images of 64x64 (the same
       20-56 px shapes on a smaller canvas, 4x cheaper per step); the difficulty rises from white
       shapes on black to the full task over the first RAMP_IMAGES images;
    2. one pass over FULL_IMAGES fresh 128x128 images of full difficulty, at a lower learning rate;
    3. dense1's weights are repeated over pool2's 29x29 positions to fill build_model()'s kernel,
       which then computes exactly what the trained net did.

    ``limit`` caps the images of each pass (for quick tests). ``progress(epoch, epochs + 1,
    logs)`` is called after every pass. Returns the metrics, with ``holdout_accuracy`` on 1,000
    images of seed 1234 and the saved ``path``.
    """
    import keras

    from engine import zoo

    if seed >= EVAL_SEED_MIN:
        raise EngineError(
            f"training seed {seed} is reserved for evaluation; use a seed below {EVAL_SEED_MIN}"
        )
    out = Path(out) if out is not None else zoo.get("shapes").model_path
    epochs = TRAIN_EPOCHS if epochs is None else max(1, int(epochs))
    n_small = SMALL_IMAGES if limit is None else int(limit)
    n_full = FULL_IMAGES if limit is None else int(limit)
    ramp = min(RAMP_IMAGES, n_small * epochs / 3)
    keras.utils.set_random_seed(seed)
    model = _build_gap_model()
    callbacks = []
    if progress is not None:
        done = [0]

        def report(_epoch: int, logs: dict | None) -> None:
            done[0] += 1
            progress(done[0], epochs + 1, dict(logs or {}))

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=report))

    def compile_(steps: int, lr: float) -> None:
        schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps, alpha=0.05)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    t0 = time.perf_counter()
    # phase 1: each pass streams the next n_small images of the seed (the rng of image i is (seed, i));
    # the optimizer and its learning-rate schedule carry on from pass to pass
    small_steps = -(-n_small // BATCH)
    compile_(small_steps * epochs, 2e-3)
    for e in range(epochs):
        data = _dataset(
            small_steps * BATCH,
            seed,
            SMALL_SIZE,
            start=e * small_steps * BATCH,
            difficulty=lambda i: min(1.0, i / ramp),
        )
        model.fit(data, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
    # phase 2: full-size images from a disjoint range of the same seed
    compile_(-(-n_full // BATCH), 5e-4)
    history = model.fit(
        _dataset(n_full, seed, SIZE, start=10_000_000), callbacks=callbacks, verbose=0, shuffle=False
    ).history
    seconds = time.perf_counter() - t0
    flat = _to_flat(model)
    acc = evaluate(flat)
    zoo.save_clean(flat, build_model, out)
    return {
        "holdout_accuracy": acc,
        "train_accuracy": float(history["accuracy"][-1]),
        "train_images": n_small * epochs + n_full,
        "epochs": epochs + 1,
        "seconds": seconds,
        "path": str(out),
    }
