"""Job kinds "maximize", "dream" and "unit_activity" for engine.jobs (the GUI's engine thread and scripts).

Params of "maximize": objective (required), and the keyword arguments of
engine.maximize.run.maximize: steps, size, init, seed, transforms, regularizers, optimizer,
lr, param, every, image, schedule, squash, decorrelate, init_scales, fps, pre_activation
(default True: units before their fused activation), stop_silent; "model" (a spec)
picks a model other than the current one; "control" may hold an engine.maximize.Control
for pause/resume and live step-size changes.

"chunk" (an int) runs a big batch (e.g. "conv3:*") as consecutive batches of that many images;
its Frames then carry info["offset"] and info["count"].

Params of "dream": image and layers (required), octaves, octave_scale, steps, lr, every,
seed, size, fps, model, control.

Both stream Frame(step, images (B, H, W, C) float32 in [0, 1], info={"loss", "losses",
"total", ...}) and Progress(step, total, loss) events, and finish with a dict: "images" (the
final images), "losses" (the loss curve), "frames" (a bounded list of (step, uint8 images)
for GIF export), "settings", and the run's extras (predictions/report for class runs,
changed_boxes/receptive_fields for neurons, analytic for first-layer units; "rose", "silent"
and, when some image was silent from its start, "message" (and "stopped": "silent" when the
run ended early because every image was).

"unit_activity" (layer, images="samples" | "natural" | a source spec, n, batch) measures each
unit's post-activation mean and max over images (engine.maximize.units) and returns a UnitActivity.
With "start" (a start kind such as "noise", with "seed" and "pre_activation" as a maximization
would get them) and a run that would read the layer after its activation, it also measures each
unit on that start image, so the unit picked first is not silent there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from engine.common import unit_to_uint8
from engine.errors import EngineError
from engine.jobs import CancelToken, Frame, Progress, handler

FRAME_BUDGET = 48 * 1024 * 1024  # bytes of uint8 frames kept for GIF export

_MAXIMIZE_KEYS = (
    "steps",
    "size",
    "init",
    "seed",
    "transforms",
    "regularizers",
    "optimizer",
    "lr",
    "param",
    "every",
    "image",
    "schedule",
    "squash",
    "decorrelate",
    "init_scales",
    "fps",
    "control",
    "pre_activation",
    "stop_silent",
)
_DREAM_KEYS = ("octaves", "octave_scale", "steps", "lr", "every", "seed", "size", "fps", "control")


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


def _model(params: Mapping[str, Any]) -> Any:
    from engine.job_handlers import current_model

    return current_model(params)


def _stream(steps: Iterator[Any], token: CancelToken) -> Iterator[Any]:
    """Turn Steps into Frame + Progress events; return (last step, recorder)."""
    recorder = FrameRecorder()
    last = None
    for step in steps:
        last = step
        recorder.add(step.step, step.images, force=step.step in (0, step.total))
        info = {"loss": step.loss, "losses": step.losses, "total": step.total, **dict(step.info)}
        yield Frame(0, step.step, step.images, info)
        yield Progress(0, step.step, step.total, None if step.loss != step.loss else float(step.loss))
        token.raise_if_cancelled()
    return last, recorder


def _result(last: Any, recorder: FrameRecorder, spec: str) -> dict[str, Any]:
    if last is None:
        raise EngineError("the run produced no steps")
    info = dict(last.info)
    settings = dict(info.pop("settings", {}))
    settings["model"] = spec
    return {
        "images": last.images,
        "losses": list(info.pop("curve", ())),
        "frames": recorder.frames,
        "settings": settings,
        "loss": last.loss,
        **info,
    }


@handler("maximize")
def maximize_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Any]:
    """Run engine.maximize with the request's params, streaming frames; returns the result dict."""
    from engine.maximize.run import maximize

    if not params.get("objective"):
        raise EngineError("no objective: pick a layer and a channel, e.g. conv3:5")
    h = _model(params)
    kwargs = {k: params[k] for k in _MAXIMIZE_KEYS if params.get(k) is not None}
    if isinstance(kwargs.get("image"), str | bytes) or hasattr(kwargs.get("image"), "__fspath__"):
        from engine.images import load_image

        kwargs["image"] = load_image(kwargs["image"])
    objective = params["objective"]
    objective = list(objective) if isinstance(objective, list | tuple) else objective
    chunk = int(params.get("chunk") or 0)
    if chunk > 0:
        from engine.maximize.objectives import parse_objective

        texts = list(parse_objective(objective, h).texts)
        if len(texts) > chunk:
            return (yield from _chunked(h, texts, chunk, kwargs, token))
    steps = maximize(h, objective, token=token, **kwargs)
    last, recorder = yield from _stream(steps, token)
    return _result(last, recorder, h.spec)


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
        for step in maximize(h, part, token=token, **kwargs):
            last = step
            total = step.total * len(parts)
            info = {
                "loss": step.loss,
                "losses": step.losses,
                "total": step.total,
                "offset": offset,
                "count": n,
                **dict(step.info),
            }
            yield Frame(0, k * step.total + step.step, step.images, info)
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
            kwargs.get("init", "noise"),
            bool(settings.get("pre_activation", True)),  # as resolved by maximize (auto may read after)
            min(SILENT_STEPS, int(settings.get("steps", SILENT_STEPS))),
            len(silent) == n,
        )
    merged["silent"] = silent
    return {
        "images": np.concatenate(finals),
        "losses": [float(np.mean(v)) for v in zip(*curves)],
        "curves": curves,
        "frames": recorder.frames,
        "settings": settings,
        **merged,
    }


