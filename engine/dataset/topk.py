"""Scanning a dataset through one layer: running top-k per unit, crops, per-image and class statistics.

One pass over the set keeps, for every channel of the layer at once, the k images
whose map peaks highest, with the peak's position (image id, y, x, value), in
arrays of shape (channels, k): each batch's per-image peaks are merged into them
and the k best kept, so memory does not grow with the dataset. A hit is shown as
the crop of the (model-fitted) image under the receptive field of that cell
(engine.receptive_field), padded with grey where the field reaches past the
image; for a dense layer every unit sees the whole image, so its hits are whole
images. Ties are broken by the lower image id, so the result does not depend on
batch size or on where a scan was resumed.

The scan state machine (scan_iter, a generator that yields Progress):

    start --cache hit--> Finished(result from <cache>/scans/<key>.npz)
    start --checkpoint--> resume after the last saved batch (same batch size)
    running --batch--> Progress(done, total, "done/total images · N images/s")
        --every checkpoint_s seconds and on cancel/error--> <key>.partial.npz
    running --token.cancel()--> checkpoint, raise Cancelled
    running --end of data--> result written to the cache, checkpoint removed

Images stream through tf.data (decode and fit in parallel map calls, batch,
prefetch); a corrupt image is recorded in result.skipped and the scan goes on.
"""

from __future__ import annotations

import math
import os
import time
import weakref
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.dataset import cache as _cache
from engine.dataset.sources import Source, batch_to_float, fit_for_model, open_source
from engine.dataset.stats import (
    STATS,
    ClassStats,
    RunningMoments,
    Separation,
    class_grids,
    separating_channels,
)
from engine.errors import Cancelled, EngineError, ImageLoadError
from engine.jobs import CancelToken, Progress

__all__ = [
    "FigureLayout",
    "Hit",
    "RunningTopK",
    "ScanResult",
    "crop_box",
    "extract_crop",
    "render_units",
    "render_units_layout",
    "scan",
    "scan_iter",
]

PAD_VALUE = 128  # uint8 grey where a receptive field reaches past the image
CROP_BUDGET = 128 * 1024 * 1024  # crops kept in the result (uint8) when they fit in this many bytes
ACTIVATION_BUDGET = 384 * 1024 * 1024  # rough per-batch budget used to pick a batch size
MAX_BATCH = 256


# ----- running top-k ------------------------------------------------------------------------


