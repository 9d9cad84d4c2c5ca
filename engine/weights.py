"""Filter weights of conv and dense layers, in the (kh, kw, cin, cout) layout the renderers expect."""

from __future__ import annotations

import numpy as np

from engine.errors import EngineError
from engine.models import ModelHandle


def filters(h: ModelHandle, layer: str) -> np.ndarray:
    """The kernel of `layer` as float32 (kh, kw, cin, cout).

    Depthwise kernels (kh, kw, cin, mult) come back as they are; separable convs give
    their depthwise kernel; a Dense kernel (in, out) comes back as (1, 1, in, out).
    """
    obj = h.layer(layer)
    kernel = None
    for attr in ("kernel", "depthwise_kernel"):
        var = getattr(obj, attr, None)
        if var is not None:
            kernel = np.asarray(var.numpy() if hasattr(var, "numpy") else var, np.float32)
            break
    if kernel is None:
        raise EngineError(f"layer {layer!r} ({type(obj).__name__}) has no filter weights")
    if kernel.ndim == 2:
        kernel = kernel[None, None]
    if kernel.ndim != 4:
        raise EngineError(
            f"layer {layer!r} has a kernel of shape {kernel.shape}; only 2-D convolutions and dense layers"
        )
    return np.ascontiguousarray(kernel)
