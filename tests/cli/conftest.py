"""Fixtures shared by the CLI tests: the tiny 3-class attribution model and its photo, written once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def cam_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 3-class convnet (24x24x3 -> conv1, conv2 stride 2, GAP, softmax) saved as .keras, with
    the class names cat, dog, owl beside it in tiny.classes.txt."""
    import keras
    from keras import layers

    root = tmp_path_factory.mktemp("cam_model")
    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 24, 3))
    x = layers.Conv2D(6, 3, activation="relu", name="conv1")(inp)
    x = layers.Conv2D(8, 3, strides=2, activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(3, activation="softmax", name="out")(x)
    model_path = root / "tiny.keras"
    keras.Model(inp, out, name="tiny").save(model_path)
    (root / "tiny.classes.txt").write_text("cat\ndog\nowl\n")
    return model_path


@pytest.fixture(scope="session")
def cam_files(cam_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Path]]:
    """cam_files(patch=False): {"model", "image", "root"}: cam_model and a 30x40 random PNG; with
    patch=True a bright yellow 15x20 patch at rows 5:20, columns 10:30 (one photo per variant)."""
    made: dict[bool, dict[str, Path]] = {}

    def files(patch: bool = False) -> dict[str, Path]:
        if patch not in made:
            root = tmp_path_factory.mktemp("cam_photo_patch" if patch else "cam_photo")
            img = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)
            if patch:
                img[5:20, 10:30] = [230, 200, 40]
            image_path = root / "photo.png"
            Image.fromarray(img).save(image_path)
            made[patch] = {"model": cam_model, "image": image_path, "root": root}
        return dict(made[patch])

    return files
