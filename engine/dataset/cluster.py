"""A scan's batches on a Ray cluster: Ray Data map_batches over a pool of actors that keep the model.

Convscope has no scheduler or worker pool of its own: a scan's batches are grouped into
shards of consecutive batches (shard_batches: about 8 per worker, at most 8,192 images unless
there are many classes), the
shards are rows of a Ray Dataset, and `map_batches` hands them to a pool of `_ScanWorker`
actors (ActorPoolStrategy). Each actor, once:

    loads the model from its bytes in Ray's object store (engine.model_package; trust is
    passed explicitly, so a file the user did not trust is loaded in Keras safe mode),
    opens the source (built-in sources are generated on the worker; a folder, a file list or
    a URI is read where the worker runs, from storage every node sees),
    compiles the scan step (engine.dataset.scanner._step_fn);

and then, per batch of a shard, decodes its images and reduces them with the local scanner's
own reduce_batch to a BatchSummary (the batch's top-k per channel, each image's strongest
channel, per-class moments), combined into one summary per shard. Only that travels back
(top-k and classes x channels moments, not the (B, C) peaks), and the driver folds the shard
summaries in order (Ray Data's preserve_order) as the local scan folds its batches: the same
hits and values exactly, the class statistics to float64 rounding (bit for bit when a shard is
one batch). A dead actor is restarted by Ray and its shard retried (Ray Data's actor pools
default to max_restarts=-1, max_task_retries=-1). Progress comes per shard; cancel closes
the stream, which stops the Ray work, and the scanner checkpoints what it merged.

With no address, `ray.init()` starts an embedded cluster on this machine, kept for the
process (start-up costs seconds); "auto" or "ray://host:port" joins a running cluster.
Importing this module does not import ray or TensorFlow.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from engine.dataset.reduce import BatchSummary
from engine.errors import Cancelled, EngineError
from engine.jobs import CancelToken

__all__ = ["connect", "ray_batches", "shard_batches", "shutdown"]

SHARDS_PER_WORKER = 8  # shards per worker: load balance and progress steps vs driver merges
SHARD_IMAGES = 8192  # at most this many images per shard (unless the classes need more)
IMAGES_PER_GROUP = 8  # at least this many images per class group in a shard
_LOCK = threading.Lock()
_CONNECTED: dict[str, Any] = {}  # {"address": the address ray.init was given}


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the part a scan needs
    except ImportError:
        raise EngineError(
            'running a scan on Ray needs the cluster extra: pip install -e ".[cluster]"'
        ) from None
    _quiet_ray_data()
    return ray


def _quiet_ray_data() -> None:
    """Ray Data's console notices (execution started/finished) off stderr; its log file keeps them."""
    for handler in logging.getLogger("ray.data").handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)


def connect(address: str | None = None) -> Any:
    """Ray, initialized: an embedded local cluster (address None) or the cluster at `address`.

    With no address, a Ray this process is already connected to is used as it is (one a script
    or a test started with its own ray.init); else an embedded cluster is started once per
    process and reused. Asking for another address shuts the current connection down first.
    """
    ray = _ray()
    wanted = address or ""
    with _LOCK:
        if ray.is_initialized() and (not address or _CONNECTED.get("address") == wanted):
            return ray
        if ray.is_initialized():
            ray.shutdown()
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "configure_logging": True,
        }
        if address:
            options["address"] = address
        logging.getLogger("ray").setLevel(logging.ERROR)  # start-up notices are not the user's business
        try:
            ray.init(**options)
        except Exception as exc:  # noqa: BLE001 - any connection failure becomes one line
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise EngineError(f"cannot start or reach {where}: {type(exc).__name__}: {exc}") from None
        _CONNECTED["address"] = wanted
        return ray


def shutdown() -> None:
    """Disconnect from (and stop an embedded) Ray cluster, if connected."""
    with _LOCK:
        try:
            import ray
        except ImportError:
            return
        if ray.is_initialized():
            ray.shutdown()
        _CONNECTED.clear()


