"""Which shipped sample images fit a model: engine.images.rank_samples / fitting_samples.

The ranking decides the window's first image and the image browser's order, so it runs on
the GUI thread: it must not import TensorFlow or decode images.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.images import fitting_samples, rank_samples, sample_images

ROOT = Path(__file__).resolve().parents[2]
DIGITS = [s for s in sample_images() if s.startswith("builtin:digit_")]
SHAPES = [s for s in sample_images() if s.startswith("builtin:shape_")]
PHOTOS = [s for s in sample_images() if s not in DIGITS and s not in SHAPES]


def test_the_samples_the_tests_rely_on_ship() -> None:
    assert (
        len(DIGITS) == 10
        and len(SHAPES) == 4
        and "builtin:camera" in PHOTOS
        and "builtin:astronaut" in PHOTOS
    )


@pytest.mark.parametrize("shape", [None, (28, 28, 1)])
def test_builtin_digits_gets_digit_samples_first(shape) -> None:
    ranked = rank_samples(shape, "builtin:digits")
    assert ranked[:10] == DIGITS
    assert fitting_samples(shape, "builtin:digits") == DIGITS
    assert sorted(ranked) == sorted(sample_images())  # a ranking, nothing lost or repeated


@pytest.mark.parametrize("shape", [None, (128, 128, 3)])
def test_builtin_shapes_gets_shape_samples_first(shape) -> None:
    assert rank_samples(shape, "builtin:shapes")[:4] == SHAPES
    assert fitting_samples(shape, "builtin:shapes") == SHAPES


def test_keras_applications_get_photos_colour_first() -> None:
    fitting = fitting_samples(None, "keras:VGG16?weights=none")
    assert set(fitting) == set(PHOTOS)
    assert fitting[-1] == "builtin:camera"  # the grey photo after the colour ones
    assert fitting == fitting_samples((224, 224, 3), "keras:VGG16?weights=none")
    ranked = rank_samples(None, "keras:ResNet50")
    assert ranked[: len(PHOTOS)] == fitting
    assert not set(ranked[: len(PHOTOS)]) & set(DIGITS + SHAPES)


def test_one_channel_model_file_gets_digits_small_first_large_grey_photo_first() -> None:
    small = fitting_samples((28, 28, 1), "/models/mnist_variant.keras")
    assert small[:10] == DIGITS and small[10:] == ["builtin:camera"]  # grey samples only
    large = rank_samples((224, 224, 1), "/models/xray.keras")
    assert large[0] == "builtin:camera" and set(large[1:11]) == set(DIGITS)


def test_colour_model_file_gets_photos_not_the_shapes_dataset() -> None:
    fitting = fitting_samples((32, 32, 3), "cifar.h5")
    assert set(fitting) == set(PHOTOS)
    assert rank_samples((32, 32, 3), "cifar.h5")[: len(PHOTOS)] == fitting


def test_class_names_of_a_model_file_pick_the_samples_of_those_classes() -> None:
    names = ["circle", "square", "triangle", "star"]
    assert fitting_samples((64, 64, 3), "my_shapes.keras", names) == SHAPES
    digits = fitting_samples((28, 28, 3), "svhn.keras", [str(i) for i in range(10)])
    assert digits == DIGITS


def test_nothing_known_about_the_model_fits_nothing_and_keeps_name_order() -> None:
    assert fitting_samples() == []
    assert fitting_samples(None, "some/model.keras") == []
    assert rank_samples() == sample_images()


def test_sample_images_fit_takes_a_summary_dict_or_a_handle_like_object() -> None:
    summary = {"spec": "builtin:shapes", "input_shape": (128, 128, 3), "class_names": None}
    assert sample_images(fit=summary)[:4] == SHAPES

    class Handle:
        spec = "model.keras"
        input_shape = (28, 28, 1)
        class_names = None

    assert sample_images(fit=Handle())[:10] == DIGITS


def test_ranking_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from engine.images import rank_samples, fitting_samples; "
        "rank_samples((28, 28, 1), 'builtin:digits'); fitting_samples(None, 'keras:VGG16'); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
