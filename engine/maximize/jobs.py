"""Job kinds "maximize", "dream" and "unit_activity" for engine.jobs (the GUI's engine thread and scripts).

Their params and results are the frozen dataclasses of engine.maximize.contract:

"maximize" takes MaximizeParams: objective (required; an objective object of
engine.maximize.objective_terms, a string of the grammar, or a list of them) and the keyword
arguments of engine.maximize.run.maximize, passed through by the dataclass's fields; "model" (a
spec) picks a model other than the current one. The job's CancelToken is the run's live control
(pause/resume and lr_scale, changed by EngineClient.pause / set_lr_scale). "chunk" (an int) runs
a big batch (e.g. every channel of a layer) as consecutive batches of that many images; its
Frames then carry info["offset"] and info["count"].

"dream" takes DreamParams: image and layers (required), and the keyword arguments of
engine.maximize.deepdream.dream.

Both stream Frame(step, images (B, H, W, C) float32 in [0, 1], info=StepInfo (loss, losses,
total, offset/count of chunked runs, probability, octave)) and Progress(step, total, loss) events, and finish with a MaximizeOutput or a
DreamOutput: the final images, the loss curve, a bounded tuple of (step, uint8 images) frames
for GIF export, the settings, and the run's extras (predictions/report for class runs,
changed_boxes/crops/receptive_fields for neurons, analytic for first-layer units; rose, silent
and, when some image was silent from its start, message (and stopped="silent" when the run
ended early because every image was)).

"unit_activity" takes UnitActivityParams (layer, images="samples" | "natural" | a source spec,
n, batch), measures each unit's post-activation mean and max over images
(engine.maximize.units) and returns a UnitActivity. With start (a start kind such as "noise",
with seed and pre_activation as a maximization would get them) and a run that would read the
layer after its activation, it also measures each unit on that start image, so the unit
picked first is not silent there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from engine.common import unit_to_uint8
from engine.errors import EngineError
from engine.jobs import CancelToken, Frame, Progress, handler
from engine.maximize.contract import (
    DreamOutput,
    DreamParams,
    MaximizeOutput,
    MaximizeParams,
    StepInfo,
    UnitActivityParams,
)

FRAME_BUDGET = 48 * 1024 * 1024  # bytes of uint8 frames kept for GIF export


class FrameRecorder:
    """Keeps uint8 copies of frames within a byte budget by dropping every other one when full."""

    def __init__(self, budget: int = FRAME_BUDGET) -> None:
        self.budget = budget
        self.frames: list[tuple[int, np.ndarray]] = []
        self.stride = 1
        self._count = 0

    def add(self, step: int, images: np.ndarray, force: bool = False) -> None:
        self._count += 1
        if not force and (self._count - 1) % self.stride:
            return
        frame = unit_to_uint8(images)
        if self.frames and self.frames[-1][0] == step:
            self.frames[-1] = (step, frame)
        else:
            self.frames.append((step, frame))
        while len(self.frames) > 2 and sum(f.nbytes for _, f in self.frames) > self.budget:
            self.frames = self.frames[::2] + ([self.frames[-1]] if len(self.frames) % 2 == 0 else [])
            self.stride *= 2


def _model(p: MaximizeParams | DreamParams | UnitActivityParams) -> Any:
    from engine.job_handlers import current_model

    return current_model({"model": p.model, "trust": p.trust, "scaling": p.scaling})


def _stream(steps: Iterator[Any], token: CancelToken) -> Iterator[Any]:
    """Turn Steps into Frame + Progress events; return (last step, recorder)."""
    recorder = FrameRecorder()
    last = None
    for step in steps:
        last = step
        recorder.add(step.step, step.images, force=step.step in (0, step.total))
        yield Frame(0, step.step, step.images, StepInfo.of(step))
        yield Progress(0, step.step, step.total, None if step.loss != step.loss else float(step.loss))
        token.raise_if_cancelled()
    return last, recorder


def _result(output: type[Any], last: Any, recorder: FrameRecorder, spec: str, **settings: Any) -> Any:
    """The typed result (MaximizeOutput or DreamOutput) from the last Step's info."""
    if last is None:
        raise EngineError("the run produced no steps")
    info = dict(last.info)
    return output.of(
        images=last.images,
        losses=info.pop("curve", ()),
        frames=recorder.frames,
        settings={**dict(info.pop("settings", {})), "model": spec, **settings},
        loss=last.loss,
        **info,
    )


@handler("maximize")
def maximize_job(params: Mapping[str, Any] | MaximizeParams, token: CancelToken) -> Iterator[Any]:
    """Run engine.maximize with the request's MaximizeParams, streaming frames; returns a MaximizeOutput."""
    from engine.maximize.run import maximize

    p = MaximizeParams.parse(params)
    if p.objective is None or (isinstance(p.objective, str | list | tuple) and not p.objective):
        raise EngineError("no objective: pick a layer and a channel, e.g. conv3:5")
    h = _model(p)
    kwargs = p.run_kwargs()
    image = kwargs["image"]
    if isinstance(image, str | bytes) or hasattr(image, "__fspath__"):
        from engine.images import load_image

        kwargs["image"] = load_image(image)
    objective = list(p.objective) if isinstance(p.objective, list | tuple) else p.objective
    chunk = int(p.chunk or 0)
    if chunk > 0:
        from engine.maximize.objectives import parse_objective

        texts = list(parse_objective(objective, h).texts)
        if len(texts) > chunk:
            return (yield from _chunked(h, texts, chunk, kwargs, token))
    steps = maximize(h, objective, token=token, control=token, **kwargs)
    last, recorder = yield from _stream(steps, token)
    return _result(MaximizeOutput, last, recorder, h.spec)