class RunningTopK:
    """For each of C channels the k best (value, image id, flat position), sorted by value desc, id asc.

    Empty slots hold value -inf and id -1.
    """

    def __init__(self, channels: int, k: int) -> None:
        if k < 1:
            raise EngineError("k must be at least 1")
        self.k = int(k)
        self.values = np.full((channels, self.k), -np.inf, np.float32)
        self.ids = np.full((channels, self.k), -1, np.int64)
        self.pos = np.zeros((channels, self.k), np.int64)

    def update(self, ids: np.ndarray, values: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Merge a batch: ids (B,), values (B, C) per-image peaks, pos (B, C) their flat positions.

        Returns (order, fresh): order (C, k) says where each kept entry came from (< k: an old
        slot, >= k: batch row order - k), fresh (C, k) marks entries new in this batch.
        """
        ids = np.asarray(ids, np.int64).reshape(-1)
        b = ids.size
        c = self.values.shape[0]
        if b == 0:
            order = np.broadcast_to(np.arange(self.k), (c, self.k)).copy()
            return order, np.zeros((c, self.k), bool)
        vals = np.nan_to_num(np.asarray(values, np.float32).reshape(b, c).T, nan=-np.inf)
        cand_v = np.concatenate([self.values, vals], axis=1)
        cand_i = np.concatenate([self.ids, np.broadcast_to(ids, (c, b))], axis=1)
        cand_p = np.concatenate([self.pos, np.asarray(pos, np.int64).reshape(b, c).T], axis=1)
        id_key = np.where(cand_i < 0, np.iinfo(np.int64).max, cand_i)
        order = np.lexsort((id_key, -cand_v.astype(np.float64)), axis=-1)[:, : self.k]
        self.values = np.take_along_axis(cand_v, order, axis=1)
        self.ids = np.take_along_axis(cand_i, order, axis=1)
        self.pos = np.take_along_axis(cand_p, order, axis=1)
        return order, order >= self.k


# ----- crops --------------------------------------------------------------------------------


def crop_box(rf: Any, y: int, x: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The receptive-field box (top, left, bottom, right) of cell (y, x), clipped to an (H, W) image.

    rf None (a dense unit) means the whole image.
    """
    if rf is None:
        return 0, 0, int(shape[0]), int(shape[1])
    return rf.box_clipped(int(y), int(x), (int(shape[0]), int(shape[1])))


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    return np.clip(np.asarray(img, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def extract_crop(image: np.ndarray, rf: Any, y: int, x: int, pad: int = PAD_VALUE) -> np.ndarray:
    """uint8 (ry, rx, C): the input pixels under cell (y, x)'s receptive field, grey past the image.

    image is the model-fitted image (H, W, C), float in [0, 1] or uint8. For rf None (a dense
    unit) the whole image.
    """
    img = _to_uint8(image)
    if rf is None:
        return np.array(img, copy=True)
    hgt, wid = img.shape[:2]
    top, left, bottom, right = rf.box(int(y), int(x))
    out = np.full((rf.size[0], rf.size[1], img.shape[2]), pad, np.uint8)
    t, l_, b, r = crop_box(rf, y, x, (hgt, wid))
    if b > t and r > l_:
        out[t - top : b - top, l_ - left : r - left] = img[t:b, l_:r]
    return out


# ----- the result ---------------------------------------------------------------------------


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


@dataclass
class ScanResult:
    """What a scan of one layer over one dataset found (plain NumPy data; no TensorFlow objects).

    Per unit (axis 0 has `units` entries, axis 1 the k ranks, best first; empty slots have id -1):
    top_values, top_ids, top_y, top_x, top_names, and crops (units, k, ry, rx, C) uint8 when they
    fit CROP_BUDGET (else None: crops() loads them from the source).
    Per image (N = total): labels (-1 unknown or skipped), strongest_channel (-1 skipped) and
    strongest_value (by spatial max). skipped: [(image id, one-line reason)].
    Per class: class_stats("mean" | "max").
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
    skipped: list[tuple[int, str]]
    moments: dict[str, RunningMoments]
    crops: np.ndarray | None = None
    key: str = ""
    from_cache: bool = False
    _source: Any = field(default=None, repr=False, compare=False)

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

    def source_object(self) -> Source:
        """The dataset source (re-opened from its spec when the result came from the cache)."""
        if self._source is None:
            self._source = open_source(self.source)
        return self._source

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
        """The figure of units with their top-k crops (uint8 RGB); see render_units."""
        return render_units(self, channels, **kwargs)

    # ----- persistence ----------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {
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

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "top_values": self.top_values,
            "top_ids": self.top_ids,
            "top_y": self.top_y,
            "top_x": self.top_x,
            "top_names": np.asarray(self.top_names, dtype=str),
            "labels": self.labels,
            "strongest_channel": self.strongest_channel,
            "strongest_value": self.strongest_value,
            "skipped_ids": np.array([i for i, _ in self.skipped], np.int64),
            "skipped_messages": np.array([m for _, m in self.skipped], dtype=str).reshape(-1),
        }
        for stat, m in self.moments.items():
            arrays.update(m.state(f"stat_{stat}"))
        if self.crops is not None:
            arrays["crops"] = self.crops
        return arrays

    def save(self, path: str | os.PathLike) -> str:
        """Write the result as an npz (allow_pickle=False) atomically; returns the path."""
        from pathlib import Path

        return str(_cache.write_npz(Path(path), self._arrays(), self._meta()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> ScanResult:
        """Read a result written by save(); EngineError when the file is missing or not a scan."""
        from pathlib import Path

        got = _cache.read_npz(Path(path))
        if got is None:
            raise EngineError(f"{path}: not a readable Convscope scan file")
        return cls._from(*got)

    @classmethod
    def _from(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> ScanResult:
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
            top_values=arrays["top_values"],
            top_ids=arrays["top_ids"],
            top_y=arrays["top_y"],
            top_x=arrays["top_x"],
            top_names=arrays["top_names"],
            labels=arrays["labels"],
            strongest_channel=arrays["strongest_channel"],
            strongest_value=arrays["strongest_value"],
            skipped=[(int(i), str(m)) for i, m in zip(arrays["skipped_ids"], arrays["skipped_messages"])],
            moments={s: RunningMoments.from_state(arrays, f"stat_{s}") for s in STATS},
            crops=arrays.get("crops"),
            key=str(meta.get("key", "")),
        )


# ----- rendering the unit grid --------------------------------------------------------------


def _unit_tile(crops: np.ndarray, cell: int, gap: int = 1) -> np.ndarray:
    """k crops (k, h, w, C) uint8 as one near-square RGB tile of cells `cell` px wide."""
    from PIL import Image

    k = len(crops)
    cols = max(1, math.ceil(math.sqrt(k)))
    rows = max(1, math.ceil(k / cols))
    tile = np.full((rows * cell + (rows - 1) * gap, cols * cell + (cols - 1) * gap, 3), 255, np.uint8)
    for i, crop in enumerate(crops):
        rgb = np.repeat(crop, 3, axis=-1) if crop.shape[-1] == 1 else crop[..., :3]
        h, w = rgb.shape[:2]
        s = cell / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        resample = Image.Resampling.NEAREST if s >= 1 else Image.Resampling.LANCZOS
        im = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, resample))
        r, c = divmod(i, cols)
        y0 = r * (cell + gap) + (cell - im.shape[0]) // 2
        x0 = c * (cell + gap) + (cell - im.shape[1]) // 2
        tile[y0 : y0 + im.shape[0], x0 : x0 + im.shape[1]] = im
    return tile


def unit_tiles(result: ScanResult, channels: Sequence[int], cell: int = 48) -> list[np.ndarray]:
    """One RGB tile per channel: its top-k crops in a near-square grid."""
    return [_unit_tile(result.crops_of(int(c)), cell) for c in channels]


@dataclass(frozen=True)
class FigureLayout:
    """Where each tile of a grid figure lies (an engine.render.GridGeometry), to map a click to a unit."""

    items: tuple[int, ...]  # the unit (or other item) shown in each tile, row-major
    geometry: Any

    def item_at(self, row: float, col: float) -> int | None:
        """The item whose tile (title included) holds figure pixel (row, col), or None for a margin."""
        pos = self.geometry.position_at(row, col)
        return None if pos is None else self.items[pos]

    def tile_box(self, index: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of tile `index`'s picture (without its title) in figure pixels."""
        return tuple(self.geometry.image_rects[index])


def render_units_layout(
    result: ScanResult,
    channels: Sequence[int] | None = None,
    cols: int | None = None,
    cell: int = 48,
    titles: bool = True,
    fit: tuple[int, int] | None = None,
) -> tuple[np.ndarray, FigureLayout]:
    """The unit grid figure and its layout (the GUI maps clicks to units with layout.item_at).

    fit = (height, width) of a pane: without explicit cols, the columns that show units largest there.
    """
    chans = list(range(result.units)) if channels is None else [int(c) for c in channels]
    for c in chans:
        if not 0 <= c < result.units:
            raise EngineError(f"no unit {c} in layer {result.layer} ({result.units} units)")
    if not chans:
        raise EngineError("no units to show")
    tiles = unit_tiles(result, chans, cell)
    wide = tiles[0].shape[1] >= 84
    names = [f"{c}  max {result.top_values[c, 0]:.3g}" if wide else str(c) for c in chans]
    return tile_figure(tiles, names if titles else None, cols, items=chans, fit=fit)


def render_units(
    result: ScanResult,
    channels: Sequence[int] | None = None,
    cols: int | None = None,
    cell: int = 48,
    titles: bool = True,
) -> np.ndarray:
    """The unit grid as one uint8 RGB figure: per unit a tile of its top-k crops, titled "N  max V".

    The GUI's unit grid and `python main.py export topk` both draw with this function.
    """
    return render_units_layout(result, channels, cols, cell, titles)[0]


def tile_figure(
    tiles: list[np.ndarray],
    titles: list[str] | None,
    cols: int | None = None,
    items: Sequence[int] | None = None,
    margin: int = 6,
    fit: tuple[int, int] | None = None,
) -> tuple[np.ndarray, FigureLayout]:
    """Tiles (uint8 RGB or grey) in a near-square grid on white with titles, by engine.render.tile.

    Returns the figure and its layout (render.grid_geometry, the layout render.tile draws).
    """
    from engine import render

    th = render.text_height() if titles is not None else 0
    ch = max(t.shape[0] for t in tiles)
    cw = max(t.shape[1] for t in tiles)
    if cols is None and fit is not None:
        cols = render.best_cols(len(tiles), (ch, cw), fit, margin, th)
    geometry = render.grid_geometry(len(tiles), cols, (ch, cw), margin, th)
    image = render.tile(tiles, cols=geometry.cols, margin=margin, titles=titles)
    return image, FigureLayout(tuple(items if items is not None else range(len(tiles))), geometry)


# ----- the scan -----------------------------------------------------------------------------

_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _step_fn(h: Any, path: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """A compiled function: model-range batch -> (per-image max (B, C), argmax flat position, mean)."""
    per_handle = _STEPS.setdefault(h, {})
    if path in per_handle:
        return per_handle[path]
    import tensorflow as tf

    sub = h.submodel([path])
    out_shape = tuple(sub.outputs[0].shape[1:])
    spatial = len(out_shape) == 3
    positions = int(out_shape[0] * out_shape[1]) if spatial else 1
    channels = int(out_shape[-1])

    @tf.function(input_signature=[tf.TensorSpec((None, *h.input_shape), tf.float32)], reduce_retracing=True)
    def step(x: Any) -> Any:
        a = sub(x, training=False)
        if isinstance(a, list | tuple):
            a = a[0]
        a = tf.cast(a, tf.float32)
        if not spatial:
            return a, tf.zeros_like(a, tf.int64), a
        flat = tf.reshape(a, (-1, positions, channels))
        return tf.reduce_max(flat, 1), tf.argmax(flat, 1, output_type=tf.int64), tf.reduce_mean(flat, 1)

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mx, pos, mean = step(tf.convert_to_tensor(x))
        return mx.numpy(), pos.numpy(), mean.numpy()

    per_handle[path] = run
    return run


def auto_batch_size(h: Any, path: str) -> int:
    """A batch size that keeps the largest activation up to `path` within ACTIVATION_BUDGET."""
    biggest = int(np.prod(h.input_shape))
    for info in h.all_layers():
        shape = [d for d in info.output_shape if d]
        if shape:
            biggest = max(biggest, int(np.prod(shape)))
        if info.path == path:
            break
    per_image = 3 * 4 * biggest
    return int(max(1, min(MAX_BATCH, ACTIVATION_BUDGET // per_image)))


def _load_one(src: Source, shape: tuple[int, int, int]) -> Callable[[Any], tuple]:
    empty = np.zeros(shape, np.float32)

    def load(index: Any) -> tuple[np.ndarray, np.int64, np.bool_, bytes]:
        i = int(index)
        try:
            img, label = src.load(i)
            return fit_for_model(img, shape).astype(np.float32), np.int64(label), np.bool_(True), b""
        except ImageLoadError as exc:
            msg, name = str(exc), src.name(i)
            base = name.rsplit("/", 1)[-1]
            if msg.startswith(base + ":") and name != base:
                msg = name + msg[len(base) :]  # the path inside the dataset, not only the file name
            return empty, np.int64(-1), np.bool_(False), msg.encode("utf-8", "replace")
        except Exception as exc:  # noqa: BLE001 - any decoder failure skips the image
            msg = f"{src.name(i)}: cannot decode image ({type(exc).__name__}: {str(exc)[:100]})"
            return empty, np.int64(-1), np.bool_(False), msg.encode("utf-8", "replace")

    return load


def _load_many(src: Source, shape: tuple[int, int, int]) -> Callable[[Any], tuple]:
    one = _load_one(src, shape)

    def load(indices: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ids = np.asarray(indices, np.int64)
        got = src.load_batch(ids)
        if got is not None:
            try:
                images, labels = got
                x = batch_to_float(images, shape)
                n = len(ids)
                return x, np.asarray(labels, np.int64), np.ones(n, bool), np.array([b""] * n, dtype=object)
            except (ImageLoadError, ValueError):
                pass
        rows = [one(i) for i in ids]
        return (
            np.stack([r[0] for r in rows]),
            np.array([r[1] for r in rows], np.int64),
            np.array([r[2] for r in rows], bool),
            np.array([r[3] for r in rows], dtype=object),
        )

    return load


def make_dataset(
    src: Source, shape: tuple[int, int, int], start: int, batch_size: int, parallel: int | None = None
) -> Any:
    """tf.data pipeline of (ids, images in [0, 1] fitted to `shape`, labels, ok, message) batches.

    Images are decoded and fitted in parallel map calls (PIL through engine.images, so EXIF
    orientation, 16-bit and palette images behave as everywhere else in the app); in-memory
    sets load a whole batch per call. Only a few batches are in flight at any time.
    """
    import tensorflow as tf

    n = len(src)
    parallel = parallel or max(2, min(8, os.cpu_count() or 2))
    ids = tf.data.Dataset.range(start, n)
    h, w, c = shape
    sig = (tf.float32, tf.int64, tf.bool, tf.string)
    if src.vectorized:
        many = _load_many(src, shape)

        def fetch_many(idx: Any) -> Any:
            x, label, ok, msg = tf.numpy_function(many, [idx], sig, stateful=False)
            x.set_shape((None, h, w, c))
            label.set_shape((None,))
            ok.set_shape((None,))
            msg.set_shape((None,))
            return idx, x, label, ok, msg

        ds = ids.batch(batch_size).map(fetch_many, num_parallel_calls=min(parallel, 4), deterministic=True)
    else:
        one = _load_one(src, shape)

        def fetch(i: Any) -> Any:
            x, label, ok, msg = tf.numpy_function(one, [i], sig, stateful=False)
            x.set_shape((h, w, c))
            label.set_shape(())
            ok.set_shape(())
            msg.set_shape(())
            return i, x, label, ok, msg

        ds = ids.map(fetch, num_parallel_calls=parallel, deterministic=True).batch(batch_size)
    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = True
    return ds.with_options(options).prefetch(2)


class _State:
    """Everything a scan accumulates; saved to and restored from a checkpoint."""

    def __init__(
        self,
        units: int,
        k: int,
        total: int,
        n_classes: int,
        crop_shape: tuple[int, ...] | None,
        map_w: int = 1,
    ) -> None:
        self.topk = RunningTopK(units, k)
        self.map_w = map_w
        self.labels = np.full(total, -1, np.int64)
        self.strongest_channel = np.full(total, -1, np.int32)
        self.strongest_value = np.full(total, np.nan, np.float32)
        self.moments = {s: RunningMoments(n_classes + 1, units) for s in STATS}
        self.crops = np.full((units, k, *crop_shape), PAD_VALUE, np.uint8) if crop_shape else None
        self.skipped: list[tuple[int, str]] = []
        self.done = 0
        self.elapsed = 0.0

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "top_values": self.topk.values,
            "top_ids": self.topk.ids,
            "top_pos": self.topk.pos,
            "labels": self.labels,
            "strongest_channel": self.strongest_channel,
            "strongest_value": self.strongest_value,
            "skipped_ids": np.array([i for i, _ in self.skipped], np.int64),
            "skipped_messages": np.array([m for _, m in self.skipped], dtype=str).reshape(-1),
        }
        for stat, m in self.moments.items():
            arrays.update(m.state(f"stat_{stat}"))
        if self.crops is not None:
            arrays["crops"] = self.crops
        return arrays

    def restore(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.topk.values = arrays["top_values"].copy()
        self.topk.ids = arrays["top_ids"].copy()
        self.topk.pos = arrays["top_pos"].copy()
        self.labels = arrays["labels"].copy()
        self.strongest_channel = arrays["strongest_channel"].copy()
        self.strongest_value = arrays["strongest_value"].copy()
        self.skipped = [(int(i), str(m)) for i, m in zip(arrays["skipped_ids"], arrays["skipped_messages"])]
        self.moments = {s: RunningMoments.from_state(arrays, f"stat_{s}") for s in STATS}
        if self.crops is not None and "crops" in arrays and arrays["crops"].shape == self.crops.shape:
            self.crops = arrays["crops"].copy()
        self.done = int(meta["done"])
        self.elapsed = float(meta.get("elapsed", 0.0))


def _handle(h: Any) -> Any:
    if isinstance(h, str):
        from engine.models import model_cache

        return model_cache.get(h)
    return h


def _rate_message(done: int, total: int, rate: float) -> str:
    return f"{done:,}/{total:,} images · {rate:,.0f} images/s" if rate > 0 else f"{done:,}/{total:,} images"


def scan_iter(
    h: Any,
    source: Any,
    layer: str,
    k: int = 9,
    *,
    batch_size: int | None = None,
    cache: bool = True,
    resume: bool = True,
    token: CancelToken | None = None,
    checkpoint_s: float = 30.0,
    checkpoint_every: int | None = None,
    crop_budget: int = CROP_BUDGET,
    cache_only: bool = False,
) -> Generator[Progress, None, ScanResult | None]:
    """Scan `source` through `layer` of model `h`, yielding Progress; returns the ScanResult.

    See the module docstring for the state machine. cache=False neither reads nor writes
    the result cache (checkpoints too); resume=False ignores a checkpoint. checkpoint_every
    (batches) adds checkpoints at fixed batch counts (tests use it). cache_only=True returns
    the cached result or None without scanning (the GUI uses it to reopen a scan instantly).
    """
    h = _handle(h)
    token = token or CancelToken()
    src = open_source(source)
    path = h.resolve(layer)
    out_shape = tuple(h.symbolic(path).shape[1:])
    if len(out_shape) == 3:
        kind = "spatial"
        from engine.receptive_field import receptive_field

        rf_obj = receptive_field(h, path)
        rf = (tuple(rf_obj.size), tuple(rf_obj.stride), tuple(rf_obj.offset))
        crop_shape: tuple[int, ...] = (rf_obj.size[0], rf_obj.size[1], h.input_shape[2])
    elif len(out_shape) == 1:
        kind, rf_obj, rf = "dense", None, None
        crop_shape = tuple(h.input_shape)
    else:
        raise EngineError(
            f"layer {path} has output shape {out_shape}; a scan needs a conv layer (h, w, c) or a dense layer (units,)"
        )
    if any(d is None for d in out_shape):
        raise EngineError(f"layer {path} has an output of unknown size {out_shape}")
    units = int(out_shape[-1])
    k = int(k)
    if k < 1:
        raise EngineError("k must be at least 1")
    total = len(src)
    shape = tuple(int(v) for v in h.input_shape)
    keep_crops = units * k * int(np.prod(crop_shape)) <= crop_budget
    key = _cache.scan_key(h, path, k, src.identity()) if cache else ""

    if cache:
        got = _cache.read_npz(_cache.result_path(key))
        if got is not None:
            result = ScanResult._from(*got)
            result.from_cache = True
            result._source = src
            result.key = key
            yield Progress(
                0, result.done, result.total, None, f"{result.done:,}/{result.total:,} images · from cache"
            )
            return result
    if cache_only:
        return None

    n_classes = len(src.class_names)
    map_w = int(out_shape[1]) if kind == "spatial" else 1

    def fresh_state() -> _State:
        return _State(units, k, total, n_classes, crop_shape if keep_crops else None, map_w)

    state = fresh_state()
    bs = int(batch_size or auto_batch_size(h, path))
    if cache and resume:
        got = _cache.read_npz(_cache.checkpoint_path(key))
        if got is not None and got[1].get("key") == key:
            try:
                state.restore(*got)
                bs = int(got[1]["batch_size"])
            except (KeyError, ValueError):
                state = fresh_state()

    def save_checkpoint() -> None:
        if not cache or state.done == 0 or state.done >= total:
            return
        meta = {
            "format": _cache.FORMAT_VERSION,
            "key": key,
            "done": state.done,
            "batch_size": bs,
            "elapsed": state.elapsed,
            "layer": path,
            "source": src.spec,
        }
        _cache.write_npz(_cache.checkpoint_path(key), state.arrays(), meta)

    step = _step_fn(h, path)
    scaling = h.scaling
    from engine.scaling import to_model_range

    start_done = state.done
    yield Progress(0, state.done, total, None, _rate_message(state.done, total, 0.0))
    t0 = time.perf_counter()
    last_ckpt = t0
    base_elapsed = state.elapsed
    batches = 0
    finished = state.done >= total
    consistent = True
    try:
        if not finished:
            token.raise_if_cancelled()
            for ids_t, x_t, lab_t, ok_t, msg_t in make_dataset(src, shape, state.done, bs):
                if token.cancelled:  # before spending a forward pass on the batch
                    raise Cancelled()
                ids = ids_t.numpy()
                x = x_t.numpy()
                ok = ok_t.numpy()
                labels = lab_t.numpy()
                bad = []
                for i, m in zip(ids[~ok], msg_t.numpy()[~ok]):
                    text = m.decode("utf-8", "replace") if isinstance(m, bytes) else str(m)
                    bad.append((int(i), text or f"{src.name(int(i))}: could not be read"))
                consistent = False  # a failure inside the merge must not be checkpointed
                if ok.any():
                    _merge(
                        state, step, ids[ok], x[ok], labels[ok], scaling, to_model_range, rf_obj, n_classes
                    )
                state.skipped.extend(bad)
                state.done = int(ids[-1]) + 1
                consistent = True
                batches += 1
                now = time.perf_counter()
                state.elapsed = base_elapsed + (now - t0)
                rate = (state.done - start_done) / (now - t0) if now > t0 else 0.0
                if token.cancelled:
                    raise Cancelled()
                if (checkpoint_every and batches % checkpoint_every == 0) or now - last_ckpt >= checkpoint_s:
                    save_checkpoint()
                    last_ckpt = time.perf_counter()
                yield Progress(0, state.done, total, None, _rate_message(state.done, total, rate))
        finished = True
    finally:
        if not finished and consistent:
            save_checkpoint()

    ids_flat = state.topk.ids
    names = np.array(
        [[src.name(int(i)) if i >= 0 else "" for i in row] for row in ids_flat], dtype=str
    ).reshape(ids_flat.shape)
    pos = state.topk.pos
    result = ScanResult(
        model=str(h.spec),
        model_name=str(h.name),
        layer=path,
        kind=kind,
        k=k,
        source=src.spec,
        input_shape=shape,
        map_shape=tuple(int(d) for d in out_shape[:-1]),
        units=units,
        rf=rf,
        total=total,
        done=state.done,
        elapsed=state.elapsed,
        batch_size=bs,
        class_names=tuple(src.class_names),
        top_values=state.topk.values,
        top_ids=state.topk.ids,
        top_y=(pos // map_w).astype(np.int32),
        top_x=(pos % map_w).astype(np.int32),
        top_names=names,
        labels=state.labels,
        strongest_channel=state.strongest_channel,
        strongest_value=state.strongest_value,
        skipped=sorted(state.skipped),
        moments=state.moments,
        crops=state.crops,
        key=key,
        _source=src,
    )
    if cache:
        result.save(_cache.result_path(key))
        _cache.remove(_cache.checkpoint_path(key))
    return result


def scan(
    h: Any,
    source: Any,
    layer: str,
    k: int = 9,
    *,
    progress: Callable[[Progress], None] | None = None,
    **kwargs: Any,
) -> ScanResult:
    """Scan a dataset through one layer and return the ScanResult (from the cache when it has it).

    h: a ModelHandle or a model spec; source: a spec string, a list of paths or a Source;
    layer: a layer path of a conv (h, w, c) or dense (units,) layer; k: hits kept per unit.
    progress(event) is called with each Progress; other keyword arguments go to scan_iter
    (batch_size, cache, resume, token, checkpoint_s, checkpoint_every, crop_budget).
    A cancelled token raises engine.errors.Cancelled after checkpointing.
    """
    gen = scan_iter(h, source, layer, k, **kwargs)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(event)


def _merge(
    state: _State,
    step: Callable,
    ids: np.ndarray,
    x: np.ndarray,
    labels: np.ndarray,
    scaling: str,
    to_model_range: Callable,
    rf: Any,
    n_classes: int,
) -> None:
    """Fold one batch of good images into the state."""
    mx, pos, mean = step(np.ascontiguousarray(to_model_range(x, scaling), np.float32))
    order, fresh = state.topk.update(ids, mx, pos)
    if state.crops is not None:
        _update_crops(state, order, fresh, x, rf)
    labels = np.where((labels >= 0) & (labels < n_classes), labels, -1)
    state.labels[ids] = labels
    peak = np.nan_to_num(mx, nan=-np.inf)
    best = np.argmax(peak, axis=1)
    state.strongest_channel[ids] = best.astype(np.int32)
    state.strongest_value[ids] = mx[np.arange(len(ids)), best]
    everyone = np.full(len(ids), n_classes, np.int64)  # the last group holds every image
    known = labels >= 0
    for stat, values in (("mean", mean), ("max", mx)):
        state.moments[stat].update(everyone, values)
        if known.any():
            state.moments[stat].update(labels[known], values[known])


def _update_crops(state: _State, order: np.ndarray, fresh: np.ndarray, x: np.ndarray, rf: Any) -> None:
    """Move kept crops to their new ranks and cut crops of entries new in this batch."""
    k = state.topk.k
    moved = np.any(order != np.arange(k), axis=1)
    if moved.any():
        rows = np.flatnonzero(moved)
        src_slot = np.minimum(order[rows], k - 1)
        state.crops[rows] = state.crops[rows[:, None], src_slot]
    if not fresh.any():
        return
    map_w = state.map_w
    chans, slots = np.nonzero(fresh)
    rows_in_batch = order[chans, slots] - k
    for c, s, b in zip(chans, slots, rows_in_batch):
        if rf is None:
            state.crops[c, s] = _to_uint8(x[b])
        else:
            p = int(state.topk.pos[c, s])
            state.crops[c, s] = extract_crop(x[b], rf, p // map_w, p % map_w)
