"""Attribution methods compared on one image: iter_compare / compare -> CompareResult.

For every method asked (the CAM registry engine.attribution.methods: Grad-CAM, Grad-CAM++,
Layer-CAM, Score-CAM, Eigen-CAM; and the saliency methods of engine.attribution.gradients:
gradient, SmoothGrad, Integrated Gradients, gradient × input) the map of one target class is
computed and scored the same way:

- deletion and insertion AUC (engine.attribution.metrics, with `baseline` in `steps` steps;
  lower deletion and higher insertion are better);
- with a `box` (top, left, bottom, right, bottom/right exclusive) or a bool mask of the photo's
  shape: the pointing game (the map's peak within metrics.TOLERANCE px of it) and the energy
  pointing game (the share of the map's positive mass inside it);
- with `sanity`: the model-randomization sanity check (engine.attribution.sanity, cascading
  from the top, Adebayo et al. 2018): passed, verdict and the last step's rank correlation. It
  is the slow part (one map per layer with weights), so `sanity=False` skips it.

The target is fixed once on the unmodified image (its top-1 when None), so every method,
every curve and every randomization step explains the same class. A CAM method's map is its
signed heatmap on the photo's grid (CamResult.heatmap); a saliency method's its own map.

Progress: the generator yields (done, total) where total counts the stages (map, deletion,
insertion and, with sanity, the check) of every method; inside a stage it yields the same
`done` again after each of the stage's passes (a Score-CAM batch, a curve batch, a
randomization step), so a job can be cancelled between any two. `describe_step` names the stage
a `done` stands for. Importing this module imports no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engine.attribution.metrics import DEFAULT_BASELINE, CurveScore, check_baseline
from engine.attribution.projection import DEFAULT_MAPPING
from engine.common import drain
from engine.errors import EngineError
from engine.models import ModelHandle

__all__ = [
    "ALL_METHODS",
    "CompareResult",
    "CompareRow",
    "check_methods",
    "compare",
    "describe_step",
    "iter_compare",
    "method_kind",
    "stages",
]

# the methods compared by default, in the order the figure shows them
ALL_METHODS: tuple[str, ...] = (
    "gradcam",
    "gradcam++",
    "layercam",
    "scorecam",
    "eigencam",
    "gradient",
    "smoothgrad",
    "integrated",
)
LABELS = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "layercam": "Layer-CAM",
    "scorecam": "Score-CAM",
    "eigencam": "Eigen-CAM",
    "gradient": "Gradient",
    "smoothgrad": "SmoothGrad",
    "integrated": "Integrated Gradients",
    "grad_x_input": "Gradient × Input",
}


@dataclass(frozen=True, eq=False)
class CompareRow:
    """One method's map and scores.

    method: its registered name; kind: "cam" or "saliency"; map: (H, W) float32 on the photo's
    grid, the map the scores rank (signed where the method is); deletion / insertion: the
    curves (CurveScore: auc, fractions, scores, baseline); pointing / energy: None without a
    box; sanity_passed / sanity_verdict / sanity_rho (the rank correlation with every layer
    random): None when the check was not run (sanity_verdict then says why, if it failed).
    """

    method: str
    kind: str
    map: np.ndarray
    deletion: CurveScore
    insertion: CurveScore
    pointing: bool | None = None
    energy: float | None = None
    sanity_passed: bool | None = None
    sanity_verdict: str | None = None
    sanity_rho: float | None = None

    @property
    def label(self) -> str:
        return LABELS.get(self.method, self.method)

    @property
    def positive(self) -> np.ndarray:
        """The map's positive part (what an overlay shows)."""
        return np.maximum(self.map, 0.0)

    def scores(self) -> dict[str, Any]:
        """The numbers of this row, for a sidecar or a table."""
        return {
            "method": self.method,
            "deletion_auc": round(float(self.deletion.auc), 6),
            "insertion_auc": round(float(self.insertion.auc), 6),
            "pointing": self.pointing,
            "energy": None if self.energy is None else round(float(self.energy), 6),
            "sanity_passed": self.sanity_passed,
            "sanity_rho": None if self.sanity_rho is None else round(float(self.sanity_rho), 6),
            "sanity_verdict": self.sanity_verdict,
        }