_CONCAT = (
    "objectives",
    "start_objective",
    "objective",
    "probability",
    "predictions",
    "report",
    "changed_boxes",
    "receptive_fields",
    "rose",
    "crops",
)


def _chunked(
    h: Any, texts: list[str], chunk: int, kwargs: dict[str, Any], token: CancelToken
) -> Iterator[Any]:
    """A big batch ("all channels of this layer") as consecutive batches of `chunk` images.

    Frames carry info["offset"] (index of their first image) and info["count"] (images in all),
    so a view fills its grid tile by tile; the result holds every image.
    """
    from engine.maximize.run import maximize

    n = len(texts)
    parts = [texts[i : i + chunk] for i in range(0, n, chunk)]
    finals: list[np.ndarray] = []
    merged: dict[str, Any] = {}
    curves: list[list[float]] = []
    recorder = FrameRecorder()
    full: np.ndarray | None = None
    settings: dict[str, Any] = {}
    silent: list[int] = []
    total = 0
    for k, part in enumerate(parts):
        offset = k * chunk
        last = None
        for step in maximize(h, part, token=token, control=token, **kwargs):
            last = step
            total = step.total * len(parts)
            yield Frame(0, k * step.total + step.step, step.images, StepInfo.of(step, offset, n))
            yield Progress(0, k * step.total + step.step, total, float(step.loss))
            token.raise_if_cancelled()
        assert last is not None
        finals.append(last.images)
        if full is None:
            full = np.full((n, *last.images.shape[1:]), 0.5, np.float32)
        full[offset : offset + len(part)] = last.images
        recorder.add(total * (k + 1) // len(parts), full, force=True)
        info = dict(last.info)
        settings = dict(info.pop("settings", {}))
        curves.append(list(info.pop("curve", ())))
        for key in _CONCAT:
            if key in info:
                merged.setdefault(key, []).extend(info[key])
        silent.extend(offset + int(b) for b in info.get("silent", ()))
        if "analytic" in info:
            merged.setdefault("analytic", []).append(info["analytic"])
    if "analytic" in merged:
        merged["analytic"] = np.concatenate(merged["analytic"])
    settings.update(model=h.spec, objective=texts, chunk=chunk)
    if silent:
        from engine.maximize.run import SILENT_STEPS, silent_message

        mask = np.zeros(n, bool)
        mask[silent] = True
        merged["message"] = silent_message(
            texts,
            mask,
            kwargs["init"],
            bool(settings.get("pre_activation", True)),  # as resolved by maximize (auto may read after)
            min(SILENT_STEPS, int(settings.get("steps", SILENT_STEPS))),
            len(silent) == n,
        )
    return MaximizeOutput.of(
        images=np.concatenate(finals),
        losses=[float(np.mean(v)) for v in zip(*curves)],
        curves=tuple(tuple(c) for c in curves),
        frames=recorder.frames,
        settings=settings,
        silent=silent,
        **merged,
    )


@handler("dream")
def dream_job(params: Mapping[str, Any] | DreamParams, token: CancelToken) -> Iterator[Any]:
    """Run engine.dream on the DreamParams' image with its layers, streaming frames; returns a DreamOutput."""
    from engine.images import load_image
    from engine.maximize.deepdream import dream

    p = DreamParams.parse(params)
    if p.image is None:
        raise EngineError("no image selected to dream on")
    if not p.layers:
        raise EngineError("no layers to dream with: pick one or more layers")
    h = _model(p)
    layers = list(p.layers) if isinstance(p.layers, tuple) else p.layers
    steps = dream(h, load_image(p.image), layers, token=token, control=token, **p.run_kwargs())
    last, recorder = yield from _stream(steps, token)
    return _result(
        DreamOutput, last, recorder, h.spec, image=p.image if isinstance(p.image, str) else "array"
    )


@handler("unit_activity")
def unit_activity_job(params: Mapping[str, Any] | UnitActivityParams, token: CancelToken) -> Iterator[Any]:
    """Per-unit mean/max activation of the params' layer (engine.maximize.units.unit_activity).

    images: "samples" (the sample images that fit the model), "natural" (n images of a built-in
    model's own data; the fitting samples for other models) or a dataset source spec. Streams
    Progress(images done, total) and stops between batches when cancelled; returns a
    UnitActivity whose source says what was scanned.
    """
    from engine.maximize.run import read_before_activation
    from engine.maximize.units import iter_unit_activity, natural_source, sample_batch

    p = UnitActivityParams.parse(params)
    if not p.layer:
        raise EngineError("no layer: select one in the tree")
    h = _model(p)
    which = str(p.images or "samples")
    if which == "natural":
        spec = natural_source(h, int(p.n))
        which = spec if spec is not None else "samples"
    images: Any
    if which == "samples":
        images, specs = sample_batch(h)
        source, total = "the shipped samples that fit the model", len(specs)
    else:
        from engine.dataset.sources import open_source

        images, source, total = which, which, len(open_source(which))
    gen = iter_unit_activity(h, str(p.layer), images, int(p.batch), source)
    while True:
        token.raise_if_cancelled()
        try:
            done = next(gen)
        except StopIteration as stop:
            activity = stop.value
            break
        yield Progress(0, done, total, None, f"scanned {done} of {total} images")
    if p.start and not read_before_activation(h, [activity.layer], p.pre_activation):
        from dataclasses import replace

        from engine.maximize.params import start_image
        from engine.maximize.units import start_response

        image = start_image(str(p.start), tuple(int(s) for s in h.input_shape), int(p.seed))
        activity = replace(activity, start=start_response(h, activity.layer, image))
    return activity
