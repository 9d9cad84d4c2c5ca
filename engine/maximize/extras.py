"""The extras of a finished maximize run: changed boxes and crops, the prediction report, the
analytic maximizer of first-layer units, and whether units are read before their activation.

Split from run.py (which re-exports these names) to keep each module to one concern.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.maximize.graphs import input_affine
from engine.maximize.objectives import Objective
from engine.models import ModelHandle


def changed_box(before: np.ndarray, after: np.ndarray, tol: float = 1e-4) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of the pixels that differ by more than tol between two (H, W, C) images."""
    diff = np.abs(np.asarray(after, np.float32) - np.asarray(before, np.float32))
    mask = diff.max(axis=-1) > tol if diff.ndim == 3 else diff > tol
    if not mask.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """image[top:bottom, left:right] for a (top, left, bottom, right) box, as a contiguous copy."""
    top, left, bottom, right = box
    return np.ascontiguousarray(image[top:bottom, left:right])


def union_box(boxes: Sequence[tuple[int, int, int, int] | None]) -> tuple[int, int, int, int] | None:
    """The smallest box holding every given box (None entries are skipped)."""
    real = [b for b in boxes if b is not None]
    if not real:
        return None
    return min(b[0] for b in real), min(b[1] for b in real), max(b[2] for b in real), max(b[3] for b in real)


def prediction_report(
    h: ModelHandle, images: np.ndarray, obj: Objective | None = None
) -> list[dict[str, Any]]:
    """The model's prediction on each display image (B, H, W, C): class, probability and the target's."""
    from engine.activations import probabilities, run_model
    from engine.scaling import to_model_range

    x = to_model_range(np.asarray(images, np.float32), h.scaling)
    out, logits = run_model(h.probability_model, x)
    names = h.class_names or [str(i) for i in range(h.num_classes)]
    report = []
    for b in range(x.shape[0]):
        p = probabilities(h, out[b], logits[b])
        top = int(np.argmax(p))
        entry: dict[str, Any] = {"index": top, "class": names[top], "probability": float(p[top])}
        target = obj.target_class(b) if obj is not None else None
        if target is not None:
            entry.update(target=int(target), target_class=names[target], target_probability=float(p[target]))
        entry["text"] = f"the network calls this {100 * p[top]:.1f}% {names[top]!r}" + (
            f" (target {names[target]!r}: {100 * p[target]:.1f}%)"
            if target is not None and target != top
            else ""
        )
        report.append(entry)
    return report


def read_before_activation(h: ModelHandle, paths: Sequence[str], pre_activation: bool | None = None) -> bool:
    """Whether maximize reads `paths` before their fused activation: the caller's choice, else
    before (Lucid's pre-ReLU taps: a unit silent on the start still gets a gradient) unless every
    path is a first-layer conv, whose pre-activation is linear in the input (a trivial maximizer)."""
    if pre_activation is not None:
        return bool(pre_activation)
    return not (paths and all(_first_layer_conv(h, p) is not None for p in paths))


def _first_layer_conv(h: ModelHandle, path: str) -> Any:
    """The Conv2D at `path` when it reads the model input directly, else None."""
    import keras

    tensor = h.symbolic(path)
    hist = getattr(tensor, "_keras_history", None)
    op = getattr(hist, "operation", None)
    if op is None or type(op) is not keras.layers.Conv2D:
        return None
    node = op._inbound_nodes[hist.node_index]
    inputs = list(node.input_tensors)
    return op if len(inputs) == 1 and inputs[0] is h.flat_input else None


def analytic_maximizer(h: ModelHandle, layer: str, channel: int) -> np.ndarray:
    """The input patch that maximizes a first-layer conv unit: the sign of its weights within the valid range.

    A first-layer unit is linear in its input patch, so its maximum over inputs in [0, 1]
    puts every pixel at 1 where the (display-space) weight is positive and 0 where it is
    negative (grey 0.5 at zero weight and at the holes of a dilated kernel). Returns float32
    (kh_eff, kw_eff, C) in display range; EngineError if `layer` is not a first-layer Conv2D.
    """
    path = h.resolve(layer)
    op = _first_layer_conv(h, path)
    if op is None:
        raise EngineError(f"layer {path} is not a convolution on the model input; no analytic maximizer")
    kernel = np.asarray(op.kernel.numpy() if hasattr(op.kernel, "numpy") else op.kernel, np.float32)
    if not 0 <= channel < kernel.shape[-1]:
        raise EngineError(f"channel {channel} out of range; {path} has {kernel.shape[-1]} channels")
    w = kernel[..., channel]  # (kh, kw, Cin) over model-range channels
    mat, _ = input_affine(h.scaling, w.shape[-1])
    w_display = np.einsum("hwc,dc->hwd", w, mat)  # d(objective)/d(display pixel)
    patch = np.where(w_display > 0, 1.0, np.where(w_display < 0, 0.0, 0.5)).astype(np.float32)
    dy, dx = (
        int(d) for d in (op.dilation_rate if isinstance(op.dilation_rate, tuple) else (op.dilation_rate,) * 2)
    )
    if dy == 1 and dx == 1:
        return patch
    kh, kw, c = patch.shape
    out = np.full(((kh - 1) * dy + 1, (kw - 1) * dx + 1, c), 0.5, np.float32)
    out[::dy, ::dx] = patch
    return out


def _extras(
    h: ModelHandle, obj: Objective, start: np.ndarray, images: np.ndarray, uses_class: bool
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if uses_class and tuple(images.shape[1:3]) == tuple(h.input_shape[:2]):
        report = prediction_report(h, images, obj)
        info["predictions"] = report
        info["report"] = [r["text"] for r in report]
    neuron = obj.neuron()
    if neuron is not None:
        boxes = [changed_box(start[b], images[b]) for b in range(images.shape[0])]
        info["changed_boxes"] = boxes
        info["crops"] = [images[b] if box is None else crop(images[b], box) for b, box in enumerate(boxes)]
        try:
            from engine.receptive_field import receptive_field

            rf = receptive_field(h, neuron.layer)
            info["receptive_fields"] = [
                rf.box_clipped(t[0].pos[0], t[0].pos[1], images.shape[1:3]) for t in obj.terms
            ]
        except (EngineError, ImportError):
            pass
    singles = [terms[0] for terms in obj.terms if len(terms) == 1 and terms[0].kind in ("channel", "neuron")]
    if len(singles) == obj.batch and len({t.layer for t in singles}) == 1:
        if _first_layer_conv(h, singles[0].layer) is not None:
            info["analytic"] = np.stack([analytic_maximizer(h, t.layer, t.index) for t in singles])
    return info