class _ScanWorker:
    """One Ray Data actor: the model loaded once, then one batch summary per batch index."""

    def __init__(
        self, model: Any, source: Any, path: str, k: int, start: int, batch: int, total: int, per_shard: int
    ) -> None:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
        threads = max(1, int(round(cpus)))
        import tensorflow as tf

        try:  # one replica per assigned CPU: keep TF to those, or replicas fight over the cores
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
        from engine.dataset.scanner import ScanRequest, _plan, _step_fn
        from engine.dataset.sources import open_source
        from engine.model_package import unpack

        self.h = unpack(ray.get(model) if isinstance(model, ray.ObjectRef) else model)
        src = ray.get(source) if isinstance(source, ray.ObjectRef) else source
        self.plan = _plan(self.h, ScanRequest(open_source(src), path, k, cache=False))
        self.step = _step_fn(self.h, self.plan.path)
        self.start, self.batch, self.total, self.per_shard = (
            int(start),
            int(batch),
            int(total),
            int(per_shard),
        )

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each row is a shard: `per_shard` consecutive batches, reduced batch by batch and combined."""
        from engine.dataset.pipeline import load_rows
        from engine.dataset.reduce import combine
        from engine.dataset.scanner import _skipped_rows, reduce_batch

        out: list[dict[str, np.ndarray]] = []
        for shard in np.asarray(rows["shard"]).reshape(-1):
            parts = []
            first_batch = int(shard) * self.per_shard
            for b in range(first_batch, first_batch + self.per_shard):
                first = self.start + b * self.batch
                if first >= self.total:
                    break
                ids = np.arange(first, min(first + self.batch, self.total), dtype=np.int64)
                x, labels, ok, msgs = load_rows(self.plan.src, self.plan.shape, ids)
                bad = _skipped_rows(self.plan.src, ids, ok, msgs)
                parts.append(reduce_batch(self.plan, self.step, ids, x, ok, labels, bad))
            out.append(combine(parts, self.plan.k).to_columns())
        width = max(o["ids"].shape[1] for o in out)
        for o in out:  # per-image columns of shards of different lengths: pad to one width
            for name in ("ids", "labels", "strongest_channel", "strongest_value"):
                short = width - o[name].shape[1]
                if short:
                    fill = np.nan if o[name].dtype.kind == "f" else -1
                    o[name] = np.pad(o[name], ((0, 0), (0, short)), constant_values=fill)
        return {name: np.concatenate([o[name] for o in out]) for name in out[0]}


def _source_for_workers(src: Any) -> Any:
    """A built-in source travels as its spec (workers generate it); others as the opened object
    (paths listed once on the driver; a worker reads them from the filesystem it sees)."""
    spec = getattr(src, "spec", "")
    return spec if isinstance(spec, str) and spec.startswith("builtin:") else src


def shard_batches(n_batches: int, workers: int, batch_size: int, groups: int = 1) -> int:
    """Batches per shard (one Ray task, one summary for the driver).

    About SHARDS_PER_WORKER shards per worker (load balance, progress and cancel steps), at
    most SHARD_IMAGES images, but at least IMAGES_PER_GROUP images per class group: a summary
    carries classes x channels moments whatever its size, so with many classes (ImageNet's
    1,000) shards grow until those moments cost the driver no more than about 4 bytes per
    channel and image, and the number of shards the driver merges stops growing with the workers.
    """
    wanted = math.ceil(n_batches / (max(1, workers) * SHARDS_PER_WORKER))
    per = max(1, batch_size)
    most = max(SHARD_IMAGES, IMAGES_PER_GROUP * groups) // per
    least = math.ceil(IMAGES_PER_GROUP * groups / per)
    return max(1, min(max(wanted, least), most, n_batches))


def _cluster_cpus(ray: Any) -> int:
    try:
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    except Exception:  # noqa: BLE001 - resource view unavailable: assume one
        return 1


def ray_batches(
    plan: Any,
    start: int,
    batch_size: int,
    token: CancelToken,
    *,
    address: str | None = None,
    workers: int | None = None,
) -> Iterator[Any]:
    """The scan's batches from `start` as BatchSummary rows computed on Ray, in batch order.

    Yields status strings while the cluster and the workers start, then (BatchSummary, None)
    per batch (None: the crops are read afterwards). Closing the generator stops the Ray work.
    """
    from engine.model_package import pack

    total = len(plan.src)
    n_batches = math.ceil(max(0, total - start) / batch_size)
    if n_batches == 0:
        return
    yield "starting Ray…" if not address else f"connecting to Ray at {address}…"
    ray = connect(address)
    if token.cancelled:
        raise Cancelled()
    cpus = _cluster_cpus(ray)
    size = max(1, int(workers or cpus))
    size = min(size, n_batches)
    per_shard = shard_batches(n_batches, size, batch_size, len(plan.src.class_names) + 1)
    n_shards = math.ceil(n_batches / per_shard)
    per_worker = max(1.0, math.floor(cpus / size)) if size <= cpus else 1.0
    model_ref = ray.put(pack(plan.h))
    source_ref = ray.put(_source_for_workers(plan.src))
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # summaries fold in batch order, as locally
    ctx.enable_progress_bars = False
    _quiet_ray_data()
    rows = ray.data.from_items([{"shard": j} for j in range(n_shards)], override_num_blocks=n_shards)
    mapped = rows.map_batches(
        _ScanWorker,
        fn_constructor_args=(model_ref, source_ref, plan.path, plan.k, start, batch_size, total, per_shard),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=per_worker,
    )
    yield f"starting {size} Ray worker{'s' if size != 1 else ''} (each loads the model)…"
    stream = mapped.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
    with _Pump(stream, (model_ref, source_ref)) as pump:
        while True:
            batch = pump.get(token)
            if batch is None:
                return
            for i in range(len(batch["n"])):
                yield BatchSummary.from_columns(batch, i), None


class _Pump:
    """Reads Ray Data's blocking iterator on a thread, so the scan answers cancel at once.

    get() waits for the next shard while watching the token: a cancel raises Cancelled here at
    once, and the thread closes the stream (which stops the Ray work) when its current read
    returns. `keep` holds the model and source refs until then: a restarted actor reads its
    constructor arguments again.
    """

    def __init__(self, stream: Any, keep: Any) -> None:
        import queue

        self.stream, self.keep = stream, keep
        self.items: queue.Queue = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="convscope-ray-scan", daemon=True)

    def _run(self) -> None:
        try:
            for batch in self.stream:
                if not self._put(("batch", batch)):
                    break
            else:
                self._put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the scan's thread
            self._put(("error", exc))
        finally:
            close = getattr(self.stream, "close", None)
            if close is not None:
                close()
            self.keep = None

    def _put(self, item: tuple[str, Any]) -> bool:
        """Queue an item unless the scan stopped listening (then False: stop reading)."""
        import queue

        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, token: CancelToken) -> Any:
        """The next shard's columns; None at the end. Raises Cancelled or the stream's error."""
        import queue

        while True:
            if token.cancelled:
                raise Cancelled()
            try:
                kind, item = self.items.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "error":
                raise item
            return item if kind == "batch" else None

    def __enter__(self) -> _Pump:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()  # the thread stops at its next shard and closes the stream; no wait here