@handler("dream")
def dream_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Any]:
    """Run engine.dream on params['image'] with params['layers'], streaming frames; returns the result dict."""
    from engine.images import load_image
    from engine.maximize.deepdream import dream

    if params.get("image") is None:
        raise EngineError("no image selected to dream on")
    if not params.get("layers"):
        raise EngineError("no layers to dream with: pick one or more layers")
    h = _model(params)
    kwargs = {k: params[k] for k in _DREAM_KEYS if params.get(k) is not None}
    layers = params["layers"]
    if isinstance(layers, tuple):
        layers = list(layers)
    steps = dream(h, load_image(params["image"]), layers, token=token, **kwargs)
    last, recorder = yield from _stream(steps, token)
    result = _result(last, recorder, h.spec)
    result["settings"]["image"] = params["image"] if isinstance(params["image"], str) else "array"
    return result


@handler("unit_activity")
def unit_activity_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Any]:
    """Per-unit mean/max activation of params['layer'] (engine.maximize.units.unit_activity).

    params["images"]: "samples" (default: the sample images that fit the model), "natural"
    (params["n"] images, default 1000, of a built-in model's own data; the fitting samples for
    other models) or a dataset source spec. Streams Progress(images done, total) and stops
    between batches when cancelled; returns a UnitActivity whose source says what was scanned.
    """
    from engine.maximize.run import read_before_activation
    from engine.maximize.units import iter_unit_activity, natural_source, sample_batch

    if not params.get("layer"):
        raise EngineError("no layer: select one in the tree")
    h = _model(params)
    which = str(params.get("images") or "samples")
    if which == "natural":
        spec = natural_source(h, int(params.get("n") or 1000))
        which = spec if spec is not None else "samples"
    images: Any
    if which == "samples":
        images, specs = sample_batch(h)
        source, total = "the shipped samples that fit the model", len(specs)
    else:
        from engine.dataset.sources import open_source

        images, source, total = which, which, len(open_source(which))
    gen = iter_unit_activity(h, str(params["layer"]), images, int(params.get("batch") or 64), source)
    while True:
        token.raise_if_cancelled()
        try:
            done = next(gen)
        except StopIteration as stop:
            activity = stop.value
            break
        yield Progress(0, done, total, None, f"scanned {done} of {total} images")
    start = params.get("start")
    if start and not read_before_activation(h, [activity.layer], params.get("pre_activation")):
        from dataclasses import replace

        from engine.maximize.params import start_image
        from engine.maximize.units import start_response

        image = start_image(str(start), tuple(int(s) for s in h.input_shape), int(params.get("seed") or 0))
        activity = replace(activity, start=start_response(h, activity.layer, image))
    return activity
