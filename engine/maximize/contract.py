"""Typed params and results of the job kinds "maximize", "dream" and "unit_activity".

Frozen dataclasses, free of TensorFlow, so the window imports them on its main thread: a view
builds ``MaximizeParams(objective=channel("conv3", 5), steps=100)`` and submits it; the engine
(engine.maximize.jobs) answers with a ``MaximizeOutput`` (or ``DreamOutput``, or a
``engine.maximize.units.UnitActivity``) read by attribute.

Each parameter's default lives here once. The fields of MaximizeParams other than its
``job_fields`` are exactly the keyword arguments of engine.maximize.run.maximize (and those of
DreamParams of engine.maximize.deepdream.dream, ``image`` standing for its ``img``); the
handlers pass them through by these fields (``run_kwargs()``) and
tests/engine/test_contract_maximize.py checks names and defaults against the functions'
signatures, so the two cannot drift. Live control (pause, resume, step size) is not a param:
it is the job's CancelToken (EngineClient.pause / set_lr_scale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from engine.contract import MODEL_FIELDS as _MODEL_FIELDS
from engine.contract import ModelRef


class _RunParams(ModelRef):
    """Params of a run that passes most of its fields straight to an engine function."""

    job_fields: ClassVar[tuple[str, ...]] = _MODEL_FIELDS  # fields the handler reads itself

    def run_kwargs(self) -> dict[str, Any]:
        """The fields passed through to the engine function as keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.job_fields}  # type: ignore[arg-type]


@dataclass(frozen=True)
class MaximizeParams(_RunParams):
    """An activation maximization (engine.maximize.run.maximize) of `objective`.

    objective: an objective object (engine.maximize.objective_terms: channel("conv3", 5),
    neuron(...), class_logit(3), combined with + - *), a string of the grammar
    (engine.maximize.objectives) or a list of them (a batch). chunk > 0 runs a big batch
    (e.g. every channel of a layer) as consecutive batches of that many images.
    """

    kind = "maximize"
    job_fields = ("objective", "chunk", *_MODEL_FIELDS)

    objective: Any = None
    steps: int = 200
    size: int | tuple[int, int] | None = None
    init: Any = "noise"
    seed: int = 0
    transforms: Any = ("jitter", "rotate", "scale")
    regularizers: Any = ()
    optimizer: str = "normalized"
    lr: float = 1.0
    param: str = "pixel"
    every: int | None = 10
    image: Any = None
    schedule: str = "constant"
    squash: str | None = None
    decorrelate: bool | None = None
    init_scales: Sequence[float] | None = None
    fps: float = 20.0
    pre_activation: bool | None = None
    stop_silent: bool = True
    chunk: int = 0


@dataclass(frozen=True)
class DreamParams(_RunParams):
    """DeepDream (engine.maximize.deepdream.dream) of `image` with `layers` (an objective: layer
    paths joined with "+", weighted terms, a list or {layer: weight}, or one channel "conv3:5")."""

    kind = "dream"
    job_fields = ("image", "layers", *_MODEL_FIELDS)

    image: Any = None  # a path, "builtin:NAME" spec, bytes or an array (dream's `img`)
    layers: Any = None
    octaves: int = 4
    octave_scale: float = 1.4
    steps: int = 20
    lr: float = 0.01
    every: int | None = 5
    seed: int = 0
    size: int | tuple[int, int] | None = None
    fps: float = 20.0


@dataclass(frozen=True)
class UnitActivityParams(ModelRef):
    """Each unit's mean and max activation of `layer` over images (engine.maximize.units).

    images: "samples" (the sample images that fit the model), "natural" (n images of a built-in
    model's own data; the samples for other models) or a dataset source spec; batch: images per
    forward pass. start (a start kind such as "noise", with the seed and pre_activation a
    maximization would get): also measure each unit on that start image when the run would read
    the layer after its activation.
    """

    kind = "unit_activity"

    layer: str = ""
    images: str = "samples"
    n: int = 1000
    batch: int = 64
    start: str | None = None
    seed: int = 0
    pre_activation: bool | None = None


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


