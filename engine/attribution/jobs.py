"""Job handlers for attribution: "cam", "saliency" and "metrics" (see engine.jobs).

Each handler takes (params, token), yields Progress between batches (so a Score-CAM,
SmoothGrad or deletion curve can be cancelled mid-way) and returns plain data the GUI
can show without TensorFlow. The model is params["model"] (a spec) or the one loaded
last; the image is params["image"] (a path, "builtin:NAME" or an array).

cam params: target (None = top-1), layer, method, mapping, sigma, batch_size, precision,
  compare (a second target, rendered side by side on one scale), top_k (predictions listed).
  Returns {"result": CamResult, "compare": CamResult | None, "predictions": [(index, name, p)],
  "photo": float32 (H, W, C), "model_shape": (H, W) of the model input}.
saliency params: target, method, layer, samples, noise, steps, batch_size.
  Returns {"map": (H, W) float32, "method", "target", "layer", "signed": bool, "photo"}.
metrics params: heatmap (H, W on the image grid), target, steps, baseline (blur | mean | black |
  noise, default metrics.DEFAULT_BASELINE), blur_sigma (optional), box or mask (optional).
  Returns {"deletion": CurveScore, "insertion": CurveScore, "baseline": str, "pointing": bool | None,
  "energy": float | None}.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from engine.attribution.projection import DEFAULT_MAPPING
from engine.jobs import CancelToken, Progress, handler


def _photo(params: Mapping[str, Any]) -> np.ndarray:
    from engine.job_handlers import image_param

    return image_param(params)


def _model(params: Mapping[str, Any]) -> Any:
    from engine.job_handlers import current_model

    return current_model(params)


def _forward(
    gen: Iterator[tuple[int, int]],
    token: CancelToken,
    message: str,
    offset: int = 0,
    total: int | None = None,
) -> Iterator[Progress]:
    """Re-yield a (done, total) generator as Progress events; returns its value."""
    while True:
        token.raise_if_cancelled()
        try:
            done, n = next(gen)
        except StopIteration as stop:
            return stop.value
        yield Progress(0, offset + done, total if total is not None else n, None, message)


def top_predictions(h: Any, probabilities: np.ndarray, k: int = 5) -> list[tuple[int, str, float]]:
    """The k most probable classes as (index, name, probability), best first."""
    probs = np.asarray(probabilities, np.float64).reshape(-1)
    names = h.class_names or [str(i) for i in range(len(probs))]
    order = np.argsort(-probs)[: max(1, int(k))]
    return [(int(i), str(names[i]) if i < len(names) else str(i), float(probs[i])) for i in order]


def _target(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


@handler("cam")
def cam_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    from engine.attribution.cam import iter_cam

    h = _model(params)
    photo = _photo(params)
    kwargs = {
        "layer": params.get("layer") or None,
        "method": params.get("method", "gradcam"),
        "mapping": params.get("mapping") or DEFAULT_MAPPING,
        "sigma": params.get("sigma"),
        "batch_size": int(params.get("batch_size", 32)),
        "precision": params.get("precision") or "auto",
    }
    compare = _target(params.get("compare"))
    total = 2 if compare is not None else 1
    result = yield from _forward(iter_cam(h, photo, _target(params.get("target")), **kwargs), token, "CAM")
    other = None
    if compare is not None:
        other = yield from _forward(iter_cam(h, photo, compare, **kwargs), token, "CAM (second target)")
    yield Progress(0, total, total, None, "done")
    return {
        "result": result,
        "compare": other,
        "predictions": top_predictions(h, result.probabilities, int(params.get("top_k", 5))),
        "photo": photo,
        "model_shape": tuple(h.input_shape[:2]),
    }


@handler("saliency")
def saliency_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    from engine.attribution.gradients import check_saliency_method, iter_saliency

    h = _model(params)
    photo = _photo(params)
    method = check_saliency_method(params.get("method", "gradient"))
    layer = params.get("layer") or None
    target = _target(params.get("target"))
    gen = iter_saliency(
        h,
        photo,
        target,
        method,
        layer,
        samples=int(params.get("samples", 25)),
        noise=float(params.get("noise", 0.15)),
        steps=int(params.get("steps", 32)),
        batch_size=int(params.get("batch_size", 16)),
    )
    smap = yield from _forward(gen, token, method)
    return {
        "map": smap,
        "method": method,
        "target": target,
        "layer": layer,
        "signed": method in ("integrated", "grad_x_input"),
        "photo": photo,
    }


@handler("metrics")
def metrics_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    from engine.attribution import metrics

    h = _model(params)
    photo = _photo(params)
    heat = np.asarray(params["heatmap"], np.float32)
    target = _target(params.get("target"))
    steps = int(params.get("steps", 32))
    baseline = metrics.check_baseline(params.get("baseline"))
    sigma = params.get("blur_sigma")
    kw = {"steps": steps, "baseline": baseline, "blur_sigma": None if sigma is None else float(sigma)}
    n = steps + 1
    deletion = yield from _forward(
        metrics.deletion_curve(h, photo, heat, target, **kw), token, "deletion", 0, 2 * n
    )
    insertion = yield from _forward(
        metrics.insertion_curve(h, photo, heat, target, **kw), token, "insertion", n, 2 * n
    )
    region = params.get("box")
    if region is None:
        region = params.get("mask")
    pointing = energy = None
    if region is not None:
        pointing = metrics.pointing_game(heat, region)
        energy = metrics.energy_pointing_game(heat, region)
    return {
        "deletion": deletion,
        "insertion": insertion,
        "baseline": baseline,
        "pointing": pointing,
        "energy": energy,
    }
