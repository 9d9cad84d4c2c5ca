"""Typed params and results of the attribution jobs: "cam", "saliency", "metrics", "sanity" and
"compare_methods".

Frozen dataclasses, free of TensorFlow, so the window imports them on its main thread: the
Attribution tab builds `CamParams(...)`, `SaliencyParams(...)` or `MetricsParams(...)` and
submits it; the handlers (engine.attribution.jobs) read them with `XParams.parse(params)` and
answer with a `CamOutput`, `SaliencyOutput` or `MetricsOutput` read by attribute.

Each default is declared once, here or in the engine function a field passes through to:
the fields marked `option()` are handed on by name (`params.options()`) to iter_cam,
iter_saliency or deletion_curve/insertion_curve, and tests/engine/test_contract_attribution.py
checks them and their defaults against those functions' signatures.

CamOutput and SaliencyOutput answer the same questions (`photo`, `heatmap`, `target`,
`heatmaps(style)`, `cams`, `settings()`), so a view shows either without asking which it holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np

from engine.attribution.compare import ALL_METHODS
from engine.attribution.metrics import DEFAULT_BASELINE
from engine.attribution.projection import DEFAULT_MAPPING
from engine.contract import ImageParams

if TYPE_CHECKING:
    from engine.attribution.cam import CamResult
    from engine.attribution.compare import CompareResult
    from engine.attribution.metrics import CurveScore
    from engine.attribution.sanity import SanityResult

_OPTION = "engine_option"


def option(default: Any) -> Any:
    """A field passed on unchanged, by name, as a keyword argument of the engine function."""
    return field(default=default, metadata={_OPTION: True})


class _Options:
    """Mixin: `options()`, the fields marked option() as keyword arguments."""

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.metadata.get(_OPTION))  # type: ignore[arg-type]

    def options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.option_names()}


# ----------------------------------------------------------------------------- params
@dataclass(frozen=True)
class CamParams(_Options, ImageParams):
    """A class activation map of `image` (engine.attribution.cam.iter_cam's arguments).

    target: None (top-1), a class index (or its digits as text) or a class name; compare: a
    second target, computed with the same settings and shown beside the first on one scale;
    top_k: how many predictions the answer lists. layer None: the last layer with spatial extent.
    """

    kind = "cam"
    target: Any = None
    layer: str | None = None
    method: str = "gradcam"
    mapping: str = DEFAULT_MAPPING
    sigma: float | None = option(None)
    batch_size: int = option(32)
    precision: str = option("auto")
    max_channels: int | float | None = option(None)  # Score-CAM fast mode: the most varied channels only
    compare: Any = None
    top_k: int = 5


@dataclass(frozen=True)
class SaliencyParams(_Options, ImageParams):
    """A saliency map of `image` (engine.attribution.gradients.iter_saliency's arguments).

    method: gradient | smoothgrad | integrated | grad_x_input; layer: explain the mean of a
    layer's output instead of a class. samples/noise: SmoothGrad's; steps: Integrated Gradients'.
    """

    kind = "saliency"
    target: Any = None
    method: str = "gradient"
    layer: str | None = None
    samples: int = option(25)
    noise: float = option(0.15)
    steps: int = option(32)
    batch_size: int = option(16)
    seed: int = option(0)


@dataclass(frozen=True)
class MetricsParams(_Options, ImageParams):
    """Deletion and insertion curves of `heatmap` (H, W on the image's grid) for `target`.

    The options are engine.attribution.metrics.deletion_curve's (baseline: blur | mean | black |
    noise). box (top, left, bottom, right) or mask (H, W bool), if given, adds the pointing game
    and its energy share.
    """

    kind = "metrics"
    heatmap: Any = None
    target: Any = None
    steps: int = option(32)
    batch_size: int = option(33)
    baseline: str = option(DEFAULT_BASELINE)
    blur_sigma: float | None = option(None)
    seed: int = option(0)
    box: tuple[float, float, float, float] | None = None
    mask: Any = None


@dataclass(frozen=True)
class SanityParams(_Options, ImageParams):
    """The model-randomization sanity check of a map of `image`
    (engine.attribution.sanity.iter_randomization's arguments).

    method: a CAM or saliency method name; order: cascade | independent; layers: the layers to
    re-initialize (None: every layer with trainable weights); layer: the CAM layer (None: the
    last with spatial extent; not for saliency methods); method_options: more keyword arguments
    of the method (mapping=, samples=, ...).
    """

    kind = "sanity"
    method: str = "gradcam"
    target: Any = None
    order: str = "cascade"
    layers: tuple[str, ...] | None = None
    seed: int = 0
    layer: str | None = None
    method_options: dict[str, Any] | None = None

    def method_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the method gets: method_options plus layer when given."""
        out = dict(self.method_options or {})
        if self.layer:
            out["layer"] = self.layer
        return out


@dataclass(frozen=True)
class CompareMethodsParams(_Options, ImageParams):
    """Attribution methods compared on `image` (engine.attribution.compare.iter_compare's
    arguments): a map, deletion/insertion AUC, the pointing game for `box` (top, left, bottom,
    right) and, with `sanity`, the randomization check per method.

    methods: CAM and saliency method names (a tuple or "gradcam,scorecam"); layer / mapping: the
    CAM methods' (layer None: the last with spatial extent).
    """

    kind = "compare_methods"
    methods: tuple[str, ...] | str = ALL_METHODS
    target: Any = None
    layer: str | None = None
    mapping: str = DEFAULT_MAPPING
    box: Any = None
    baseline: str = DEFAULT_BASELINE
    steps: int = 16
    sanity: bool = True
    seed: int = 0


# ----------------------------------------------------------------------------- results
class Prediction(NamedTuple):
    index: int
    name: str
    probability: float


@dataclass(frozen=True, eq=False)
class CamOutput:
    """The "cam" job's answer: the map (and the compared target's), the top predictions, the
    photo it was computed on (float32 (H, W, C)) and the model's input size (H, W)."""

    kind: ClassVar[str] = "cam"
    result: CamResult
    compare: CamResult | None
    predictions: tuple[Prediction, ...]
    photo: np.ndarray
    model_shape: tuple[int, int]

    @property
    def results(self) -> tuple[CamResult, ...]:
        """The maps shown: the target's, then the compared target's if any."""
        return (self.result,) if self.compare is None else (self.result, self.compare)

    @property
    def heatmap(self) -> np.ndarray:
        """The target's signed map on the photo's grid (what the scores rank)."""
        return self.result.heatmap

    @property
    def target(self) -> int:
        return self.result.target

    @property
    def layer(self) -> str:
        return self.result.layer

    @property
    def cams(self) -> list[np.ndarray]:
        """The coarse layer maps, one per result."""
        return [r.cam for r in self.results]

    def heatmaps(self, style: str = "relu") -> list[np.ndarray]:
        """The maps to lay over the photo: ReLU'd ("relu") or signed."""
        return [r.heatmap_relu if style == "relu" else r.heatmap for r in self.results]

    def settings(self) -> dict[str, Any]:
        """What reproduces the map, for an export sidecar."""
        res = self.result
        out: dict[str, Any] = {"layer": res.layer, "mapping": res.mapping}
        if res.method == "scorecam":
            out["precision"] = res.settings.get("precision")
        out["targets"] = [
            {"index": r.target, "name": r.target_name, "logit": r.score, "probability": r.probability}
            for r in self.results
        ]
        return out


@dataclass(frozen=True, eq=False)
class SaliencyOutput:
    """The "saliency" job's answer: the (H, W) float32 map on the photo's grid, signed for
    integrated gradients and gradient × input; target and layer as asked (None: top-1, no layer)."""

    kind: ClassVar[str] = "saliency"
    map: np.ndarray
    method: str
    target: Any
    layer: str | None
    signed: bool
    photo: np.ndarray

    @property
    def heatmap(self) -> np.ndarray:
        return self.map

    @property
    def cams(self) -> None:
        """No coarse layer map: saliency lives on the input pixels."""
        return None

    def heatmaps(self, style: str = "relu") -> list[np.ndarray]:
        return [self.map]

    def settings(self) -> dict[str, Any]:
        return {"target": self.target, "layer": self.layer}


@dataclass(frozen=True, eq=False)
class MetricsOutput:
    """The "metrics" job's answer: both curves (each names its baseline), and the pointing game
    (hit or not) and its energy share when a box or mask was given (else None)."""

    deletion: CurveScore
    insertion: CurveScore
    baseline: str
    pointing: bool | None = None
    energy: float | None = None

    def settings(self) -> dict[str, Any]:
        """The scores for an export sidecar."""
        return {
            "deletion_auc": self.deletion.auc,
            "insertion_auc": self.insertion.auc,
            "baseline": self.deletion.baseline,
            **({"pointing": bool(self.pointing)} if self.pointing is not None else {}),
            **({"energy": float(self.energy)} if self.energy is not None else {}),
        }


@dataclass(frozen=True, eq=False)
class _CheckOutput:
    """An answer about one photo: the engine's result, the photo it was computed on and the
    model's name (for the figure's title)."""

    result: Any
    photo: np.ndarray
    model_name: str

    def settings(self) -> dict[str, Any]:
        """What reproduces the run and what it found, for an export sidecar."""
        return self.result.settings()


@dataclass(frozen=True, eq=False)
class SanityOutput(_CheckOutput):
    """The "sanity" job's answer: the SanityResult (maps per step, the three similarity curves,
    the verdict), the photo and the model's name."""

    kind: ClassVar[str] = "sanity"
    result: SanityResult


@dataclass(frozen=True, eq=False)
class CompareMethodsOutput(_CheckOutput):
    """The "compare_methods" job's answer: the CompareResult (a row per method: map, scores,
    sanity verdict), the photo and the model's name."""

    kind: ClassVar[str] = "compare_methods"
    result: CompareResult

    @property
    def maps(self) -> np.ndarray:
        """The methods' maps stacked, (M, H, W) float32."""
        return self.result.maps