@dataclass(frozen=True)
class StepInfo:
    """What each streamed Frame of a "maximize" or "dream" job carries beside its images.

    loss: the batch's mean objective at this step, losses: one per image, total: steps of the
    run; offset/count: in a chunked run, the index of the frame's first image and the images in
    the whole run; probability: the class objective's probability per image; octave and shape:
    DeepDream's current octave and its (H, W).
    """

    loss: float
    losses: tuple[float, ...] = ()
    total: int = 0
    offset: int = 0
    count: int | None = None
    probability: tuple[float, ...] | None = None
    octave: int | None = None
    shape: tuple[int, int] | None = None

    @classmethod
    def of(cls, step: Any, offset: int = 0, count: int | None = None) -> StepInfo:
        """From an engine.maximize Step (its extras in step.info; the final step's are the result's)."""
        info = step.info
        prob, shape = info.get("probability"), info.get("shape")
        return cls(
            loss=float(step.loss),
            losses=tuple(float(v) for v in step.losses),
            total=int(step.total),
            offset=int(offset),
            count=count,
            probability=tuple(float(p) for p in prob) if prob is not None else None,
            octave=int(info["octave"]) if info.get("octave") is not None else None,
            shape=(int(shape[0]), int(shape[1])) if shape is not None else None,
        )


class _Output:
    """Builds a result from the last Step's info, refusing keys the dataclass does not name."""

    @classmethod
    def of(cls, **values: Any) -> Any:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - names)
        if unknown:  # the engine grew a result key: add it to the dataclass
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
        return cls(**{k: v if k == "settings" else _tuple(v) for k, v in values.items()})  # type: ignore[call-arg]


@dataclass(frozen=True, eq=False)
class MaximizeOutput(_Output):
    """The result of a "maximize" job.

    images: float32 (B, H, W, C) in [0, 1], one per objective of the batch; losses: the mean
    objective per step; curves: one such curve per chunk of a chunked run; frames: (step, uint8
    images) pairs for GIF export; settings: the run's reproducible settings (a plain dict, as the
    export sidecar writes it). Per image: objectives (their texts), start_objective and objective
    (the value at the start and at the end, without transforms), rose, probability (class
    objectives), predictions and report (class objectives), changed_boxes, crops and
    receptive_fields (neuron objectives), analytic (first-layer units: their analytic maximizers,
    (B, kh, kw, C)). silent: indices of images whose unit is silent from the start, with a
    message; stopped is "silent" when the run stopped early because every one was.
    """

    images: np.ndarray
    losses: tuple[float, ...] = ()
    frames: tuple[tuple[int, np.ndarray], ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    loss: float | None = None
    curves: tuple[Sequence[float], ...] = ()
    objectives: tuple[str, ...] = ()
    start_objective: tuple[float, ...] = ()
    objective: tuple[float, ...] = ()
    rose: tuple[bool, ...] = ()
    probability: tuple[float, ...] = ()
    predictions: tuple[Mapping[str, Any], ...] = ()
    report: tuple[str, ...] = ()
    changed_boxes: tuple[tuple[int, int, int, int] | None, ...] = ()
    crops: tuple[np.ndarray, ...] = ()
    receptive_fields: tuple[tuple[int, int, int, int], ...] = ()
    analytic: np.ndarray | None = None
    silent: tuple[int, ...] = ()
    message: str = ""
    stopped: str = ""


@dataclass(frozen=True, eq=False)
class DreamOutput(_Output):
    """The result of a "dream" job: the dreamed image (1, H, W, C) float32 in [0, 1], the loss
    curve, frames for GIF export, the settings (layers, octaves, steps, lr, seed, size), the
    objective's text and the last octave's index."""

    images: np.ndarray
    losses: tuple[float, ...] = ()
    frames: tuple[tuple[int, np.ndarray], ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    loss: float | None = None
    objective: str = ""
    octave: int = 0
