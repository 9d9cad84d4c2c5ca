"""The scan driver: one pass of a dataset through one layer, resumable and cached.

The state machine (run_scan, a generator that yields Progress and returns the ScanResult):

    start --cache hit--> Finished(result from <cache>/scans/<key>.npz)
    start --checkpoint--> resume after the last saved batch (same batch size)
    running --batch--> Progress(done, total, "done/total images · N images/s")
        --every checkpoint_s seconds and on cancel/error--> <key>.partial.npz (a partial ScanResult)
    running --token.cancel()--> checkpoint, raise Cancelled
    running --end of data--> result written to the cache, checkpoint removed

Every batch reduces to an engine.dataset.reduce.BatchSummary (its top-k per channel, each
image's strongest channel, per-class moments), folded in batch order; the runner decides
where batches run: "local" (tf.data here) or "ray" (engine.dataset.cluster, crops read for the
hits afterwards). Both fold the same summaries, so both give the same result.

What to scan and how is one frozen ScanRequest; scan_iter and scan take its fields as
keyword arguments for scripts and tests.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.common import drain
from engine.dataset import cache as _cache
from engine.dataset.pipeline import load_rows, make_dataset
from engine.dataset.reduce import BatchSummary, summarize
from engine.dataset.result import ScanResult
from engine.dataset.running import PAD_VALUE, RunningTopK, as_uint8, extract_crop
from engine.dataset.sources import Source, open_source
from engine.dataset.stats import STATS, RunningMoments
from engine.errors import Cancelled, EngineError
from engine.jobs import CancelToken, Progress
from engine.models import ModelHandle

__all__ = ["ScanRequest", "auto_batch_size", "reduce_batch", "run_scan", "scan", "scan_iter"]

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
    runner "ray" runs the batches on a Ray cluster (engine.dataset.cluster): address None starts
    an embedded local one, "auto" or "ray://host:port" joins a running one; workers is the number
    of model replicas (None: one per CPU). The answer is the local scan's, so the cache key
    does not depend on the runner.
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
    runner: str = "local"
    address: str | None = None
    workers: int | None = None


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
        self.crops_stale = False  # True: crops wait for fill_crops (a Ray scan, or a checkpoint without them)
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
        if self.crops is not None:
            if r.crops is not None and r.crops.shape == self.crops.shape:
                self.crops = np.array(r.crops)
            else:
                self.crops_stale = True
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
            crops=None if self.crops_stale else self.crops,
            key=p.key,
            opened=p.src,
        )

    def fold(self, s: BatchSummary, x: np.ndarray | None = None) -> None:
        """Fold one batch's summary in, in batch order. x: the batch's fitted images in [0, 1]
        (rows in s.ids order) to cut new hits' crops from; None marks the crops stale (a Ray
        batch: the crops are read afterwards, for the hits only, by fill_crops)."""
        order, fresh = self.topk.merge(s.top_values, s.top_ids, s.top_pos)
        if x is None:
            self.crops_stale = True
        elif self.crops is not None and not self.crops_stale:
            self._update_crops(order, fresh, s, x)
        self.labels[s.ids] = s.labels
        self.strongest_channel[s.ids] = s.strongest_channel
        self.strongest_value[s.ids] = s.strongest_value
        for stat, moments in s.moments.items():
            self.moments[stat].merge(*moments)
        self.skipped.extend(s.skipped)
        self.done = s.end

    def _update_crops(self, order: np.ndarray, fresh: np.ndarray, s: BatchSummary, x: np.ndarray) -> None:
        """Move kept crops to their new ranks and cut crops of entries new in this batch."""
        k = self.topk.k
        moved = np.any(order != np.arange(k), axis=1)
        if moved.any():
            rows = np.flatnonzero(moved)
            src_slot = np.minimum(order[rows], k - 1)
            self.crops[rows] = self.crops[rows[:, None], src_slot]
        if not fresh.any():
            return
        chans, slots = np.nonzero(fresh)
        image_ids = s.top_ids[chans, order[chans, slots] - k]
        rows_in_batch = np.searchsorted(s.ids, image_ids)
        for c, slot, b in zip(chans, slots, rows_in_batch):
            self.crops[c, slot] = self._crop(x[b], int(self.topk.pos[c, slot]))

    def _crop(self, image: np.ndarray, q: int) -> np.ndarray:
        rf = self.plan.rf_obj
        if rf is None:
            return as_uint8(image)
        return extract_crop(image, rf, q // self.plan.map_w, q % self.plan.map_w)

    def fill_crops(self, chunk: int = 256) -> None:
        """Cut every kept hit's crop from its image read again: only the hits (at most units x k
        images), a chunk at a time. Images that no longer load leave grey crops."""
        if self.crops is None:
            return
        ids = self.topk.ids
        self.crops[:] = PAD_VALUE
        wanted = np.unique(ids[ids >= 0])
        for start in range(0, len(wanted), chunk):
            part = wanted[start : start + chunk]
            x, _, ok, _ = load_rows(self.plan.src, self.plan.shape, part)
            hit = np.isin(ids, part[ok])
            for c, slot in zip(*np.nonzero(hit)):
                row = int(np.searchsorted(part, ids[c, slot]))
                self.crops[c, slot] = self._crop(x[row], int(self.topk.pos[c, slot]))
        self.crops_stale = False


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


def reduce_batch(
    plan: _Plan,
    step: Callable,
    ids: np.ndarray,
    x: np.ndarray,
    ok: np.ndarray,
    labels: np.ndarray,
    skipped: list[tuple[int, str]],
) -> BatchSummary:
    """One loaded batch (ids (B,), x in [0, 1], ok, labels) through the model, reduced."""
    from engine.scaling import to_model_range

    if ok.any():
        peaks = step(np.ascontiguousarray(to_model_range(x[ok], plan.h.scaling), np.float32))
    else:
        empty = np.zeros((0, plan.units), np.float32)
        peaks = (empty, empty.astype(np.int64), empty)
    n_classes = len(plan.src.class_names)
    return summarize(
        int(ids[0]), int(ids[-1]) + 1, ids[ok], labels[ok], peaks, n_classes, plan.k, tuple(skipped)
    )


def _local_batches(
    plan: _Plan, start: int, batch_size: int, token: CancelToken
) -> Iterator[tuple[BatchSummary, np.ndarray]]:
    """This process's batches from `start`: tf.data decodes in parallel, the compiled step reduces."""
    step = _step_fn(plan.h, plan.path)
    for ids_t, x_t, lab_t, ok_t, msg_t in make_dataset(plan.src, plan.shape, start, batch_size):
        if token.cancelled:  # before spending a forward pass on the batch
            raise Cancelled()
        ids, x, ok, labels = ids_t.numpy(), x_t.numpy(), ok_t.numpy(), lab_t.numpy()
        bad = _skipped_rows(plan.src, ids, ok, msg_t.numpy())
        yield reduce_batch(plan, step, ids, x, ok, labels, bad), x[ok]


