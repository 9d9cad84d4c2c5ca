"""ScanResult: what a scan of one layer over one dataset found, immutable, with one save/load path.

A result is plain NumPy data (no TensorFlow objects). It is written with save() and read
with load()/read(); the scan driver checkpoints a scan in progress as a partial result
(done < total) through the same two functions, so the file format is defined once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from engine.dataset import cache as _cache
from engine.dataset.running import PAD_VALUE, crop_box, extract_crop
from engine.dataset.sources import Source, fit_for_model, open_source
from engine.dataset.stats import (
    STATS,
    ClassStats,
    RunningMoments,
    Separation,
    class_grids,
    separating_channels,
)
from engine.errors import EngineError, ImageLoadError

__all__ = ["Hit", "ScanResult"]

_ARRAYS = ("top_values", "top_ids", "top_y", "top_x", "labels", "strongest_channel", "strongest_value")


@dataclass(frozen=True)
class Hit:
    """One of a unit's top-k: the image, the cell where the unit peaked, its value and field box."""

    rank: int
    image_id: int
    name: str
    label: int
    y: int
    x: int
    value: float
    box: tuple[int, int, int, int]  # clipped to the model input (H, W)


@dataclass(frozen=True, eq=False)
class ScanResult:
    """What a scan of one layer over one dataset found (frozen; its arrays are read-only).

    Per unit (axis 0 has `units` entries, axis 1 the k ranks, best first; empty slots have id -1):
    top_values, top_ids, top_y, top_x, top_names, and crops (units, k, ry, rx, C) uint8 when they
    fit the crop budget (else None: crops_of() loads them from the source).
    Per image (N = total): labels (-1 unknown or skipped), strongest_channel (-1 skipped) and
    strongest_value (by spatial max). skipped: ((image id, one-line reason), ...).
    Per class: class_stats("mean" | "max"). `opened` is the open Source the scan read, if any
    (a result read from disk re-opens its source spec on first use).
    """

    model: str
    model_name: str
    layer: str
    kind: str  # "spatial" | "dense"
    k: int
    source: str
    input_shape: tuple[int, int, int]
    map_shape: tuple[int, ...]
    units: int
    rf: tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None
    total: int
    done: int
    elapsed: float
    batch_size: int
    class_names: tuple[str, ...]
    top_values: np.ndarray
    top_ids: np.ndarray
    top_y: np.ndarray
    top_x: np.ndarray
    top_names: np.ndarray
    labels: np.ndarray
    strongest_channel: np.ndarray
    strongest_value: np.ndarray
    skipped: tuple[tuple[int, str], ...]
    moments: dict[str, RunningMoments]
    crops: np.ndarray | None = None
    key: str = ""
    from_cache: bool = False
    opened: Source | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "skipped", tuple((int(i), str(m)) for i, m in self.skipped))
        for name in (*_ARRAYS, "top_names", "crops"):
            a = getattr(self, name)
            if isinstance(a, np.ndarray) and a.flags.writeable:
                view = a.view()  # read-only to readers; the array handed in stays the owner's
                view.setflags(write=False)
                object.__setattr__(self, name, view)

    # ----- top-k ----------------------------------------------------------------------
    @property
    def images_per_s(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else float("inf")

    @property
    def field(self) -> Any:
        """The layer's ReceptiveField, or None for a dense layer."""
        if self.rf is None:
            return None
        from engine.receptive_field import ReceptiveField

        size, stride, offset = self.rf
        return ReceptiveField(size=tuple(size), stride=tuple(stride), offset=tuple(offset))

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        h, w, c = self.input_shape
        if self.rf is None:
            return (h, w, c)
        return (self.rf[0][0], self.rf[0][1], c)

    @property
    def top_pos(self) -> np.ndarray:
        """Flat map positions of the top-k (y * map width + x), as the running top-k keeps them."""
        map_w = int(self.map_shape[1]) if self.kind == "spatial" else 1
        return self.top_y.astype(np.int64) * map_w + self.top_x.astype(np.int64)

    def box(self, channel: int, rank: int) -> tuple[int, int, int, int]:
        return crop_box(
            self.field, self.top_y[channel, rank], self.top_x[channel, rank], self.input_shape[:2]
        )

    def hits(self, channel: int) -> list[Hit]:
        """The unit's top-k, best first (fewer than k when the set is smaller)."""
        out = []
        for rank in range(self.k):
            i = int(self.top_ids[channel, rank])
            if i < 0:
                break
            out.append(
                Hit(
                    rank=rank,
                    image_id=i,
                    name=str(self.top_names[channel, rank]),
                    label=int(self.labels[i]) if 0 <= i < len(self.labels) else -1,
                    y=int(self.top_y[channel, rank]),
                    x=int(self.top_x[channel, rank]),
                    value=float(self.top_values[channel, rank]),
                    box=self.box(channel, rank),
                )
            )
        return out

    @cached_property
    def _source_object(self) -> Source:
        return self.opened if self.opened is not None else open_source(self.source)

    def source_object(self) -> Source:
        """The dataset source (re-opened from its spec when the result came from disk)."""
        return self._source_object

    def crops_of(self, channel: int) -> np.ndarray:
        """uint8 (k, ry, rx, C) crops of the unit's top-k (grey for empty slots)."""
        if self.crops is not None:
            return self.crops[channel]
        out = np.full((self.k, *self.crop_shape), PAD_VALUE, np.uint8)
        src = self.source_object()
        rf = self.field
        for rank in range(self.k):
            i = int(self.top_ids[channel, rank])
            if i < 0:
                break
            try:
                img, _ = src.load(i)
            except ImageLoadError:
                continue
            fitted = fit_for_model(img, self.input_shape)
            out[rank] = extract_crop(fitted, rf, self.top_y[channel, rank], self.top_x[channel, rank])
        return out

    # ----- statistics -----------------------------------------------------------------
    def class_stats(self, stat: str = "mean") -> ClassStats:
        """Per class: count, mean and std of each channel's spatial `stat` ("mean" or "max")."""
        if stat not in STATS:
            raise EngineError(f"unknown statistic {stat!r}; choose mean or max")
        m = self.moments[stat]
        k = len(self.class_names)
        return ClassStats(stat, tuple(self.class_names), m.count[:k].copy(), m.mean[:k].copy(), m.std()[:k])

    def overall_stats(self, stat: str = "mean") -> ClassStats:
        """Like class_stats over every scanned image as one class named "all"."""
        m = self.moments[stat]
        return ClassStats(stat, ("all",), m.count[-1:].copy(), m.mean[-1:].copy(), m.std()[-1:])

    def separating(self, a: int | str, b: int | str, n: int | None = None, stat: str = "mean") -> Separation:
        """Channels that separate classes a and b most (standardized mean difference)."""
        if not self.class_names:
            raise EngineError("this dataset has no labels; use a folder with one sub-folder per class")
        return separating_channels(self.class_stats(stat), a, b, n)

    def class_grids(self, stat: str = "mean") -> np.ndarray:
        """Each class's mean activation of every unit as a near-square grid (K, rows, cols)."""
        return class_grids(self.class_stats(stat))

    def unit_grid(self, channels: Sequence[int] | None = None, **kwargs: Any) -> np.ndarray:
        """The figure of units with their top-k crops (uint8 RGB); see figures.render_units."""
        from engine.dataset.figures import render_units

        return render_units(self, channels, **kwargs)

    # ----- persistence: the one file format ------------------------------------------
    def to_npz(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, meta): what save() writes and from_npz() reads back."""
        meta = {
            "format": _cache.FORMAT_VERSION,
            "model": self.model,
            "model_name": self.model_name,
            "layer": self.layer,
            "kind": self.kind,
            "k": self.k,
            "source": self.source,
            "input_shape": list(self.input_shape),
            "map_shape": list(self.map_shape),
            "units": self.units,
            "rf": [list(map(int, part)) for part in self.rf] if self.rf else None,
            "total": self.total,
            "done": self.done,
            "elapsed": self.elapsed,
            "batch_size": self.batch_size,
            "class_names": list(self.class_names),
            "key": self.key,
        }
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays["top_names"] = np.asarray(self.top_names, dtype=str)
        arrays["skipped_ids"] = np.array([i for i, _ in self.skipped], np.int64)
        arrays["skipped_messages"] = np.array([m for _, m in self.skipped], dtype=str).reshape(-1)
        for stat, m in self.moments.items():
            arrays.update(m.state(f"stat_{stat}"))
        if self.crops is not None:
            arrays["crops"] = self.crops
        return arrays, meta

    @classmethod
    def from_npz(
        cls,
        arrays: dict[str, np.ndarray],
        meta: dict[str, Any],
        *,
        opened: Source | None = None,
        from_cache: bool = False,
    ) -> ScanResult:
        """The result to_npz() described; KeyError when a field is missing."""
        rf = meta.get("rf")
        return cls(
            model=meta["model"],
            model_name=meta["model_name"],
            layer=meta["layer"],
            kind=meta["kind"],
            k=int(meta["k"]),
            source=meta["source"],
            input_shape=tuple(meta["input_shape"]),
            map_shape=tuple(meta["map_shape"]),
            units=int(meta["units"]),
            rf=tuple(tuple(p) for p in rf) if rf else None,
            total=int(meta["total"]),
            done=int(meta["done"]),
            elapsed=float(meta["elapsed"]),
            batch_size=int(meta["batch_size"]),
            class_names=tuple(meta["class_names"]),
            **{name: arrays[name] for name in _ARRAYS},
            top_names=arrays["top_names"],
            skipped=tuple(zip(arrays["skipped_ids"], arrays["skipped_messages"])),
            moments={s: RunningMoments.from_state(arrays, f"stat_{s}") for s in STATS},
            crops=arrays.get("crops"),
            key=str(meta.get("key", "")),
            from_cache=from_cache,
            opened=opened,
        )

    def save(self, path: str | os.PathLike) -> str:
        """Write the result as an npz (allow_pickle=False) atomically; returns the path."""
        return str(_cache.write_npz(Path(path), *self.to_npz()))

    @classmethod
    def read(cls, path: str | os.PathLike, **kwargs: Any) -> ScanResult | None:
        """The result in `path`, or None when the file is missing, unreadable or not a whole scan file."""
        got = _cache.read_npz(Path(path))
        if got is None:
            return None
        try:
            return cls.from_npz(*got, **kwargs)
        except (KeyError, ValueError, TypeError):
            return None

    @classmethod
    def load(cls, path: str | os.PathLike) -> ScanResult:
        """Read a result written by save(); EngineError when the file is missing or not a scan."""
        result = cls.read(path)
        if result is None:
            raise EngineError(f"{path}: not a readable Convscope scan file")
        return result
