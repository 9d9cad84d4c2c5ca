"""Typed params and results of the foundation job kinds (engine.job_handlers).

Frozen dataclasses, free of TensorFlow, so the window imports them on its main thread:
a view builds `FeatureMapsParams(...)` and submits `.request(owner)`; the engine answers
"load_model" with a `ModelSummary` the window reads by attribute. The other kinds keep their
contracts beside their handlers (engine.maximize.contract, engine.attribution.contract,
engine.dataset.contract).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.jobs import JobParams
from engine.models import LayerInfo, ModelHandle


@dataclass(frozen=True)
class LoadModelParams(JobParams):
    """Load `spec` (a path, "builtin:NAME" or "keras:NAME") and make it the engine's current model."""

    kind = "load_model"
    spec: str
    trust: bool = False  # lift Keras safe mode for this file: only for files the user trusts
    scaling: str | None = None  # input scaling override ("0-1", "caffe", ...); None: detected


@dataclass(frozen=True, kw_only=True)
class ModelRef(JobParams):
    """The model a request runs on: `model` a spec (None: the engine's current model), whether
    the user trusts its file, and an input-scaling override. Keyword-only, so every kind's own
    fields come first."""

    model: str | None = None
    trust: bool = False
    scaling: str | None = None


MODEL_FIELDS = ("model", "trust", "scaling")  # ModelRef's fields, which handlers read themselves


@dataclass(frozen=True)
class ImageParams(ModelRef):
    """A request about one image of the current model (or of `model`, a spec)."""

    kind = "predict"
    image: Any = None  # a path, "builtin:NAME" spec, bytes or an array


@dataclass(frozen=True)
class FeatureMapsParams(ImageParams):
    """The outputs of `layers` (or of `layer`) for one image, in one forward pass."""

    kind = "feature_maps"
    layer: str | None = None
    layers: Sequence[str] | None = None


@dataclass(frozen=True)
class LayerParams(ModelRef):
    """A request about one layer of the current model: its filters (kind "filters") or receptive field."""

    kind = "filters"
    layer: str = ""


@dataclass(frozen=True)
class ReceptiveFieldParams(LayerParams):
    kind = "receptive_field"


@dataclass(frozen=True)
class ModelSummary:
    """What the window knows of a loaded model: the "load_model" job's result.

    layers is the LayerInfo tree (nested models have children); default_cam_layer is the
    engine's attribution layer (the last with spatial extent), None when there is none.
    """

    name: str
    spec: str
    input_shape: tuple[int, ...]
    scaling: str
    class_names: tuple[str, ...] | None
    num_classes: int
    output_activation: str | None
    layers: tuple[LayerInfo, ...]
    params: int
    opaque: bool = False
    default_cam_layer: str | None = None
    device: str = ""

    @classmethod
    def of(cls, h: ModelHandle, device: str = "") -> ModelSummary:
        from engine.errors import EngineError

        try:
            cam_layer: str | None = h.default_cam_layer()
        except EngineError:
            cam_layer = None
        return cls(
            name=h.name,
            spec=h.spec,
            input_shape=tuple(int(s) for s in h.input_shape),
            scaling=h.scaling,
            class_names=tuple(h.class_names) if h.class_names else None,
            num_classes=int(h.num_classes),
            output_activation=h.output_activation,
            layers=tuple(h.layers),
            params=int(h.model.count_params()),
            opaque=bool(h.opaque),
            default_cam_layer=cam_layer,
            device=device,
        )

    def get(self, key: str, default: Any = None) -> Any:
        """The field `key`, as the summary dict of earlier versions answered it: for scripts and
        tools written against that dict (e.g. ../shared/tools/tour.py). Convscope's own code reads
        attributes."""
        return getattr(self, key, default) if key in self.__dataclass_fields__ else default

    def class_name(self, index: int) -> str:
        """The name of class `index`, or the index as text for a model without names."""
        names = self.class_names
        return str(names[index]) if names and 0 <= index < len(names) else str(index)
