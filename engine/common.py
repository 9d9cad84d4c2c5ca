"""Small helpers every engine module shares, each written once.

- `SEP`: the separator of nested layer paths ("vgg16/block5_conv3").
- `drain(gen)`: run a generator to its end and return its return value.
- `unit_to_uint8(a)`: float data in [0, 1] of any shape to uint8 (clipped, rounded).

Importing this module imports NumPy only (no TensorFlow), so `engine.models` and the GUI can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

import numpy as np

SEP = "/"

T = TypeVar("T")
R = TypeVar("R")


def drain(gen: Generator[T, Any, R], each: Callable[[T], Any] | None = None) -> R:
    """Run `gen` to its end and return what it returns; `each` (if given) sees every yielded item.

    For the engine's progress generators (`iter_cam`, `scan_iter`, `iter_unit_activity`):
    scripts and the CLI want only the result, jobs want the items too.
    """
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if each is not None:
            each(item)


def unit_to_uint8(a: Any) -> np.ndarray:
    """uint8 of float data in [0, 1], any shape: clipped, rounded to nearest; NaN -> 0, +-Inf -> 255 / 0.

    uint8 input passes through unchanged. `engine.render.to_uint8` builds on the same rule and
    also makes the result RGB (H, W, 3).
    """
    arr = np.asarray(a)
    if arr.dtype == np.uint8:
        return arr
    f = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(f, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
