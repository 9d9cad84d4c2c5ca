"""How active each unit of a layer is on real images: which channel to show first, which are dead.

``unit_activity(h, "conv4", images)`` runs images through the model and returns, per channel
(per unit of a dense layer), the mean and the max of the layer's output *after* its activation
over every image and position, and ``flat``, its mean response to a flat image of the scanned
images' mean colour. The Maximize tab opens on ``activity.best``, the unit whose mean on the
sample images that fit the model most exceeds its response to that flat image: a unit that
responds to structure in the images, not to brightness alone (the plain largest mean picks
"white detectors" whose maximizer is a blank white image). It reports ``activity.dead`` (zero on
every image of a scan) with its evidence; bench scripts call it directly::

    from engine.maximize.units import natural_images, unit_activity

    act = unit_activity(h, "conv4", natural_images(h, 1000))
    act.dead, act.best, act.dead_note()   # e.g. "channel 7 is zero on all 1,000 scanned images ..."

``images`` is a float (N, H, W, C) array in display range [0, 1] (uint8 is divided by 255), or
any iterable of such batches or of single (H, W, C) images, or a dataset source spec
("builtin:shapes?n=256"); images are fitted to the model's input size and channels.
``natural_images(h, n)`` gives n images of a model's own data: its built-in data source for
builtin:digits and builtin:shapes, else the shipped sample images that fit it.
Importing this module does not import TensorFlow.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.models import ModelHandle

__all__ = [
    "UnitActivity",
    "iter_unit_activity",
    "natural_images",
    "natural_source",
    "sample_batch",
    "start_response",
    "unit_activity",
]

BUILTIN_SOURCES = {"digits": "builtin:digits", "shapes": "builtin:shapes"}


@dataclass(frozen=True)
class UnitActivity:
    """Per-unit statistics of one layer's post-activation output over `count` images.

    mean, max: float32 (C,) over every image and spatial position; flat: float32 (C,), the mean
    response to a flat image of the scanned images' mean colour (None when not measured);
    source: what was scanned; unit: "channel" for a layer with spatial axes, "unit" for a dense
    layer (used in notes).
    """

    layer: str
    mean: np.ndarray
    max: np.ndarray
    count: int
    source: str = ""
    unit: str = "channel"
    flat: np.ndarray | None = None
    start: np.ndarray | None = None  # max output after the activation on a maximization's start image

    @property
    def dead(self) -> tuple[int, ...]:
        """Units whose output is zero (or negative) at every position of every scanned image."""
        return tuple(int(i) for i in np.flatnonzero(self.max <= 0.0))

    @property
    def alive(self) -> tuple[int, ...]:
        return tuple(int(i) for i in np.flatnonzero(self.max > 0.0))

    @property
    def selectivity(self) -> np.ndarray:
        """mean minus the response to a flat image (the mean alone when that was not measured)."""
        return self.mean if self.flat is None else self.mean - self.flat

    @property
    def best(self) -> int:
        """The live unit that responds most to the images beyond a flat image of their colour
        (the one worth looking at first); dead units only when every unit is dead. When `start`
        was measured (a run that reads units after their activation), units that fire on the
        start image come first: a unit silent there gets no gradient."""
        live = self.max > 0.0
        if self.start is not None and (live & (self.start > 0.0)).any():
            live = live & (self.start > 0.0)
        score = np.where(live, self.selectivity, -np.inf)
        return int(np.argmax(score)) if np.isfinite(score).any() else int(np.argmax(self.mean))

    def dead_note(self) -> str:
        """One line naming the dead units and the evidence, '' when none is dead."""
        dead = self.dead
        if not dead:
            return ""
        what = self.unit if len(dead) == 1 else f"{self.unit}s"
        listed = ", ".join(str(i) for i in dead[:12]) + (
            f" and {len(dead) - 12} more" if len(dead) > 12 else ""
        )
        verb = "is" if len(dead) == 1 else "are"
        images = "image" if self.count == 1 else "images"
        where = f" ({self.source})" if self.source else ""
        return (
            f"{what} {listed} of {self.layer} {verb} zero on all {self.count:,} scanned {images}{where}: dead"
        )


def _fit_batch(batch: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """float32 (B, H, W, C) in [0, 1] of the model's input shape from a batch or a single image."""
    from engine.images import fit_image

    arr = np.asarray(batch)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4)):
        arr = arr[..., None]  # (H, W) image or (B, H, W) grey batch
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise EngineError(f"images of shape {np.shape(batch)} are neither an image nor a batch")
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    if tuple(arr.shape[1:]) == tuple(shape):
        return arr
    return np.stack([fit_image(a, shape) for a in arr])


def _batches(images: Any, batch: int) -> Iterator[np.ndarray]:
    """Batches (arrays) of at most `batch` images from an array, an iterable or a source spec."""
    if isinstance(images, str):
        from engine.dataset.sources import open_source

        source = open_source(images)
        for lo in range(0, len(source), batch):
            indices = np.arange(lo, min(lo + batch, len(source)))
            loaded = source.load_batch(indices) if source.vectorized else None
            yield loaded[0] if loaded is not None else np.stack([source.load(int(i))[0] for i in indices])
        return
    if isinstance(images, np.ndarray):
        arr = images if images.ndim == 4 or (images.ndim == 3 and images.shape[-1] not in (1, 3, 4)) else None
        if arr is None:
            yield images
            return
        for lo in range(0, len(arr), batch):
            yield arr[lo : lo + batch]
        return
    if not isinstance(images, Iterable):
        raise EngineError(f"cannot read images from {type(images).__name__}")
    pending: list[np.ndarray] = []
    for item in images:
        arr = np.asarray(item)
        if arr.ndim == 4:
            yield from _batches(arr, batch)
        else:
            pending.append(arr)
            if len(pending) == batch:
                yield pending[0][None] if len(pending) == 1 else np.stack(pending)
                pending = []
    if pending:
        yield np.stack(pending)


