"""The tf.data pipeline of a scan: decode and fit images in parallel map calls, batch, prefetch.

A corrupt image does not stop the pipeline: its row comes back with ok False and a one-line
message, and the scan driver records it in result.skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from engine.dataset.sources import Source, batch_to_float, fit_for_model
from engine.errors import ImageLoadError

__all__ = ["load_rows", "make_dataset"]


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
        return _stack([one(i) for i in ids], shape)

    return load


def _stack(
    rows: list[tuple], shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of _load_one as (x (B, H, W, C), labels, ok, messages)."""
    if not rows:
        return (
            np.zeros((0, *shape), np.float32),
            np.zeros(0, np.int64),
            np.zeros(0, bool),
            np.zeros(0, object),
        )
    return (
        np.stack([r[0] for r in rows]),
        np.array([r[1] for r in rows], np.int64),
        np.array([r[2] for r in rows], bool),
        np.array([r[3] for r in rows], dtype=object),
    )


def load_rows(
    src: Source, shape: tuple[int, int, int], ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images `ids` as the pipeline gives them, without TensorFlow: (x, labels, ok, messages).

    The same loaders as make_dataset, so a Ray worker, or the reading of the hits' crops after
    a scan, sees exactly the pixels the local pipeline would.
    """
    ids = np.asarray(ids, np.int64).reshape(-1)
    if src.vectorized:
        return _load_many(src, shape)(ids)
    one = _load_one(src, shape)
    return _stack([one(i) for i in ids], shape)


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
