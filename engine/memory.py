"""How much memory a batch may use, so big batches split themselves instead of failing.

budget_bytes(): the bytes a batch may take now: $CONVSCOPE_MEMORY_BUDGET when set (a number
of bytes, or with a K/M/G suffix: "1.5G"); else on a GPU what its allocator has left (the
device's memory limit minus what TensorFlow holds there); else on the CPU a share of the RAM
available (psutil when installed, else /proc/meminfo MemAvailable). activation_bytes(model)
estimates what one image adds to a pass of a Keras model from its layers' output shapes, and
fit_batch(requested, per_item) is how many items fit. Nothing here imports TensorFlow until a
GPU has to be asked.
"""

from __future__ import annotations

import functools
import os
from typing import Any

ENV = "CONVSCOPE_MEMORY_BUDGET"
RAM_SHARE = 0.5  # of the available RAM a batch may use (the rest: the model, the GUI, other programs)
GPU_SHARE = 0.8  # of the GPU memory TensorFlow's allocator has left
_SUFFIX = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int:
    """'2G' -> 2 * 2**30; '512M', '1.5G', '1000000' (bytes). ValueError for anything else."""
    t = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _SUFFIX and not t[-1:].isdigit() else ""
    number = float(t[: len(t) - len(unit)] if unit else t)
    if not number > 0:
        raise ValueError(f"a memory budget must be positive, got {text!r}")
    return int(number * _SUFFIX[unit])


def ram_available() -> int | None:
    """Bytes of RAM available now (psutil, else /proc/meminfo MemAvailable); None if unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@functools.cache
def _gpu_limit() -> int | None:
    """The first GPU's memory limit as TensorFlow's allocator sees it (bytes), None without a GPU."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    try:
        from tensorflow.python.client import device_lib

        for dev in device_lib.list_local_devices():
            if dev.device_type == "GPU" and dev.memory_limit:
                return int(dev.memory_limit)
    except Exception:  # noqa: BLE001 - an unknown limit: fall back to RAM
        return None
    return None


def gpu_available() -> int | None:
    """Bytes the first GPU's allocator has left (its limit minus what TensorFlow holds); None without one."""
    import sys

    if "tensorflow" not in sys.modules:  # TensorFlow not loaded: nothing runs on a GPU yet
        return None
    limit = _gpu_limit()
    if limit is None:
        return None
    import tensorflow as tf

    try:
        used = int(tf.config.experimental.get_memory_info("GPU:0")["current"])
    except (ValueError, RuntimeError, KeyError):
        used = 0
    return max(0, limit - used)


def budget_bytes() -> int | None:
    """The bytes one batch may use now (see the module docstring); None when nothing is known."""
    env = os.environ.get(ENV, "").strip()
    if env:
        try:
            return parse_bytes(env)
        except ValueError:
            pass  # a bad value is ignored: the measured budget applies
    gpu = gpu_available()
    if gpu is not None:
        return int(gpu * GPU_SHARE)
    ram = ram_available()
    return None if ram is None else int(ram * RAM_SHARE)


def fit_batch(requested: int, per_item: int, budget: int | None = None) -> int:
    """How many of `requested` items fit in `budget` (default budget_bytes()) at `per_item` bytes each (>= 1)."""
    requested = max(1, int(requested))
    budget = budget_bytes() if budget is None else budget
    if budget is None or per_item <= 0:
        return requested
    return max(1, min(requested, int(budget // per_item)))


def _output_elements(layer: Any) -> list[int]:
    """Elements per image of each output of `layer` (empty when its shape is unknown)."""
    from keras import tree

    try:
        outs = tree.flatten(layer.output)
    except (AttributeError, ValueError):
        return []
    sizes = []
    for out in outs:
        dims = tuple(out.shape)[1:]
        if any(d is None for d in dims):
            continue
        n = 1
        for d in dims:
            n *= int(d)
        sizes.append(n)
    return sizes


def activation_bytes(model: Any, training: bool = True, dtype_bytes: int = 4) -> int:
    """Estimated peak bytes one image adds to a pass of Keras `model` (float32 by default).

    training=True (a gradient to the input, as activation maximization takes): every layer's
    output is kept for the backward pass and each gets a gradient of its size, plus working
    copies (the kernels' reordered inputs and outputs): 3x the sum of the layer outputs.
    training=False (a forward pass): tensors are freed as the pass moves on, so the largest
    layer with its input and a working copy: 3x the largest output plus the input.
    """
    import keras

    sizes: list[int] = []

    def walk(m: Any) -> None:
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                walk(layer)
            elif not isinstance(layer, keras.layers.InputLayer):
                sizes.extend(_output_elements(layer))

    walk(model)
    inputs = 0
    for inp in getattr(model, "inputs", []) or []:
        dims = tuple(inp.shape)[1:]
        if all(d is not None for d in dims):
            n = 1
            for d in dims:
                n *= int(d)
            inputs = max(inputs, n)
    if not sizes:
        return dtype_bytes * inputs
    per = 3 * sum(sizes) + inputs if training else 3 * max(sizes) + inputs
    return int(per * dtype_bytes)
