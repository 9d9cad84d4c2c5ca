"""Built-in models: the registry of what ships in resources/models and how to retrain each.

``builtin:digits`` (a small MNIST net) and ``builtin:shapes`` (a teaching net on generated
shapes) make Convscope useful on a fresh offline machine. Each has a module here with its data,
``build_model()`` and ``train()``; this package only names them, so importing it is cheap and
never imports TensorFlow.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import engine
from engine.errors import ModelLoadError

RESOURCES = Path(engine.__file__).resolve().parent.parent / "resources"
MODELS_DIR = RESOURCES / "models"
DATA_DIR = RESOURCES / "data"
IMAGES_DIR = RESOURCES / "images"


@dataclass(frozen=True)
class BuiltinSpec:
    """What the app needs to know about a built-in model without loading it.

    scaling "unit" means the model takes inputs in [0, 1].
    """

    name: str
    description: str
    model_path: Path
    class_names: tuple[str, ...]
    scaling: str
    module: str


_SPECS: dict[str, BuiltinSpec] = {
    "digits": BuiltinSpec(
        name="digits",
        description="Handwritten digits 0-9 (28x28 grey), a small convnet trained on a 5,000-image MNIST subset",
        model_path=MODELS_DIR / "digits.keras",
        class_names=tuple(str(i) for i in range(10)),
        scaling="unit",
        module="engine.zoo.digits",
    ),
    "shapes": BuiltinSpec(
        name="shapes",
        description="Circle, square, triangle or star on a busy background (128x128 RGB), generated data",
        model_path=MODELS_DIR / "shapes.keras",
        class_names=("circle", "square", "triangle", "star"),
        scaling="unit",
        module="engine.zoo.shapes",
    ),
}


def builtin_models() -> list[str]:
    """Names of the built-in models, usable as "builtin:NAME"."""
    return list(_SPECS)


def get(name: str) -> BuiltinSpec:
    """The spec of built-in model ``name``; an unknown name raises ModelLoadError."""
    spec = _SPECS.get(name)
    if spec is None:
        raise ModelLoadError(f"unknown built-in model {name!r}; choose from: {', '.join(_SPECS)}")
    return spec


Progress = Callable[[int, int, dict], None]  # progress(epochs done, epochs in all, logs)


@dataclass(frozen=True)
class TrainRun:
    """One training run of a built-in model as :func:`train` resolved it, for the module's run_training().

    out: the file to write; epochs: None for the model's default; progress: called after every
    epoch; limit: how many training images (None: the model's default; small for quick tests).
    """

    out: Path
    seed: int = 0
    epochs: int | None = None
    progress: Progress | None = None
    limit: int | None = None


def train(
    name: str,
    out: Path | None = None,
    seed: int = 0,
    epochs: int | None = None,
    progress: Progress | None = None,
    **kwargs: Any,
) -> dict:
    """Retrain built-in model ``name`` from its shipped (or generated) data and save it.

    ``out`` defaults to the shipped file in resources/models. ``progress(epoch, epochs, logs)``
    is called after each epoch. Extra keyword arguments (such as ``limit``, the number of
    training images) go to the model's own training (see :class:`TrainRun`). Returns metrics
    including ``holdout_accuracy`` and ``path``. Each model module's ``train`` is this function
    with its name filled in.
    """
    spec = get(name)
    module = importlib.import_module(spec.module)
    out = Path(out) if out is not None else spec.model_path
    return module.run_training(TrainRun(out=out, seed=seed, epochs=epochs, progress=progress, **kwargs))


def progress_callbacks(progress: Progress | None, total: int) -> list[Any]:
    """Keras callbacks that call ``progress(epochs done, total, logs)`` after every epoch of every fit.

    The count runs on across fit() calls; no callbacks without progress.
    """
    if progress is None:
        return []
    import keras

    done = 0

    def report(_epoch: int, logs: dict | None) -> None:
        nonlocal done
        done += 1
        progress(done, total, dict(logs or {}))

    return [keras.callbacks.LambdaCallback(on_epoch_end=report)]


def save_clean(model: Any, build: Callable[[], Any], out: Path) -> Path:
    """Save ``model``'s weights in a fresh, uncompiled copy of its architecture to ``out``, atomically.

    Dropping the optimizer state keeps the file small, and the fresh copy holds only standard
    layers, so it loads with keras.saving.load_model(path, safe_mode=True).
    """
    import keras

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean = build()
    clean.set_weights(model.get_weights())
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=out.parent, prefix=f".{out.stem}-")
    os.close(fd)
    try:
        keras.saving.save_model(clean, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shipped model is readable by all
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out
