"""Job handlers for the foundation requests (model loading, predictions, maps, filters, fields).

Each handler takes (params, token). The engine thread keeps one current model:
"load_model" sets it, and every other request uses it unless params name a
"model" spec of their own (loaded through a small cache).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from engine.contract import (
    FeatureMapsParams,
    ImageParams,
    LayerParams,
    LoadModelParams,
    ModelSummary,
    ReceptiveFieldParams,
)
from engine.errors import EngineError
from engine.jobs import CancelToken, Progress, handler
from engine.models import ModelHandle

_state: dict[str, Any] = {"current": None}


def current_handle() -> ModelHandle | None:
    """The model the engine thread last loaded (None before the first load_model job)."""
    return _state["current"]


def current_model(params: Mapping[str, Any]) -> ModelHandle:
    """The model a request is about: params['model'] (a spec) or the last loaded one."""
    from engine.models import model_cache

    spec = params.get("model")
    if spec:
        return model_cache.get(str(spec), bool(params.get("trust", False)), params.get("scaling"))
    if _state["current"] is None:
        raise EngineError("no model loaded")
    return _state["current"]


def image_param(params: Mapping[str, Any]) -> Any:
    from engine.images import load_image

    if params.get("image") is None:
        raise EngineError("no image selected")
    return load_image(params["image"])


@handler("load_model")
def _load_model(params: Mapping[str, Any], token: CancelToken) -> ModelSummary:
    from engine.models import load_model

    p = LoadModelParams.parse(params)
    handle = load_model(str(p.spec), trust=bool(p.trust), scaling=p.scaling)
    _state["current"] = handle
    return ModelSummary.of(handle, device_name())


@handler("predict")
def _predict(params: Mapping[str, Any], token: CancelToken) -> np.ndarray:
    from engine.activations import predict

    ImageParams.parse(params)
    return predict(current_model(params), image_param(params))


@handler("feature_maps")
def _feature_maps(params: Mapping[str, Any], token: CancelToken) -> dict[str, np.ndarray]:
    from engine.activations import feature_maps

    p = FeatureMapsParams.parse(params)
    layers = p.layers or ([p.layer] if p.layer else [])
    if not layers:
        raise EngineError("no layer: select one in the tree")
    return feature_maps(current_model(params), image_param(params), list(layers))


@handler("filters")
def _filters(params: Mapping[str, Any], token: CancelToken) -> np.ndarray:
    from engine.weights import filters

    p = LayerParams.parse(params)
    return filters(current_model(params), p.layer)


@handler("receptive_field")
def _receptive_field(params: Mapping[str, Any], token: CancelToken) -> Any:
    from engine.receptive_field import receptive_field

    p = ReceptiveFieldParams.parse(params)
    return receptive_field(current_model(params), p.layer)


@handler("device")
def _device(params: Mapping[str, Any], token: CancelToken) -> str:
    return device_name()


@handler("sleep")
def _sleep(params: Mapping[str, Any], token: CancelToken) -> Iterator[Any]:
    """A test and demo job: `steps` steps of `seconds` each, with progress; honours cancel each step."""
    steps = int(params.get("steps", 10))
    for i in range(steps):
        time.sleep(float(params.get("seconds", 0.05)))
        token.raise_if_cancelled()
        yield Progress(0, i + 1, steps, float(i))
    return steps


def device_name() -> str:
    """'GPU: <name>' when TensorFlow sees a GPU, else 'CPU'."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    except Exception:  # noqa: BLE001
        return f"GPU: {gpus[0].name}"
