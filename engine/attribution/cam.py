"""Class activation maps: engine.cam(h, img, target, layer, method, mapping) -> CamResult.

A method (engine.attribution.methods: a registry of small classes, Grad-CAM, Grad-CAM++,
Layer-CAM, Score-CAM, Eigen-CAM) turns the activations ``A`` (h, w, C) of one spatial layer,
and for the gradient methods ``dS/dA``, into a signed coarse map ``cam`` (h, w); this module
runs the passes the method needs and projects the map onto the photo through each cell's
receptive field (engine.attribution.projection). S is the target's score
(engine.attribution.target): by default its pre-activation logit (for a single sigmoid
unit: the logit for "positive", its negation for "negative").

Every TensorFlow function is compiled once per (model, layer) and cached
(engine.attribution.functions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np

from engine import common
from engine.attribution.functions import compiled, forward_fn, grad_fn, logits_fn
from engine.attribution.methods import (
    CAM_METHODS,
    CamContext,
    CamMethod,
    check_max_channels,
    check_method,
    register,
)
from engine.attribution.projection import DEFAULT_MAPPING, check_mapping, project
from engine.attribution.target import Target, TargetSpec, target_index, target_name
from engine.errors import EngineError
from engine.images import ImageSource, load_image, to_model_input
from engine.models import ModelHandle
from engine.precision import check_precision

METHODS: tuple[str, ...] = tuple(CAM_METHODS)  # the built-in methods; CAM_METHODS has any added later
_grad_fn = grad_fn  # older name, kept for callers and tests

__all__ = [
    "CAM_METHODS",
    "METHODS",
    "CamContext",
    "CamMethod",
    "CamResult",
    "ProgressFn",
    "Target",
    "TargetSpec",
    "cam",
    "check_method",
    "compiled",
    "drain",
    "iter_cam",
    "logits_fn",
    "probabilities_from_logits",
    "register",
    "target_index",
    "target_name",
]

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class CamResult:
    """A class activation map and what it explains.

    cam: (h, w) float32 signed coarse map of `layer`; heatmap: (H, W) float32 signed,
    projected onto the photo's own grid; heatmap_relu: the ReLU map projected the same way
    (the classic Grad-CAM picture). target: class index (a single sigmoid unit counts as
    two classes: 0 negative, 1 positive); score: the target's logit; probabilities: all
    class probabilities of the unmodified image.
    """

    cam: np.ndarray
    heatmap: np.ndarray
    heatmap_relu: np.ndarray
    target: int
    score: float
    layer: str
    method: str
    mapping: str
    probabilities: np.ndarray
    target_name: str | None = None
    field: Any = None  # ReceptiveField of the layer, None when it cannot be computed
    model_shape: tuple[int, int] = (0, 0)
    settings: dict[str, Any] = dc_field(default_factory=dict)

    @property
    def cam_relu(self) -> np.ndarray:
        """The coarse map with negative evidence removed."""
        return np.maximum(self.cam, 0.0)

    @property
    def probability(self) -> float:
        """Probability of the target class on the unmodified image."""
        return float(self.probabilities[self.target])


# ----------------------------------------------------------------------------- targets, layers
def probabilities_from_logits(h: ModelHandle, logits: np.ndarray) -> np.ndarray:
    """(B, num_classes) probabilities from (B, n) logits, following the model's final activation."""
    return Target.of(h).probabilities(logits)


def _check_layer(h: ModelHandle, layer: str | None) -> str:
    path = h.resolve(layer) if layer else h.default_cam_layer()
    shape = tuple(h.symbolic(path).shape[1:])
    if len(shape) != 3:
        raise EngineError(
            f"layer {path} has no spatial extent (output {shape}); choose a conv layer such as {h.default_cam_layer()}"
        )
    return path


def _layer_field(h: ModelHandle, path: str, mapping: str) -> Any:
    from engine.receptive_field import receptive_field

    try:
        return receptive_field(h, path)
    except EngineError:
        if mapping == "bilinear":
            return None
        raise


