"""Job handlers for attribution: "cam", "saliency", "metrics", "sanity" and "compare_methods"
(see engine.jobs).

Each handler reads its params with the kind's dataclass in engine.attribution.contract
(CamParams, SaliencyParams, MetricsParams: the fields and their defaults are declared there),
yields Progress between batches (so a Score-CAM, SmoothGrad or deletion curve can be cancelled
mid-way) and returns that module's frozen result (CamOutput, SaliencyOutput, MetricsOutput),
plain data the GUI shows without TensorFlow. The model is `model` (a spec) or the one loaded
last; the image is `image` (a path, "builtin:NAME" or an array).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from engine.attribution.contract import (
    CamOutput,
    CamParams,
    CompareMethodsOutput,
    CompareMethodsParams,
    MetricsOutput,
    MetricsParams,
    Prediction,
    SaliencyOutput,
    SaliencyParams,
    SanityOutput,
    SanityParams,
)
from engine.errors import EngineError
from engine.jobs import CancelToken, Progress, handler
from engine.models import ModelHandle


def _photo(params: Mapping[str, Any]) -> np.ndarray:
    from engine.job_handlers import image_param

    return image_param(params)


def _model(params: Mapping[str, Any]) -> ModelHandle:
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


def top_predictions(h: ModelHandle, probabilities: np.ndarray, k: int = 5) -> tuple[Prediction, ...]:
    """The k most probable classes as (index, name, probability), best first."""
    probs = np.asarray(probabilities, np.float64).reshape(-1)
    names = h.class_names or [str(i) for i in range(len(probs))]
    order = np.argsort(-probs)[: max(1, int(k))]
    return tuple(
        Prediction(int(i), str(names[i]) if i < len(names) else str(i), float(probs[i])) for i in order
    )


def _target(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


@handler("cam")
def cam_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    from engine.attribution.cam import iter_cam
    from engine.attribution.projection import DEFAULT_MAPPING

    p = CamParams.parse(params)
    h = _model(p.as_dict())
    photo = _photo(p.as_dict())
    args = (p.layer or None, p.method, p.mapping or DEFAULT_MAPPING)  # layer/mapping None: the defaults
    compare = _target(p.compare)
    total = 2 if compare is not None else 1
    result = yield from _forward(iter_cam(h, photo, _target(p.target), *args, **p.options()), token, "CAM")
    other = None
    if compare is not None:
        gen = iter_cam(h, photo, compare, *args, **p.options())
        other = yield from _forward(gen, token, "CAM (second target)")
    yield Progress(0, total, total, None, "done")
    return CamOutput(
        result=result,
        compare=other,
        predictions=top_predictions(h, result.probabilities, int(p.top_k)),
        photo=photo,
        model_shape=(int(h.input_shape[0]), int(h.input_shape[1])),
    )


@handler("saliency")
def saliency_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    from engine.attribution.gradients import check_saliency_method, iter_saliency

    p = SaliencyParams.parse(params)
    h = _model(p.as_dict())
    photo = _photo(p.as_dict())
    method = check_saliency_method(p.method)
    layer = p.layer or None
    target = _target(p.target)
    smap = yield from _forward(iter_saliency(h, photo, target, method, layer, **p.options()), token, method)
    return SaliencyOutput(
        map=smap,
        method=method,
        target=target,
        layer=layer,
        signed=method in ("integrated", "grad_x_input"),
        photo=photo,
    )


@handler("metrics")
def metrics_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    from engine.attribution import metrics

    p = MetricsParams.parse(params)
    h = _model(p.as_dict())
    photo = _photo(p.as_dict())
    if p.heatmap is None:
        raise EngineError("a 'metrics' job needs a heatmap")
    heat = np.asarray(p.heatmap, np.float32)
    target = _target(p.target)
    baseline = metrics.check_baseline(p.baseline)
    kw = {**p.options(), "baseline": baseline}
    if p.blur_sigma is not None:
        kw["blur_sigma"] = float(p.blur_sigma)
    n = int(p.steps) + 1
    deletion = yield from _forward(
        metrics.deletion_curve(h, photo, heat, target, **kw), token, "deletion", 0, 2 * n
    )
    insertion = yield from _forward(
        metrics.insertion_curve(h, photo, heat, target, **kw), token, "insertion", n, 2 * n
    )
    region = p.box if p.box is not None else p.mask
    pointing = energy = None
    if region is not None:
        pointing = metrics.pointing_game(heat, region)
        energy = metrics.energy_pointing_game(heat, region)
    return MetricsOutput(deletion, insertion, baseline, pointing, energy)


@handler("sanity")
def sanity_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    """The model-randomization sanity check: one Progress per recomputed map (cancellable)."""
    from engine.attribution.sanity import iter_randomization

    p = SanityParams.parse(params)
    h = _model(p.as_dict())
    photo = _photo(p.as_dict())
    layers = tuple(p.layers) if p.layers else None
    gen = iter_randomization(
        h, photo, p.method, _target(p.target), p.order, layers, int(p.seed), **p.method_kwargs()
    )
    result = yield from _forward(gen, token, "sanity check")
    return SanityOutput(result=result, photo=photo, model_name=h.name)


@handler("compare_methods")
def compare_methods_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    """Methods compared on one image: one Progress per pass, named by method and stage (cancellable)."""
    from engine.attribution.compare import describe_step, iter_compare

    p = CompareMethodsParams.parse(params)
    h = _model(p.as_dict())
    photo = _photo(p.as_dict())
    gen = iter_compare(
        h,
        photo,
        p.methods,
        _target(p.target),
        p.layer or None,
        p.mapping,
        p.box,
        p.baseline,
        int(p.steps),
        bool(p.sanity),
        int(p.seed),
    )
    while True:
        token.raise_if_cancelled()
        try:
            done, total = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        yield Progress(0, done, total, None, describe_step(p.methods, bool(p.sanity), done))
    return CompareMethodsOutput(result=result, photo=photo, model_name=h.name)