@dataclass(frozen=True, eq=False)
class CompareResult:
    """rows: one per method, in the order asked; target / target_name: the class every map
    explains (probability: its probability on the unmodified image); layer: the CAM layer (None
    when only saliency methods ran); the settings the maps and scores were computed with."""

    rows: tuple[CompareRow, ...]
    target: int
    target_name: str | None
    layer: str | None
    mapping: str
    baseline: str
    steps: int
    box: tuple[int, int, int, int] | None
    sanity: bool
    seed: int
    probability: float | None = None  # the target's on the unmodified image

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(r.method for r in self.rows)

    @property
    def maps(self) -> np.ndarray:
        """The maps stacked, (M, H, W) float32."""
        return np.stack([r.map for r in self.rows])

    def row(self, method: str) -> CompareRow:
        for r in self.rows:
            if r.method == method:
                return r
        raise KeyError(method)

    def settings(self) -> dict[str, Any]:
        """What reproduces the comparison and what it found, for an export sidecar."""
        return {
            "methods": list(self.methods),
            "target": self.target,
            "target_name": self.target_name,
            "layer": self.layer,
            "mapping": self.mapping,
            "baseline": self.baseline,
            "steps": self.steps,
            "box": None if self.box is None else list(self.box),
            "sanity": self.sanity,
            "seed": self.seed,
            "probability": None if self.probability is None else round(float(self.probability), 6),
            "scores": [r.scores() for r in self.rows],
        }


def method_kind(method: str) -> tuple[str, str]:
    """(registered name, "cam" | "saliency") of a method name or alias; EngineError if unknown."""
    from engine.attribution.gradients import SALIENCY_METHODS, check_saliency_method
    from engine.attribution.methods import CAM_METHODS, check_method

    key = str(method).strip().lower()
    try:
        return check_method(key), "cam"
    except EngineError:
        pass
    try:
        return check_saliency_method(key), "saliency"
    except EngineError:
        known = ", ".join((*CAM_METHODS, *SALIENCY_METHODS))
        raise EngineError(f"unknown attribution method {method!r}; choose from: {known}") from None


def check_methods(methods: Sequence[str] | str) -> tuple[tuple[str, str], ...]:
    """The methods asked for ("gradcam,scorecam" or a list), as (name, kind), without repeats."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m) for m in methods]
    out = tuple(dict.fromkeys(method_kind(m) for m in names if m.strip()))
    if not out:
        raise EngineError("no attribution method given to compare")
    return out


def stages(sanity: bool) -> tuple[str, ...]:
    """The stages each method goes through, in order."""
    return ("map", "deletion", "insertion", *(("sanity check",) if sanity else ()))


def describe_step(methods: Sequence[str] | str, sanity: bool, done: int) -> str:
    """What the stage `done` of iter_compare's progress is ("Grad-CAM (1/3): deletion")."""
    names = [m for m, _ in check_methods(methods)]
    per = stages(sanity)
    if done >= len(names) * len(per):
        return "done"
    k, s = divmod(max(0, int(done)), len(per))
    return f"{LABELS.get(names[k], names[k])} ({k + 1}/{len(names)}): {per[s]}"


def _region(box: Any, shape: tuple[int, int]) -> Any:
    """The box as 4 ints (top, left, bottom, right) or a bool mask; checked against the photo."""
    if box is None:
        return None
    arr = np.asarray(box)
    if arr.dtype == bool or arr.ndim == 2:
        if arr.shape != tuple(shape):
            raise EngineError(f"object mask of shape {arr.shape} does not match the image's {tuple(shape)}")
        if not arr.any():
            raise EngineError("the object mask is empty")
        return arr.astype(bool)
    if arr.shape != (4,) or not np.all(np.isfinite(arr.astype(np.float64))):
        raise EngineError("box must be 4 numbers (top, left, bottom, right) in image pixels")
    top, left, bottom, right = (int(round(float(v))) for v in arr)
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, shape[0]), min(right, shape[1])
    if bottom <= top or right <= left:
        raise EngineError(
            f"box {tuple(int(round(float(v))) for v in arr)} (top, left, bottom, right) does not overlap "
            f"the {shape[1]}x{shape[0]} image"
        )
    return (top, left, bottom, right)