def iter_unit_activity(
    h: ModelHandle,
    layer: str,
    images: np.ndarray | Iterable[np.ndarray] | str,
    batch: int = 64,
    source: str = "",
) -> Generator[int, None, UnitActivity]:
    """unit_activity as a generator: yields the number of images done after each batch (so a
    job can report progress and stop between batches) and returns the UnitActivity.

    images: float (N, H, W, C) in [0, 1] (uint8 is scaled), an iterable of batches or single
    images, or a dataset source spec; each is fitted to the model's input. batch: images per
    forward pass. source: a description stored in the result (a spec string names itself).
    """
    from engine.activations import run_model
    from engine.scaling import to_model_range

    if batch < 1:
        raise EngineError(f"batch must be at least 1, got {batch}")
    path = h.resolve(layer)
    model = h.submodel((path,))
    shape = tuple(int(s) for s in h.input_shape)
    total: np.ndarray | None = None
    peak: np.ndarray | None = None
    count = 0
    positions = 0
    spatial = True
    colour = np.zeros(shape[-1], np.float64)  # sum of the images' pixel means, per channel
    for chunk in _batches(images, batch):
        fitted = _fit_batch(chunk, shape)
        colour += fitted.reshape(-1, shape[0] * shape[1], shape[-1]).mean(axis=1).sum(axis=0)
        x = to_model_range(fitted, h.scaling).astype(np.float32)
        out = run_model(model, x)[0]
        spatial = out.ndim == 4
        flat = out.reshape(-1, out.shape[-1]).astype(np.float64)
        sums, tops = flat.sum(axis=0), flat.max(axis=0)
        total = sums if total is None else total + sums
        peak = tops if peak is None else np.maximum(peak, tops)
        count += int(out.shape[0])
        positions += int(flat.shape[0])
        yield count
    if total is None or peak is None:
        raise EngineError("no images to measure the units on")
    if not source and isinstance(images, str):
        source = images
    mean = (total / positions).astype(np.float32)
    flat_image = np.broadcast_to(colour / count, shape)[None].astype(np.float32)
    flat_out = run_model(model, to_model_range(flat_image, h.scaling).astype(np.float32))[0]
    flat = flat_out.reshape(-1, flat_out.shape[-1]).mean(axis=0).astype(np.float32)
    unit = "channel" if spatial else "unit"
    return UnitActivity(path, mean, peak.astype(np.float32), count, source, unit, flat)


def unit_activity(h: ModelHandle, layer: str, *args: Any, **options: Any) -> UnitActivity:
    """Per-unit mean and max of `layer`'s output (after its activation) over `images`.

    The arguments are iter_unit_activity's (images, batch, source: see there), run to the end.
    """
    from engine.common import drain

    return drain(iter_unit_activity(h, layer, *args, **options))


def start_response(h: ModelHandle, layer: str, image: np.ndarray) -> np.ndarray:
    """float32 (C,): each unit's max output (after its activation) on one start image in [0, 1]."""
    from engine.activations import run_model
    from engine.scaling import to_model_range

    shape = tuple(int(s) for s in h.input_shape)
    x = to_model_range(_fit_batch(image, shape), h.scaling).astype(np.float32)
    out = run_model(h.submodel((h.resolve(layer),)), x)[0]
    return out.reshape(-1, out.shape[-1]).max(axis=0).astype(np.float32)


def natural_source(h: ModelHandle, n: int = 1000, seed: int | None = None) -> str | None:
    """The dataset source spec of a built-in model's own data (n images), else None."""
    spec = str(getattr(h, "spec", "") or "")
    if not spec.startswith("builtin:"):
        return None
    name = spec[len("builtin:") :].split("?", 1)[0].lower()
    base = BUILTIN_SOURCES.get(name)
    if base is None:
        return None
    query = f"n={int(n)}" + (f"&seed={int(seed)}" if seed is not None and name == "shapes" else "")
    return f"{base}?{query}"


def sample_batch(h: ModelHandle) -> tuple[np.ndarray, list[str]]:
    """The shipped sample images that fit model h (a digit for a 28x28 grey model, shapes for
    builtin:shapes, photos for a colour model), fitted to its input: ((N, H, W, C), specs)."""
    from engine.images import fitting_samples, load_image, sample_images

    specs = fitting_samples(tuple(h.input_shape), getattr(h, "spec", None), getattr(h, "class_names", None))
    specs = specs or sample_images()
    if not specs:
        raise EngineError("no sample images shipped")
    shape = tuple(int(s) for s in h.input_shape)
    return np.concatenate([_fit_batch(load_image(s), shape) for s in specs]), list(specs)


def natural_images(h: ModelHandle, n: int = 1000, seed: int | None = None) -> np.ndarray:
    """float32 (N, H, W, C) in [0, 1]: n images of model h's own data (its built-in data source for
    builtin:digits / builtin:shapes), else the sample images that fit it (fewer than n then)."""
    spec = natural_source(h, n, seed)
    if spec is None:
        return sample_batch(h)[0][:n]
    shape = tuple(int(s) for s in h.input_shape)
    return np.concatenate(list(_fit_batch(b, shape) for b in _batches(spec, 64)))
