"""Class-wise activation statistics, the channels that separate two classes, and per-image maps.

During a scan every image contributes two numbers per channel: the spatial mean
and the spatial max of its map (a dense unit's value is both). RunningMoments
keeps, per class and channel, the count, mean and sum of squared deviations,
merged batch by batch with Chan et al.'s parallel update, so memory is
classes x channels whatever the dataset size. std is the population standard
deviation (ddof=0), as numpy.std computes it by default.

Two classes a and b are compared by the standardized mean difference
d = (mean_a - mean_b) / sqrt((std_a^2 + std_b^2) / 2) (Cohen's d with the two
class variances weighted equally); channels with the largest |d| separate the
classes best. Functions that need the model (maps of example images) import
TensorFlow lazily.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.models import ModelHandle

__all__ = [
    "ClassStats",
    "RunningMoments",
    "batch_moments",
    "Separation",
    "class_examples",
    "class_grids",
    "grid_shape",
    "separating_channels",
    "strongest_maps",
]

STATS = ("mean", "max")


def batch_moments(
    group: np.ndarray, values: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: (count (G,), mean (G, C), M2 (G, C)) of rows `values` (B, C) in groups `group` (B,).

    Rows are summed group by group (sorted, np.add.reduceat), so a NaN in one image's values
    stays in its own group instead of spreading to every group through a one-hot product.
    """
    group = np.asarray(group, np.int64).reshape(-1)
    v = np.asarray(values, np.float64).reshape(group.size, -1)
    count = np.zeros(groups, np.int64)
    mean = np.zeros((groups, v.shape[1]), np.float64)
    m2 = np.zeros_like(mean)
    if group.size == 0:
        return count, mean, m2
    order = np.argsort(group, kind="stable")
    present, starts, n = np.unique(group[order], return_index=True, return_counts=True)
    sorted_v = v[order]
    mean[present] = np.add.reduceat(sorted_v, starts, axis=0) / n[:, None]
    dev = sorted_v - mean[group[order]]
    m2[present] = np.add.reduceat(dev * dev, starts, axis=0)
    count[present] = n
    return count, mean, m2


class RunningMoments:
    """Per group and channel: count, mean and M2 (sum of squared deviations), merged per batch."""

    def __init__(self, groups: int, channels: int) -> None:
        self.count = np.zeros(groups, np.int64)
        self.mean = np.zeros((groups, channels), np.float64)
        self.m2 = np.zeros((groups, channels), np.float64)

    def update(self, group: np.ndarray, values: np.ndarray) -> None:
        """Add rows `values` (B, C) belonging to groups `group` (B,) (ints in [0, groups))."""
        if np.size(group) == 0:
            return
        self.merge(*batch_moments(group, values, len(self.count)))

    def merge(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        """Fold in another set's per-group (count (G,), mean (G, C), M2 (G, C)) (Chan et al.).

        update() is batch_moments() then merge(), so a scan that merges batch moments computed
        elsewhere (a Ray worker) gets the same numbers, bit for bit, as one that updates here.
        """
        nb = np.asarray(count, np.int64).astype(np.float64)
        present = nb > 0
        if not present.any():
            return
        mb = np.asarray(mean, np.float64)
        na = self.count.astype(np.float64)
        n = na + nb
        safe = np.where(n > 0, n, 1.0)
        delta = mb - self.mean
        self.mean = np.where(present[:, None], self.mean + delta * (nb / safe)[:, None], self.mean)
        self.m2 = np.where(
            present[:, None],
            self.m2 + np.asarray(m2, np.float64) + delta * delta * (na * nb / safe)[:, None],
            self.m2,
        )
        self.count = self.count + nb.astype(np.int64)

    def std(self) -> np.ndarray:
        n = np.maximum(self.count, 1).astype(np.float64)[:, None]
        return np.sqrt(np.maximum(self.m2, 0.0) / n)

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_count": self.count, f"{prefix}_mean": self.mean, f"{prefix}_m2": self.m2}

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], prefix: str) -> RunningMoments:
        mean = arrays[f"{prefix}_mean"]
        obj = cls(*mean.shape)
        obj.count = arrays[f"{prefix}_count"].astype(np.int64)
        obj.mean = mean.astype(np.float64)
        obj.m2 = arrays[f"{prefix}_m2"].astype(np.float64)
        return obj