def iter_compare(
    h: ModelHandle,
    img: Any,
    methods: Sequence[str] | str = ALL_METHODS,
    target: Any = None,
    layer: str | None = None,
    mapping: str = DEFAULT_MAPPING,
    box: Any = None,
    baseline: str = DEFAULT_BASELINE,
    steps: int = 16,
    sanity: bool = True,
    seed: int = 0,
) -> Iterator[tuple[int, int]]:
    """compare() as a generator: yields (done, total) stages (see the module doc); returns the
    CompareResult.

    methods: CAM and saliency method names or aliases (a list or "gradcam,scorecam").
    target: None (top-1), a class index or name, or a Target. layer: the CAM layer (None: the
    last with spatial extent); mapping: the CAM projection. box: (top, left, bottom, right) or a
    bool mask of the image's shape, for the pointing game and its energy. baseline / steps:
    the deletion and insertion curves'. sanity: run the randomization check per method. seed:
    the curves' tie-break and noise, SmoothGrad's noise and the re-initialization's.
    """
    from engine.attribution.cam import _check_layer, iter_cam
    from engine.attribution.functions import logits_fn
    from engine.attribution.gradients import iter_saliency
    from engine.attribution.metrics import (
        deletion_curve,
        energy_pointing_game,
        insertion_curve,
        pointing_game,
    )
    from engine.attribution.projection import check_mapping
    from engine.attribution.sanity import iter_randomization, relay
    from engine.attribution.target import Target, target_name
    from engine.images import load_image, to_model_input

    chosen = check_methods(methods)
    mapping = check_mapping(mapping or DEFAULT_MAPPING)
    baseline = check_baseline(baseline)
    steps, seed, sanity = int(steps), int(seed), bool(sanity)
    if steps < 1:
        raise EngineError("steps must be at least 1")
    photo = (
        img if isinstance(img, np.ndarray) and img.dtype == np.float32 and img.ndim == 3 else load_image(img)
    )
    region = _region(box, photo.shape[:2])
    any_cam = any(kind == "cam" for _, kind in chosen)
    layer_path = _check_layer(h, layer) if any_cam else None
    goal = Target.of(h, target)
    logits = np.asarray(logits_fn(h)(to_model_input(photo, h)))
    index = goal.chosen(logits[0])
    goal = replace(goal, index=index)  # top-1 fixed once: every map and curve explains this class
    per = len(stages(sanity))
    total = per * len(chosen)
    curve = {"steps": steps, "baseline": baseline, "seed": seed}
    rows = []
    yield 0, total
    for k, (name, kind) in enumerate(chosen):
        at = k * per
        if kind == "cam":
            res = yield from relay(iter_cam(h, photo, goal, layer_path, name, mapping), at, total)
            heat = np.asarray(res.heatmap, np.float32)
            options: dict[str, Any] = {"layer": layer_path, "mapping": mapping}
        else:
            gen = iter_saliency(h, photo, goal, name, seed=seed)
            heat = np.asarray((yield from relay(gen, at, total)), np.float32)
            options = {}
        heat.setflags(write=False)
        yield at + 1, total
        deletion = yield from relay(deletion_curve(h, photo, heat, goal, **curve), at + 1, total)
        yield at + 2, total
        insertion = yield from relay(insertion_curve(h, photo, heat, goal, **curve), at + 2, total)
        yield at + 3, total
        check: dict[str, Any] = {}
        if sanity:
            gen = iter_randomization(h, photo, name, goal, "cascade", None, seed, **options)
            try:
                res_s = yield from relay(gen, at + 3, total)
            except EngineError as exc:  # a model that cannot be copied: the scores still stand
                check = {"sanity_verdict": f"not checked: {exc}"}
            else:
                check = {
                    "sanity_passed": bool(res_s.passed),
                    "sanity_verdict": res_s.verdict,
                    "sanity_rho": float(res_s.spearman[-1]),
                }
            yield at + 4, total
        scores: dict[str, Any] = {}
        if region is not None:
            scores = {"pointing": pointing_game(heat, region), "energy": energy_pointing_game(heat, region)}
        rows.append(CompareRow(name, kind, heat, deletion, insertion, **scores, **check))
    return CompareResult(
        rows=tuple(rows),
        target=index,
        target_name=target_name(h, index),
        layer=layer_path,
        mapping=mapping,
        baseline=baseline,
        steps=steps,
        box=region if isinstance(region, tuple) else None,
        sanity=sanity,
        seed=seed,
        probability=float(goal.probabilities(logits)[0, index]),
    )


def compare(h: ModelHandle, img: Any, *args: Any, progress: Any = None, **options: Any) -> CompareResult:
    """Attribution methods compared on one image (arguments: iter_compare's);
    progress(done, total) is called after each pass."""
    return drain(iter_compare(h, img, *args, **options), None if progress is None else lambda s: progress(*s))
