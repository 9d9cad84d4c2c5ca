"""The scan driver: one pass of a dataset through one layer, resumable and cached.

The state machine (run_scan, a generator that yields Progress and returns the ScanResult):

    start --cache hit--> Finished(result from <cache>/scans/<key>.npz)
    start --checkpoint--> resume after the last saved batch (same batch size)
    running --batch--> Progress(done, total, "done/total images · N images/s")
        --every checkpoint_s seconds and on cancel/error--> <key>.partial.npz (a partial ScanResult)
    running --token.cancel()--> checkpoint, raise Cancelled
    running --end of data--> result written to the cache, checkpoint removed

What to scan and how is one frozen ScanRequest; scan_iter and scan take its fields as
keyword arguments for scripts and tests.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.common import drain
from engine.dataset import cache as _cache
from engine.dataset.pipeline import make_dataset
from engine.dataset.result import ScanResult
from engine.dataset.running import PAD_VALUE, RunningTopK, as_uint8, extract_crop
from engine.dataset.sources import Source, open_source
from engine.dataset.stats import STATS, RunningMoments
from engine.errors import Cancelled, EngineError
from engine.jobs import CancelToken, Progress
from engine.models import ModelHandle

__all__ = ["ScanRequest", "auto_batch_size", "run_scan", "scan", "scan_iter"]

CROP_BUDGET = 128 * 1024 * 1024  # crops kept in the result (uint8) when they fit in this many bytes
ACTIVATION_BUDGET = 384 * 1024 * 1024  # rough per-batch budget used to pick a batch size
MAX_BATCH = 256


@dataclass(frozen=True)
class ScanRequest:
    """What to scan (source, layer, k) and how.

    source: a spec string, a list of paths or a Source. batch_size None: from the layer size
    (auto_batch_size). cache=False neither reads nor writes the result cache (checkpoints too);
    resume=False ignores a checkpoint. checkpoint_every (batches) adds checkpoints at fixed batch
    counts (tests use it). cache_only=True returns the cached result or None without scanning.
    """

    source: Any
    layer: str
    k: int = 9
    batch_size: int | None = None
    cache: bool = True
    resume: bool = True
    checkpoint_s: float = 30.0
    checkpoint_every: int | None = None
    crop_budget: int = CROP_BUDGET
    cache_only: bool = False


# ----- the model side: one compiled step per (model, layer) -----------------------------------

_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _step_fn(h: ModelHandle, path: str) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
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


def auto_batch_size(h: ModelHandle, path: str) -> int:
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


# ----- what a scan accumulates ------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """The fixed facts of one scan: model, layer geometry, source, cache key, batch size."""

    h: ModelHandle
    src: Source
    path: str
    kind: str
    k: int
    units: int
    out_shape: tuple[int, ...]
    rf_obj: Any
    rf: Any
    shape: tuple[int, int, int]
    crop_shape: tuple[int, ...] | None  # None: crops not kept (over the budget)
    key: str

    @property
    def map_w(self) -> int:
        return int(self.out_shape[1]) if self.kind == "spatial" else 1


class _State:
    """Everything a scan accumulates; snapshot() is a (partial) ScanResult, resume() reads one back."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        units, k, total = plan.units, plan.k, len(plan.src)
        self.topk = RunningTopK(units, k)
        self.labels = np.full(total, -1, np.int64)
        self.strongest_channel = np.full(total, -1, np.int32)
        self.strongest_value = np.full(total, np.nan, np.float32)
        self.moments = {s: RunningMoments(len(plan.src.class_names) + 1, units) for s in STATS}
        crop = plan.crop_shape
        self.crops = np.full((units, k, *crop), PAD_VALUE, np.uint8) if crop else None
        self.skipped: list[tuple[int, str]] = []
        self.done = 0
        self.elapsed = 0.0

    def resume(self, r: ScanResult) -> None:
        """Continue from a checkpoint (copies: the result's arrays are read-only)."""
        self.topk.values = np.array(r.top_values, np.float32)
        self.topk.ids = np.array(r.top_ids, np.int64)
        self.topk.pos = r.top_pos
        self.labels = np.array(r.labels)
        self.strongest_channel = np.array(r.strongest_channel)
        self.strongest_value = np.array(r.strongest_value)
        self.skipped = list(r.skipped)
        self.moments = {s: RunningMoments.from_state(m.state("m"), "m") for s, m in r.moments.items()}
        if self.crops is not None and r.crops is not None and r.crops.shape == self.crops.shape:
            self.crops = np.array(r.crops)
        self.done = int(r.done)
        self.elapsed = float(r.elapsed)

    def snapshot(self, batch_size: int) -> ScanResult:
        """The result so far (the final result once done == total); it shares the state's arrays,
        so a checkpoint is written at once and the final result costs no copy."""
        p = self.plan
        ids = self.topk.ids
        names = np.array([[p.src.name(int(i)) if i >= 0 else "" for i in row] for row in ids], dtype=str)
        return ScanResult(
            model=str(p.h.spec),
            model_name=str(p.h.name),
            layer=p.path,
            kind=p.kind,
            k=p.k,
            source=p.src.spec,
            input_shape=p.shape,
            map_shape=tuple(int(d) for d in p.out_shape[:-1]),
            units=p.units,
            rf=p.rf,
            total=len(p.src),
            done=self.done,
            elapsed=self.elapsed,
            batch_size=batch_size,
            class_names=tuple(p.src.class_names),
            top_values=self.topk.values,
            top_ids=ids,
            top_y=(self.topk.pos // p.map_w).astype(np.int32),
            top_x=(self.topk.pos % p.map_w).astype(np.int32),
            top_names=names.reshape(ids.shape),
            labels=self.labels,
            strongest_channel=self.strongest_channel,
            strongest_value=self.strongest_value,
            skipped=tuple(sorted(self.skipped)),
            moments={s: RunningMoments.from_state(m.state("m"), "m") for s, m in self.moments.items()},
            crops=self.crops,
            key=p.key,
            opened=p.src,
        )

    def merge(self, step: Callable, ids: np.ndarray, x: np.ndarray, labels: np.ndarray) -> None:
        """Fold one batch of good images (x in [0, 1], fitted to the model) into the state."""
        from engine.scaling import to_model_range

        p = self.plan
        n_classes = len(p.src.class_names)
        mx, pos, mean = step(np.ascontiguousarray(to_model_range(x, p.h.scaling), np.float32))
        order, fresh = self.topk.update(ids, mx, pos)
        if self.crops is not None:
            self._update_crops(order, fresh, x)
        labels = np.where((labels >= 0) & (labels < n_classes), labels, -1)
        self.labels[ids] = labels
        peak = np.nan_to_num(mx, nan=-np.inf)
        best = np.argmax(peak, axis=1)
        self.strongest_channel[ids] = best.astype(np.int32)
        self.strongest_value[ids] = mx[np.arange(len(ids)), best]
        everyone = np.full(len(ids), n_classes, np.int64)  # the last group holds every image
        known = labels >= 0
        for stat, values in (("mean", mean), ("max", mx)):
            self.moments[stat].update(everyone, values)
            if known.any():
                self.moments[stat].update(labels[known], values[known])

    def _update_crops(self, order: np.ndarray, fresh: np.ndarray, x: np.ndarray) -> None:
        """Move kept crops to their new ranks and cut crops of entries new in this batch."""
        k = self.topk.k
        moved = np.any(order != np.arange(k), axis=1)
        if moved.any():
            rows = np.flatnonzero(moved)
            src_slot = np.minimum(order[rows], k - 1)
            self.crops[rows] = self.crops[rows[:, None], src_slot]
        if not fresh.any():
            return
        map_w, rf = self.plan.map_w, self.plan.rf_obj
        chans, slots = np.nonzero(fresh)
        rows_in_batch = order[chans, slots] - k
        for c, s, b in zip(chans, slots, rows_in_batch):
            if rf is None:
                self.crops[c, s] = as_uint8(x[b])
            else:
                q = int(self.topk.pos[c, s])
                self.crops[c, s] = extract_crop(x[b], rf, q // map_w, q % map_w)


# ----- the driver -----------------------------------------------------------------------------


def _handle(h: ModelHandle | str) -> ModelHandle:
    if isinstance(h, str):
        from engine.models import model_cache

        return model_cache.get(h)
    return h


def _plan(h: ModelHandle, req: ScanRequest) -> _Plan:
    """Check the request against the model and fix the scan's geometry and cache key."""
    src = open_source(req.source)
    path = h.resolve(req.layer)
    out_shape = tuple(h.symbolic(path).shape[1:])
    if len(out_shape) == 3:
        from engine.receptive_field import receptive_field

        kind = "spatial"
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
    units, k = int(out_shape[-1]), int(req.k)
    if k < 1:
        raise EngineError("k must be at least 1")
    keep_crops = units * k * int(np.prod(crop_shape)) <= req.crop_budget
    return _Plan(
        h=h,
        src=src,
        path=path,
        kind=kind,
        k=k,
        units=units,
        out_shape=out_shape,
        rf_obj=rf_obj,
        rf=rf,
        shape=tuple(int(v) for v in h.input_shape),
        crop_shape=crop_shape if keep_crops else None,
        key=_cache.scan_key(h, path, k, src.identity()) if req.cache else "",
    )


def _rate_message(done: int, total: int, rate: float) -> str:
    return f"{done:,}/{total:,} images · {rate:,.0f} images/s" if rate > 0 else f"{done:,}/{total:,} images"


def _skipped_rows(src: Source, ids: np.ndarray, ok: np.ndarray, msgs: np.ndarray) -> list[tuple[int, str]]:
    out = []
    for i, m in zip(ids[~ok], msgs[~ok]):
        text = m.decode("utf-8", "replace") if isinstance(m, bytes) else str(m)
        out.append((int(i), text or f"{src.name(int(i))}: could not be read"))
    return out


def run_scan(
    h: ModelHandle | str, req: ScanRequest, token: CancelToken | None = None
) -> Generator[Progress, None, ScanResult | None]:
    """Scan as `req` says, yielding Progress; returns the ScanResult (None: cache_only and not cached).

    h is a ModelHandle or a model spec. See the module docstring for the state machine.
    """
    h = _handle(h)
    token = token or CancelToken()
    plan = _plan(h, req)
    src, key, total = plan.src, plan.key, len(plan.src)
    if req.cache:
        result = ScanResult.read(_cache.result_path(key), opened=src, from_cache=True)
        if result is not None:
            yield Progress(
                0, result.done, result.total, None, f"{result.done:,}/{result.total:,} images · from cache"
            )
            return result
    if req.cache_only:
        return None

    state = _State(plan)
    bs = int(req.batch_size or auto_batch_size(h, plan.path))
    if req.cache and req.resume:
        ckpt = ScanResult.read(_cache.checkpoint_path(key))
        if ckpt is not None and ckpt.key == key:
            try:
                state.resume(ckpt)
                bs = ckpt.batch_size
            except (KeyError, ValueError):
                state = _State(plan)

    def save_checkpoint() -> None:
        if req.cache and 0 < state.done < total:
            state.snapshot(bs).save(_cache.checkpoint_path(key))

    step = _step_fn(h, plan.path)
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
            for ids_t, x_t, lab_t, ok_t, msg_t in make_dataset(src, plan.shape, state.done, bs):
                if token.cancelled:  # before spending a forward pass on the batch
                    raise Cancelled()
                ids, x, ok, labels = ids_t.numpy(), x_t.numpy(), ok_t.numpy(), lab_t.numpy()
                bad = _skipped_rows(src, ids, ok, msg_t.numpy())
                consistent = False  # a failure inside the merge must not be checkpointed
                if ok.any():
                    state.merge(step, ids[ok], x[ok], labels[ok])
                state.skipped.extend(bad)
                state.done = int(ids[-1]) + 1
                consistent = True
                batches += 1
                now = time.perf_counter()
                state.elapsed = base_elapsed + (now - t0)
                rate = (state.done - start_done) / (now - t0) if now > t0 else 0.0
                if token.cancelled:
                    raise Cancelled()
                every = req.checkpoint_every
                if (every and batches % every == 0) or now - last_ckpt >= req.checkpoint_s:
                    save_checkpoint()
                    last_ckpt = time.perf_counter()
                yield Progress(0, state.done, total, None, _rate_message(state.done, total, rate))
        finished = True
    finally:
        if not finished and consistent:
            save_checkpoint()

    result = state.snapshot(bs)
    if req.cache:
        result.save(_cache.result_path(key))
        _cache.remove(_cache.checkpoint_path(key))
    return result


def scan_iter(
    h: ModelHandle | str,
    source: Any,
    layer: str,
    k: int = 9,
    *,
    token: CancelToken | None = None,
    **options: Any,
) -> Generator[Progress, None, ScanResult | None]:
    """run_scan with the request's fields as arguments: options are ScanRequest's other fields."""
    return run_scan(h, ScanRequest(source, layer, k, **options), token)


def scan(
    h: ModelHandle | str,
    source: Any,
    layer: str,
    k: int = 9,
    *,
    progress: Callable[[Progress], None] | None = None,
    token: CancelToken | None = None,
    **options: Any,
) -> ScanResult:
    """Scan a dataset through one layer and return the ScanResult (from the cache when it has it).

    h: a ModelHandle or a model spec; source: a spec string, a list of paths or a Source;
    layer: a layer path of a conv (h, w, c) or dense (units,) layer; k: hits kept per unit.
    progress(event) is called with each Progress; options are ScanRequest's fields
    (batch_size, cache, resume, checkpoint_s, checkpoint_every, crop_budget, cache_only).
    A cancelled token raises engine.errors.Cancelled after checkpointing.
    """
    return drain(scan_iter(h, source, layer, k, token=token, **options), progress)
