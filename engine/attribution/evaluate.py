"""CAM methods scored over a dataset against the user's own boxes: iter_evaluate / evaluate.

The folder is streamed image by image (engine.dataset.sources.open_source) with its boxes
(engine.dataset.boxes.boxes_for_source: VOC XML beside the images or one COCO JSON). For every
image with boxes and every method x mapping, the map of the target class
(engine.attribution.cam.iter_cam, the signed heatmap on the image's own grid) is scored with
engine.attribution.metrics:

- pointing game: a hit when the map's peak lies within `tolerance` px (metrics.TOLERANCE, 15) of
  a box of the target class; of any box when no box carries that class (unlabelled boxes);
- energy pointing game: the share of the map's positive mass inside those boxes;
- deletion and insertion AUC with `baseline` in `steps` steps (lower deletion, higher
  insertion is better);
- every `sanity_every`-th image (0: never): the model-randomization sanity check
  (engine.attribution.sanity.randomization, Adebayo et al. 2018) once per method, when that
  module exists; its verdict `.passed` counts for every mapping of the method.

target "label": the class a box names (the largest box whose label is a model class), else the
image's sub-folder label, else the top-1 (counted in one problem line); "top1": the model's top-1.

The result (EvaluationResult, frozen) holds a row per method x mapping (means and counts), every
image's scores, and the problems (annotation problems first, then images that could not be
scored). Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.attribution.metrics import DEFAULT_BASELINE, TOLERANCE, check_baseline
from engine.common import drain
from engine.errors import EngineError
from engine.models import ModelHandle

__all__ = [
    "TARGETS",
    "EvaluationResult",
    "EvaluationRow",
    "ImageScore",
    "evaluate",
    "iter_evaluate",
    "sanity_available",
]

TARGETS: tuple[str, ...] = ("label", "top1")
SANITY_MODULE = "engine.attribution.sanity"
_EXAMPLES = 3  # image names quoted in a summary problem line


@dataclass(frozen=True)
class ImageScore:
    """One image's scores for one method x mapping (sanity: None when not checked on it)."""

    image: str
    method: str
    mapping: str
    target: int
    pointing: bool
    energy: float
    deletion: float
    insertion: float
    sanity: bool | None = None


@dataclass(frozen=True)
class EvaluationRow:
    """The means of one method x mapping over `images` images.

    pointing / energy / sanity are shares in [0, 1] (the table prints them as %); deletion and
    insertion are mean AUCs. sanity: the share of checked images whose map passed the
    randomization check, None when none was checked (sanity_images 0).
    """

    method: str
    mapping: str
    images: int
    pointing: float
    energy: float
    deletion: float
    insertion: float
    sanity: float | None = None
    sanity_images: int = 0


@dataclass(frozen=True)
class EvaluationResult:
    """rows: a row per method x mapping in the order asked; scores: every image's; problems:
    one line each; evaluated / skipped: images scored / not scored; settings: what ran
    (model, source, methods, mappings, layer, target, baseline, steps, limit, sanity_every,
    tolerance, sanity: whether the sanity check was available)."""

    rows: tuple[EvaluationRow, ...]
    scores: tuple[ImageScore, ...]
    problems: tuple[str, ...]
    evaluated: int
    skipped: int
    settings: dict[str, Any] = field(default_factory=dict)

    def row(self, method: str, mapping: str) -> EvaluationRow:
        for r in self.rows:
            if r.method == method and r.mapping == mapping:
                return r
        raise KeyError((method, mapping))

    @property
    def has_sanity(self) -> bool:
        return any(r.sanity is not None for r in self.rows)


def sanity_available() -> bool:
    """True when engine.attribution.sanity (the randomization check) is installed."""
    try:
        return importlib.util.find_spec(SANITY_MODULE) is not None
    except (ImportError, ValueError):
        return False


def _sanity_fn(h: ModelHandle, layer: str | None) -> Any:
    """randomization(img, method, target) -> passed, or None when the module is absent."""
    if not sanity_available():
        return None
    fn = importlib.import_module(SANITY_MODULE).randomization
    params = inspect.signature(fn).parameters.values()
    takes_layer = any(p.name == "layer" or p.kind is p.VAR_KEYWORD for p in params)

    def check(photo: np.ndarray, method: str, target: int) -> bool:
        extra = {"layer": layer} if takes_layer and layer else {}
        return bool(fn(h, photo, method, target=target, order="cascade", **extra).passed)

    return check


