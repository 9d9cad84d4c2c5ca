"""Training of builtin:shapes: a position-tied twin of the net, trained on a curriculum, then converted.

engine.zoo.shapes holds the generator and the architecture; this module holds what only training
needs (TensorFlow is imported inside the functions). engine.zoo.train("shapes", ...) and
engine.zoo.shapes.train(...) run :func:`run_training`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.zoo import TrainRun, progress_callbacks, save_clean
from engine.zoo.shapes import (
    CLASS_NAMES,
    EVAL_SEED_MIN,
    SIZE,
    build_model,
    conv_stack,
    evaluate,
    iter_batches,
)

# training defaults for the shipped model (see run_training())
SMALL_SIZE = 64  # phase 1 canvas
SMALL_IMAGES = 15_000  # fresh images per phase-1 pass
SMALL_REUSE = 5  # each shown this many times per pass, as random variants (_augment)
TRAIN_EPOCHS = 10  # phase-1 passes
RAMP_IMAGES = 36_000  # the curriculum reaches full difficulty after this many fresh images
FULL_IMAGES = 12_000  # phase 2, at SIZE
FULL_REUSE = 3
BATCH = 32


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
    x = conv_stack(inputs, kernel_constraint=ZeroMean())
    x = layers.GlobalAveragePooling2D(name="gap", dtype="float32")(x)  # float32 even under mixed precision
    bias = keras.initializers.Constant(0.1)  # keeps the narrow relu layers alive at the start
    x = layers.Dense(10, activation="relu", name="dense1", bias_initializer=bias)(x)
    x = layers.Dense(10, activation="relu", name="dense2", bias_initializer=bias)(x)
    outputs = layers.Dense(len(CLASS_NAMES), activation="softmax", name="out", dtype="float32")(x)
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


def _augment(x: Any, y: Any) -> tuple[Any, Any]:
    """A random label-preserving variant of one uint8 image: mirrored, colour channels permuted, inverted.

    The generator's distribution is symmetric under all three (colours are drawn uniformly from
    the cube, upright shapes stay upright when mirrored), so a variant is as likely as a fresh image.
    """
    import tensorflow as tf

    x = tf.cond(tf.random.uniform(()) < 0.5, lambda: tf.image.flip_left_right(x), lambda: x)
    x = tf.gather(x, tf.random.shuffle(tf.range(3)), axis=-1)
    x = tf.cond(tf.random.uniform(()) < 0.5, lambda: 255 - x, lambda: x)
    return x, y


def _dataset(n: int, seed: int, size: int, start: int = 0, difficulty: Any = 1.0, reuse: int = 1) -> Any:
    """A tf.data pipeline streaming images ``start .. start+n`` of ``seed`` in [0, 1], batched.

    Every image is generated once, while the previous batches train. With ``reuse`` > 1 each is
    shown ``reuse`` times as random variants (_augment), spread apart by a shuffle buffer: generating
    an image costs about twice a training step on it, so this trains on more images per second.
    """
    import tensorflow as tf

    def gen() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in iter_batches(n, seed, BATCH, size=size, start=start, difficulty=difficulty):
            yield b.images, b.labels

    spec = (tf.TensorSpec((None, size, size, 3), tf.uint8), tf.TensorSpec((None,), tf.int64))
    data = tf.data.Dataset.from_generator(gen, output_signature=spec)
    if reuse > 1:
        data = (
            data.unbatch()
            .flat_map(lambda x, y: tf.data.Dataset.from_tensors((x, y)).repeat(reuse))
            .shuffle(BATCH * 64, seed=seed)
            .map(_augment)
            .batch(BATCH)
        )
    return (
        data.apply(tf.data.experimental.assert_cardinality(-(-n * reuse // BATCH)))
        .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        .prefetch(8)
    )


def run_training(run: TrainRun) -> dict:
    """Train the shapes net on generated images of ``run.seed`` and save it to ``run.out``.

    From scratch, the flattened 26,912-input dense1 sits at chance for thousands of steps, and
    random colours slow learning further. So the net is trained in its position-tied form
    (_build_gap_model, whose conv1 filters are kept zero-mean so a flat colour region gives the
    same response whatever its colour), on a curriculum, then converted:

    1. ``run.epochs`` passes (default TRAIN_EPOCHS), each over SMALL_IMAGES fresh images of 64x64 (the
       same 20-56 px shapes on a smaller canvas, 4x cheaper per step), each shown SMALL_REUSE times
       as random mirrored / channel-permuted / inverted variants (generating an image costs more
       than a training step on it); the difficulty rises from white shapes on black to the full
       task over the first RAMP_IMAGES images;
    2. one pass over FULL_IMAGES fresh 128x128 images of full difficulty (FULL_REUSE variants
       each), at a lower learning rate;
    3. dense1's weights are repeated over pool2's 29x29 positions to fill build_model()'s kernel,
       which then computes exactly what the trained net did.

    Where the hardware computes bfloat16 natively (engine.precision) the training runs in mixed
    bfloat16, several times faster than float32 on AMX CPUs; CONVSCOPE_PRECISION=float32 forces
    float32. The saved model is float32 either way.

    ``run.limit`` caps the images of each pass (for quick tests). ``run.progress(epoch, epochs + 1,
    logs)`` is called after every pass. Returns the metrics, with ``holdout_accuracy`` on 1,000
    images of seed 1234, the ``precision`` used and the saved ``path``.
    """
    import keras

    from engine.precision import resolve_precision

    seed, limit = run.seed, run.limit
    if seed >= EVAL_SEED_MIN:
        raise EngineError(
            f"training seed {seed} is reserved for evaluation; use a seed below {EVAL_SEED_MIN}"
        )
    epochs = TRAIN_EPOCHS if run.epochs is None else max(1, int(run.epochs))
    n_small = SMALL_IMAGES if limit is None else int(limit)
    n_full = FULL_IMAGES if limit is None else int(limit)
    ramp = min(RAMP_IMAGES, n_small * epochs / 3)
    keras.utils.set_random_seed(seed)
    # mixed bfloat16 where the hardware computes it natively (AVX512_BF16/AMX, recent GPUs): several
    # times faster here; the weights stay float32 and the shipped model is float32 either way
    precision = resolve_precision(None)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        model = _build_gap_model()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    callbacks = progress_callbacks(run.progress, epochs + 1)

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
    fresh = -(-n_small // BATCH) * BATCH
    compile_(fresh * SMALL_REUSE // BATCH * epochs, 2e-3)
    for e in range(epochs):
        data = _dataset(
            fresh,
            seed,
            SMALL_SIZE,
            start=e * fresh,
            difficulty=lambda i: min(1.0, i / ramp),
            reuse=SMALL_REUSE,
        )
        model.fit(data, epochs=1, callbacks=callbacks, verbose=0, shuffle=False)
    # phase 2: full-size images from a disjoint range of the same seed
    compile_(-(-n_full * FULL_REUSE // BATCH), 7e-4)
    history = model.fit(
        _dataset(n_full, seed, SIZE, start=10_000_000, reuse=FULL_REUSE),
        callbacks=callbacks,
        verbose=0,
        shuffle=False,
    ).history
    seconds = time.perf_counter() - t0
    flat = _to_flat(model)
    acc = evaluate(flat)
    save_clean(flat, build_model, run.out)
    return {
        "holdout_accuracy": acc,
        "train_accuracy": float(history["accuracy"][-1]),
        "train_images": n_small * epochs + n_full,
        "epochs": epochs + 1,
        "seconds": seconds,
        "precision": precision,
        "path": str(run.out),
    }