@dataclass(frozen=True)
class ClassStats:
    """Per class and channel: number of images, mean and std (ddof=0) of one statistic.

    stat is "mean" (the spatial mean of each map) or "max" (its spatial max).
    Arrays: count (K,), mean (K, C), std (K, C); class_names has K entries.
    """

    stat: str
    class_names: tuple[str, ...]
    count: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def index(self, cls: int | str) -> int:
        """The row of a class given by index or name."""
        if isinstance(cls, int | np.integer):
            i = int(cls)
            if not 0 <= i < len(self.class_names):
                raise EngineError(f"no class {i}; the dataset has {len(self.class_names)} classes")
            return i
        name = str(cls)
        if name in self.class_names:
            return self.class_names.index(name)
        if name.lstrip("-").isdigit():
            return self.index(int(name))
        raise EngineError(f"no class {name!r}; classes: {', '.join(self.class_names[:20])}")


@dataclass(frozen=True)
class Separation:
    """Channels ordered by how well they separate classes a and b (largest |d| first)."""

    a: str
    b: str
    stat: str
    channels: np.ndarray  # (n,) channel indices
    d: np.ndarray  # (n,) standardized mean difference, positive when a fires more
    mean_a: np.ndarray
    mean_b: np.ndarray
    std_a: np.ndarray
    std_b: np.ndarray
    count_a: int
    count_b: int


def standardized_difference(
    mean_a: np.ndarray, std_a: np.ndarray, mean_b: np.ndarray, std_b: np.ndarray
) -> np.ndarray:
    """(mean_a - mean_b) / sqrt((std_a^2 + std_b^2) / 2); 0 where both are constant and equal."""
    diff = np.asarray(mean_a, np.float64) - np.asarray(mean_b, np.float64)
    pooled = np.sqrt((np.asarray(std_a, np.float64) ** 2 + np.asarray(std_b, np.float64) ** 2) / 2.0)
    scale = np.maximum(pooled, 1e-12 * np.maximum(np.abs(diff), 1.0))
    out = np.where(pooled > 0, diff / scale, np.where(diff == 0, 0.0, np.sign(diff) * 1e6))
    return out


def separating_channels(stats: ClassStats, a: int | str, b: int | str, n: int | None = None) -> Separation:
    """The channels whose `stats.stat` best separates class a from class b (by |d|, then channel index)."""
    ia, ib = stats.index(a), stats.index(b)
    if ia == ib:
        raise EngineError("choose two different classes to compare")
    for i in (ia, ib):
        if stats.count[i] == 0:
            raise EngineError(f"class {stats.class_names[i]!r} has no images in this scan")
    d = standardized_difference(stats.mean[ia], stats.std[ia], stats.mean[ib], stats.std[ib])
    order = np.lexsort((np.arange(len(d)), -np.abs(d)))
    if n is not None:
        order = order[: int(n)]
    return Separation(
        a=stats.class_names[ia],
        b=stats.class_names[ib],
        stat=stats.stat,
        channels=order.astype(np.int64),
        d=d[order],
        mean_a=stats.mean[ia][order],
        mean_b=stats.mean[ib][order],
        std_a=stats.std[ia][order],
        std_b=stats.std[ib][order],
        count_a=int(stats.count[ia]),
        count_b=int(stats.count[ib]),
    )


def grid_shape(units: int) -> tuple[int, int]:
    """A near-square (rows, cols) grid that holds `units` cells."""
    cols = max(1, math.ceil(math.sqrt(units)))
    return max(1, math.ceil(units / cols)), cols


def class_grids(stats: ClassStats) -> np.ndarray:
    """Each class's mean activation of every unit laid out as a grid: float32 (K, rows, cols), NaN padded.

    For dense layers this is the per-class activation pattern of the whole layer at a glance.
    """
    k, units = stats.mean.shape
    rows, cols = grid_shape(units)
    out = np.full((k, rows * cols), np.nan, np.float32)
    out[:, :units] = stats.mean
    return out.reshape(k, rows, cols)