def _check_methods(methods: Sequence[str] | str) -> tuple[str, ...]:
    from engine.attribution.methods import check_method

    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m) for m in methods]
    out = tuple(dict.fromkeys(check_method(m) for m in names if m))
    if not out:
        raise EngineError("no CAM method given")
    return out


def _check_mappings(mappings: Sequence[str] | str) -> tuple[str, ...]:
    from engine.attribution.projection import check_mapping

    names = (
        [m.strip() for m in mappings.split(",")] if isinstance(mappings, str) else [str(m) for m in mappings]
    )
    out = tuple(dict.fromkeys(check_mapping(m) for m in names if m))
    if not out:
        raise EngineError("no mapping given")
    return out


def _class_of(h: ModelHandle, label: str) -> int | None:
    from engine.attribution.target import target_index

    if not label:
        return None
    try:
        index = target_index(h, label)
    except EngineError:
        return None
    return index if index >= 0 else None


def _label_target(h: ModelHandle, boxes: Any, folder_label: str) -> int | None:
    """The class of the largest box whose label the model knows, else of the sub-folder, else None."""
    for box in sorted(boxes.boxes, key=lambda b: -b.area):
        index = _class_of(h, box.label)
        if index is not None:
            return index
    return _class_of(h, folder_label)


def _object_mask(h: ModelHandle, boxes: Any, target: int, shape: tuple[int, int]) -> np.ndarray:
    """The union of the boxes of class `target` (of all boxes when none has that class)."""
    from engine.dataset.boxes import region

    mine = [b for b in boxes.boxes if _class_of(h, b.label) == target]
    mask = np.zeros(shape, bool)
    for box in mine or boxes.boxes:
        top, left, bottom, right = region(box)
        mask[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = True
    return mask


def _summary(what: str, names: list[str]) -> str:
    examples = ", ".join(names[:_EXAMPLES]) + (", …" if len(names) > _EXAMPLES else "")
    return f"{len(names)} image(s) {what} (e.g. {examples})"


def _rows(
    scores: list[ImageScore], methods: tuple[str, ...], mappings: tuple[str, ...]
) -> tuple[EvaluationRow, ...]:
    rows = []
    for method in methods:
        for mapping in mappings:
            mine = [s for s in scores if s.method == method and s.mapping == mapping]
            checked = [s.sanity for s in mine if s.sanity is not None]
            mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
            rows.append(
                EvaluationRow(
                    method=method,
                    mapping=mapping,
                    images=len(mine),
                    pointing=mean([float(s.pointing) for s in mine]),
                    energy=mean([s.energy for s in mine]),
                    deletion=mean([s.deletion for s in mine]),
                    insertion=mean([s.insertion for s in mine]),
                    sanity=mean([float(v) for v in checked]) if checked else None,
                    sanity_images=len(checked),
                )
            )
    return tuple(rows)


def iter_evaluate(
    h: ModelHandle,
    source: Any,
    methods: Sequence[str] | str = ("gradcam",),
    mappings: Sequence[str] | str = ("gaussian",),
    layer: str | None = None,
    target: str = "label",
    baseline: str = DEFAULT_BASELINE,
    steps: int = 16,
    limit: int | None = None,
    sanity_every: int = 0,
    *,
    tolerance: float = TOLERANCE,
) -> Iterator[tuple[int, int]]:
    """evaluate() as a generator: yields (done, total) once per image; returns the EvaluationResult.

    source: a folder (a path or its FolderSource) whose images have VOC or COCO boxes. methods:
    CAM method names or aliases (a list or "gradcam,scorecam"); mappings likewise. layer: the
    CAM layer (None: the model's default). target: "label" or "top1" (see the module doc).
    limit: score at most this many images (those with boxes, in folder order). sanity_every: run
    the randomization check on every N-th scored image (0: never).
    """
    from engine.attribution.cam import _check_layer, iter_cam
    from engine.attribution.metrics import (
        deletion_curve,
        energy_pointing_game,
        insertion_curve,
        pointing_game,
    )
    from engine.dataset.boxes import boxes_for_source
    from engine.dataset.sources import FolderSource, open_source

    method_names, mapping_names = _check_methods(methods), _check_mappings(mappings)
    if target not in TARGETS:
        raise EngineError(f"unknown target {target!r}; choose {' or '.join(TARGETS)}")
    baseline = check_baseline(baseline)
    steps, sanity_every = int(steps), int(sanity_every or 0)
    if steps < 1 or sanity_every < 0 or (limit is not None and int(limit) < 1):
        raise EngineError("steps and limit must be at least 1, sanity_every at least 0")
    src = open_source(source)
    if not isinstance(src, FolderSource):
        raise EngineError(f"evaluation needs a folder of images with VOC or COCO boxes, not {src.spec}")
    boxes, problems = boxes_for_source(src.root)
    work = [i for i, p in enumerate(src.paths) if p in boxes and boxes[p].boxes]
    if not work:
        raise EngineError(
            f"no boxes for any image in {src.root} (looked for VOC .xml files beside the images and a "
            "COCO .json in the folder)" + (f"; {problems[0]}" if problems else "")
        )
    no_boxes = [src.name(i) for i, p in enumerate(src.paths) if p not in boxes or not boxes[p].boxes]
    if limit is not None:
        work = work[: int(limit)]
    layer_path = _check_layer(h, layer)
    sanity = _sanity_fn(h, layer_path) if sanity_every else None
    scores: list[ImageScore] = []
    unreadable: list[str] = []
    fallback: list[str] = []
    check_failed: list[str] = []
    total = len(work)
    evaluated = 0
    yield 0, total
    for done, index in enumerate(work, 1):
        name = src.name(index)
        try:
            photo, folder_label = src.load(index)
        except EngineError:
            unreadable.append(name)
            yield done, total
            continue
        entry = boxes[src.paths[index]]
        spec: int | None = None
        if target == "label":
            label_name = src.class_names[folder_label] if 0 <= folder_label < len(src.class_names) else ""
            spec = _label_target(h, entry, label_name)
            if spec is None:
                fallback.append(name)
        check_now = sanity is not None and evaluated % sanity_every == 0
        for method in method_names:
            verdict: bool | None = None
            tried = not check_now
            for mapping in mapping_names:
                res = drain(iter_cam(h, photo, spec, layer_path, method, mapping))
                mask = _object_mask(h, entry, res.target, res.heatmap.shape)
                curve = {"target": res.target, "steps": steps, "baseline": baseline}
                deletion = drain(deletion_curve(h, photo, res.heatmap, **curve))
                insertion = drain(insertion_curve(h, photo, res.heatmap, **curve))
                if not tried:
                    tried = True
                    try:
                        verdict = sanity(photo, method, res.target)
                    except EngineError as exc:
                        check_failed.append(f"{name}: the sanity check of {method} failed: {exc}")
                scores.append(
                    ImageScore(
                        image=name,
                        method=method,
                        mapping=mapping,
                        target=res.target,
                        pointing=pointing_game(res.heatmap, mask, tolerance),
                        energy=energy_pointing_game(res.heatmap, mask),
                        deletion=deletion.auc,
                        insertion=insertion.auc,
                        sanity=verdict,
                    )
                )
        evaluated += 1
        yield done, total
    if no_boxes:
        problems.append(_summary("have no boxes and were not scored", no_boxes))
    if unreadable:
        problems.append(_summary("could not be read and were not scored", unreadable))
    if fallback:
        problems.append(_summary("have no label the model knows; scored for the top-1 class", fallback))
    problems += check_failed[:_EXAMPLES]
    if sanity_every and sanity is None:
        problems.append("the sanity check (engine.attribution.sanity) is not available; no sanity column")
    settings = {
        "model": h.spec,
        "source": src.spec,
        "methods": list(method_names),
        "mappings": list(mapping_names),
        "layer": layer_path,
        "target": target,
        "baseline": baseline,
        "steps": steps,
        "limit": None if limit is None else int(limit),
        "sanity_every": sanity_every,
        "tolerance": float(tolerance),
        "sanity": sanity is not None,
    }
    return EvaluationResult(
        rows=_rows(scores, method_names, mapping_names),
        scores=tuple(scores),
        problems=tuple(problems),
        evaluated=evaluated,
        skipped=len(src.paths) - evaluated,
        settings=settings,
    )


def evaluate(h: ModelHandle, source: Any, *args: Any, **options: Any) -> EvaluationResult:
    """Score CAM methods over a folder with boxes; the arguments are iter_evaluate's."""
    return drain(iter_evaluate(h, source, *args, **options))