def _batches(plan: _Plan, req: ScanRequest, start: int, batch_size: int, token: CancelToken) -> Iterator[Any]:
    """The runner's batches: (BatchSummary, images or None) in batch order, or str status lines."""
    if req.runner == "local":
        return _local_batches(plan, start, batch_size, token)
    if req.runner == "ray":
        from engine.dataset.cluster import ray_batches

        return ray_batches(plan, start, batch_size, token, address=req.address, workers=req.workers)
    raise EngineError(f"unknown scan runner {req.runner!r}; choose local or ray")


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

    rate_from = state.done
    yield Progress(0, state.done, total, None, _rate_message(state.done, total, 0.0))
    t0 = t_rate = time.perf_counter()
    last_ckpt = t0
    base_elapsed = state.elapsed
    batches = 0
    finished = state.done >= total
    consistent = True
    try:
        if not finished:
            token.raise_if_cancelled()
            with contextlib.closing(_batches(plan, req, state.done, bs, token)) as stream:
                for item in stream:
                    if isinstance(item, str):  # a runner's status (starting workers, ...)
                        yield Progress(0, state.done, total, None, item)
                        continue
                    consistent = False  # a failure inside the fold must not be checkpointed
                    state.fold(*item)
                    consistent = True
                    batches += 1
                    now = time.perf_counter()
                    state.elapsed = base_elapsed + (now - t0)
                    if batches == 1:  # the rate counts from the first batch: not start-up or tracing
                        t_rate, rate_from = now, state.done
                    rate = (state.done - rate_from) / (now - t_rate) if now > t_rate else 0.0
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

    if state.crops_stale and state.crops is not None:
        yield Progress(
            0, state.done, total, None, f"{state.done:,}/{total:,} images · reading the hits' crops"
        )
        state.fill_crops()
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
    (batch_size, cache, resume, checkpoint_s, checkpoint_every, crop_budget, cache_only, and
    runner="ray" with address=None | "auto" | "ray://host:port" and workers=N to run the
    batches on a Ray cluster: the same answer, engine.dataset.cluster).
    A cancelled token raises engine.errors.Cancelled after checkpointing.
    """
    return drain(scan_iter(h, source, layer, k, token=token, **options), progress)