# ----- maps for chosen images (need the model) ------------------------------------------


@dataclass(frozen=True)
class StrongestMap:
    """The channel of a layer that fired most for one image (by spatial max), its value and its map."""

    channel: int
    value: float
    map: np.ndarray  # (h, w) float32, or (1, 1) for a dense unit


def layer_outputs(h: ModelHandle, layer: str, images: Sequence[np.ndarray]) -> np.ndarray:
    """The layer's outputs for images in [0, 1] (any size): float32 (B, h, w, C) or (B, units)."""
    from engine.activations import run_model
    from engine.images import to_model_input

    if len(images) == 0:
        return np.zeros((0,), np.float32)
    x = np.concatenate([to_model_input(np.asarray(img, np.float32), h) for img in images])
    (out,) = run_model(h.submodel([layer]), x)
    return out.astype(np.float32)


def strongest_maps(h: ModelHandle, images: Sequence[np.ndarray], layer: str) -> list[StrongestMap]:
    """For each image, the channel of `layer` with the highest spatial max, with that channel's map."""
    out = layer_outputs(h, h.resolve(layer), images)
    result = []
    for a in out:
        if a.ndim == 1:
            c = int(np.argmax(a))
            result.append(StrongestMap(c, float(a[c]), a[c : c + 1].reshape(1, 1)))
        else:
            peaks = a.reshape(-1, a.shape[-1]).max(axis=0)
            c = int(np.argmax(peaks))
            result.append(StrongestMap(c, float(peaks[c]), np.ascontiguousarray(a[..., c])))
    return result


def pick_examples(labels: np.ndarray, cls: int, n: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """The first n image ids with label `cls` (skipping ids in `exclude`)."""
    ids = np.flatnonzero(np.asarray(labels) == cls)
    if exclude is not None and len(exclude):
        ids = ids[~np.isin(ids, exclude)]
    return ids[:n]


def class_examples(
    h: ModelHandle,
    source: Any,
    layer: str,
    labels: np.ndarray,
    classes: Sequence[int],
    channels: Sequence[int],
    per_class: int = 4,
    exclude: np.ndarray | None = None,
) -> dict[str, Any]:
    """A few images of each class with their maps of the given channels, for a side-by-side view.

    Returns {"classes": [...], "ids": (K, n) int64 (-1 pad), "images": float32 (K, n, H, W, C)
    model-fitted images in [0, 1], "maps": float32 (K, n, len(channels), h, w)}; dense layers give
    (1, 1) maps.
    """
    from engine.dataset.sources import fit_for_model, open_source

    src = open_source(source)
    path = h.resolve(layer)
    chans = [int(c) for c in channels]
    picked = [pick_examples(labels, int(c), per_class, exclude) for c in classes]
    n = max((len(p) for p in picked), default=0)
    shape = tuple(h.input_shape)
    ids = np.full((len(classes), n), -1, np.int64)
    imgs = np.zeros((len(classes), n, *shape), np.float32)
    flat: list[np.ndarray] = []
    where: list[tuple[int, int]] = []
    for row, chosen in enumerate(picked):
        for col, i in enumerate(chosen):
            img, _ = src.load(int(i))
            fitted = fit_for_model(img, shape)
            ids[row, col] = i
            imgs[row, col] = fitted
            flat.append(fitted)
            where.append((row, col))
    out = layer_outputs(h, path, flat) if flat else np.zeros((0,), np.float32)
    if out.ndim == 2:
        mh, mw = 1, 1
    elif out.ndim == 4:
        mh, mw = out.shape[1:3]
    else:
        info = h.info(path)
        mh, mw = info.output_shape[:2] if len(info.output_shape) == 3 else (1, 1)
    maps = np.zeros((len(classes), n, len(chans), mh, mw), np.float32)
    for j, (row, col) in enumerate(where):
        a = out[j]
        for ci, c in enumerate(chans):
            maps[row, col, ci] = a[c].reshape(1, 1) if a.ndim == 1 else a[..., c]
    return {"classes": [int(c) for c in classes], "channels": chans, "ids": ids, "images": imgs, "maps": maps}
