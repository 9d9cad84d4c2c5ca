"""The sample images and other files shipped in resources/: they open, and each has its licence listed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from engine.zoo import IMAGES_DIR, RESOURCES

LICENSES = RESOURCES / "LICENSES.md"
IMAGES = sorted(p for p in IMAGES_DIR.iterdir() if not p.name.startswith("."))


def _listed() -> set[str]:
    """Paths named in the first column of LICENSES.md's tables, such as `images/chelsea.jpg`."""
    text = LICENSES.read_text(encoding="utf-8")
    return set(re.findall(r"^\|\s*`([^`]+)`", text, flags=re.M))


def test_there_are_photos_digits_and_shapes() -> None:
    names = {p.stem for p in IMAGES}
    assert {"chelsea", "coffee", "astronaut"} <= names
    assert any(n.startswith("digit_") for n in names)
    assert {"shape_circle", "shape_square", "shape_triangle", "shape_star"} <= names


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_sample_image_opens_and_is_licensed(path: Path) -> None:
    assert re.fullmatch(r"[a-z0-9_]+\.(png|jpg)", path.name), "builtin:NAME needs a short lowercase name"
    with Image.open(path) as im:
        im.load()
        assert im.mode in ("L", "RGB")
        assert max(im.size) <= 512
    assert f"images/{path.name}" in _listed()


def test_sample_names_are_unique_per_stem() -> None:
    stems = [p.stem for p in IMAGES]
    assert len(stems) == len(set(stems)), "builtin:NAME would be ambiguous"


def test_every_resource_file_is_listed_and_every_listed_file_exists() -> None:
    files = {
        p.relative_to(RESOURCES).as_posix()
        for p in RESOURCES.rglob("*")
        if p.is_file() and p.name != "LICENSES.md" and not p.name.startswith(".")
    }
    listed = _listed()
    assert files - listed == set(), "files without a licence entry"
    assert listed - files == set(), "licence entries for missing files"


@pytest.mark.parametrize("name", ["circle", "square", "triangle", "star"])
def test_shape_samples_are_predicted_right_with_confidence(name: str) -> None:
    # the samples come from the generator (LICENSES.md says which images) and open builtin:shapes
    # in the app, so the shipped model must read each one as its own class, confidently
    import engine

    h = engine.load_model("builtin:shapes")
    probs = engine.predict(h, engine.load_image(f"builtin:shape_{name}"))
    assert h.class_names[int(probs.argmax())] == name
    assert probs.max() >= 0.95