# ----------------------------------------------------------------------------- cam
def iter_cam(
    h: ModelHandle,
    img: ImageSource,
    target: TargetSpec = None,
    layer: str | None = None,
    method: str = "gradcam",
    mapping: str = DEFAULT_MAPPING,
    *,
    sigma: float | None = None,
    batch_size: int = 32,
    precision: str = "auto",
    max_channels: int | float | None = None,
) -> Iterator[tuple[int, int]]:
    """cam() as a generator: yields (done, total) progress and returns the CamResult (for jobs).

    target: None (top-1), a class index or name, "positive"/"negative" for a single
    sigmoid unit, or a Target (engine.attribution.target; Target(3, score="probability")
    differentiates the probability instead of the logit). layer: a spatial layer path
    (default: the last one with spatial extent, nested models included). method: a name
    registered in CAM_METHODS (gradcam | gradcam++ | layercam | scorecam | eigencam) or an alias.
    mapping: roi | gaussian | center | bilinear (see engine.attribution.projection; the default,
    projection.DEFAULT_MAPPING, is the one bench/cam_quality.py scores best); sigma
    sets the gaussian mapping's width in input pixels. batch_size: masked images per
    Score-CAM forward pass. precision: the masked Score-CAM passes run in "float32" or
    "bfloat16" ("auto": bf16 where the hardware computes it natively, about twice as fast;
    see engine.precision); settings["precision"] records what ran. max_channels: Score-CAM's
    fast mode (None, the default, is exact): only the N channels whose maps vary most run (a
    count, or a share 0 < f < 1 of the layer's channels; methods.FAST_CHANNELS is the share
    `--fast` takes), the others weigh 0; settings["max_channels"] records it. Score-CAM's batch
    shrinks by itself to fit the memory there is (engine.memory).
    """
    impl = CAM_METHODS[check_method(method)]()
    mapping = check_mapping(mapping)
    check_precision(precision)
    max_channels = check_max_channels(max_channels)
    goal = Target.of(h, target)
    path = _check_layer(h, layer)
    photo = (
        load_image(img)
        if not (isinstance(img, np.ndarray) and img.dtype == np.float32 and img.ndim == 3)
        else img
    )
    x = to_model_input(photo, h)
    field_ = _layer_field(h, path, mapping)
    if impl.uses_gradients:
        index = np.array([goal.graph_index], np.int32)
        acts, grads, logits, t = (np.asarray(v) for v in grad_fn(h, path, goal.score)(x, index))
        chosen, grads0 = int(t[0]), grads[0]
    else:
        acts, logits = (np.asarray(v) for v in forward_fn(h, path)(x))
        chosen, grads0 = goal.chosen(logits), None
    ctx = CamContext(h, x, goal, chosen, field_, mapping, sigma, int(batch_size), precision, max_channels)
    coarse = yield from impl.run(ctx, acts[0], grads0)
    mats = ctx.matrices(coarse.shape, photo.shape[:2])
    settings = {
        "method": impl.name,
        "mapping": mapping,
        "layer": path,
        "target": chosen,
        "sigma": sigma,
        "precision": impl.precision_used(ctx),
    }
    if goal.score != "logit":
        settings["score"] = goal.score
    if max_channels is not None and impl.name == "scorecam":
        settings["max_channels"] = max_channels
    return CamResult(
        cam=coarse,
        heatmap=project(coarse, *mats),
        heatmap_relu=project(np.maximum(coarse, 0.0), *mats),
        target=chosen,
        score=goal.value(logits, chosen),
        layer=path,
        method=impl.name,
        mapping=mapping,
        probabilities=goal.probabilities(logits)[0],
        target_name=target_name(h, chosen),
        field=field_,
        model_shape=tuple(h.input_shape[:2]),
        settings=settings,
    )


def drain(gen: Iterator[Any], progress: ProgressFn | None = None) -> Any:
    """Run a progress generator to its end and return its value, reporting (done, total) to `progress`."""
    return common.drain(gen, None if progress is None else lambda step: progress(*step))


def cam(
    h: ModelHandle, img: ImageSource, *args: Any, progress: ProgressFn | None = None, **options: Any
) -> CamResult:
    """A class activation map of `img` for `target`, projected onto the photo's own pixel grid.

    The arguments are iter_cam's (target, layer, method, mapping, sigma, batch_size, precision,
    max_channels: see there); progress(done, total) is called between Score-CAM batches (it may
    raise to cancel).
    """
    return drain(iter_cam(h, img, *args, **options), progress)
