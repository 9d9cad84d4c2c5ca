"""Typed params and results of the dataset job kinds ("scan", "scan_crops", "scan_compare", "scan_maps").

Frozen dataclasses, free of TensorFlow, so the Dataset tab imports them on its main thread: it
builds `ScanParams(...)` and submits it; engine.dataset.jobs reads its params with
`ScanParams.parse(params)` (a plain dict from the CLI, scripts and tests works too) and answers
with a ScanResult ("scan"), UnitCrops ("scan_crops"), CompareOutput ("scan_compare") or
StrongestMaps ("scan_maps"), read by attribute.

ScanParams' scan fields are ScanRequest's (engine.dataset.scanner) under the same names with the
same defaults (tests/engine/test_contract_dataset.py checks it); the handler passes exactly
those through (SCAN_REQUEST_FIELDS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.jobs import JobParams

if TYPE_CHECKING:
    from engine.dataset.result import ScanResult
    from engine.dataset.stats import ClassStats, Separation, StrongestMap

__all__ = [
    "SCAN_REQUEST_FIELDS",
    "ClassExamples",
    "CompareOutput",
    "ScanCompareParams",
    "ScanCropsParams",
    "ScanMapsParams",
    "ScanParams",
    "StrongestMaps",
    "UnitCrops",
]


# ----- params -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanParams(JobParams):
    """Scan `source` through `layer`, keeping each unit's top `k` (see engine.dataset.scanner).

    source: a spec string ("builtin:digits", a folder), a list of paths or a Source. model: a
    spec, None for the engine's current model. cache_only=True answers the cached result or None
    without scanning (the tab's instant lookup).
    """

    kind = "scan"
    source: Any = ""
    layer: str = ""
    k: int = 9
    batch_size: int | None = None  # None: from the layer size
    cache: bool = True
    resume: bool = True
    cache_only: bool = False
    runner: str = "local"  # "local" (this process) or "ray" (engine.dataset.cluster)
    address: str | None = None  # ray: None starts a local cluster; "auto" or "ray://host:port" joins one
    workers: int | None = None  # ray: model replicas (actors); None: one per CPU the cluster has
    model: str | None = None


# the ScanParams fields that are ScanRequest fields (all but `model`), passed through by name
SCAN_REQUEST_FIELDS = tuple(f.name for f in fields(ScanParams) if f.name != "model")


@dataclass(frozen=True)
class ScanCropsParams(JobParams):
    """The crops of `channels` of a scan result (a ScanResult, or the path of a saved one)."""

    kind = "scan_crops"
    result: ScanResult | str | None = None
    channels: Sequence[int] = ()


@dataclass(frozen=True)
class ScanCompareParams(JobParams):
    """The units that separate class `a` from class `b` (names or indices) by `stat`, and a few
    images of each class (`per_class`) with their maps of the `map_channels` most separating units.

    n: how many separating units the caller lists (CompareOutput.top). model: a spec, None for the
    model the result was scanned with.
    """

    kind = "scan_compare"
    result: ScanResult | str | None = None
    a: int | str = 0
    b: int | str = 1
    stat: str = "mean"
    n: int = 8
    per_class: int = 4
    map_channels: int = 3
    model: str | None = None


@dataclass(frozen=True)
class ScanMapsParams(JobParams):
    """Images `ids` of the scanned set, each with the channel that fired most on it and its map."""

    kind = "scan_maps"
    result: ScanResult | str | None = None
    ids: Sequence[int] = ()
    model: str | None = None


# ----- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class UnitCrops:
    """The "scan_crops" result: channel `channels[i]`'s top-k crops are `crops[i]`, uint8 (k, ry, rx, C)."""

    channels: tuple[int, ...]
    crops: tuple[np.ndarray, ...]

    def of(self, channel: int) -> np.ndarray:
        """The crops of `channel` (KeyError when it was not asked for)."""
        try:
            return self.crops[self.channels.index(int(channel))]
        except ValueError:
            raise KeyError(channel) from None


@dataclass(frozen=True, eq=False)
class ClassExamples:
    """A few images of each of `classes` with their maps of `channels` (engine.dataset.stats.class_examples).

    ids: (K, n) int64, -1 pads a class with fewer images; images: float32 (K, n, H, W, C)
    model-fitted, in [0, 1]; maps: float32 (K, n, len(channels), h, w), (1, 1) maps for dense layers.
    """

    classes: tuple[int, ...]
    channels: tuple[int, ...]
    ids: np.ndarray
    images: np.ndarray
    maps: np.ndarray

    @classmethod
    def of(cls, examples: Any) -> ClassExamples:
        """From class_examples' answer (a mapping with these keys, or an object with these attributes)."""
        if isinstance(examples, cls):
            return examples
        get = examples.__getitem__ if isinstance(examples, Mapping) else lambda name: getattr(examples, name)
        return cls(
            classes=tuple(int(c) for c in get("classes")),
            channels=tuple(int(c) for c in get("channels")),
            ids=get("ids"),
            images=get("images"),
            maps=get("maps"),
        )


@dataclass(frozen=True, eq=False)
class CompareOutput:
    """The "scan_compare" result: how the units separate two classes, and examples of both.

    separation: all units ranked by |d|; top: how many of them the caller lists; examples: the
    classes' images with their maps of the most separating units; stats: the per-class statistics.
    """

    separation: Separation
    top: int
    examples: ClassExamples
    stats: ClassStats


@dataclass(frozen=True, eq=False)
class StrongestMaps:
    """The "scan_maps" result (and strongest_maps_of's): images of the scanned set, fitted to the
    model, each with its strongest channel and that channel's map (maps[i] belongs to ids[i])."""

    ids: tuple[int, ...]
    images: tuple[np.ndarray, ...]
    maps: tuple[StrongestMap, ...]

    def __len__(self) -> int:
        return len(self.ids)
