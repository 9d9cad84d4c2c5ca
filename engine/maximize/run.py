"""engine.maximize: activation maximization as a generator of Steps.

The run, step by step (each step is one compiled tf.function call):

    x01 = param.image()                   # (B, H, W, C) display images from the variable
    xt  = transforms(x01, seed, step)     # same random jitter/rotation/scale for the whole batch
    obj = objective(model(to_model_range(xt)))      # (B,) one value per image
    ascend on sum(obj - penalties)        # normalized gradient or Adam, per image
    clip / operators (decay, blur, pixel clipping)

Before each step the loop checks the CancelToken (raising engine.errors.Cancelled) and the
optional Control (pause, step-size changes); after it, NaN or Inf raises
OptimizationDiverged. A Step is yielded at step 0, every `every` steps (None: as often as
~`fps` frames a second allow) and at the end; the last Step's info holds the extras: the
objective of the start and of the result without transforms, the class prediction of the
result for class objectives, the box of changed pixels and the receptive field for neuron
objectives, and the analytic maximizer for first-layer units.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import EngineError, OptimizationDiverged
from engine.maximize import optimizers
from engine.maximize.chunked import ChunkedLoop, chunk_size, slice_plan
from engine.maximize.common import Control, FrameTimer, Step, capped_steps, check_token
from engine.maximize.extras import (
    _extras,
    _first_layer_conv,  # noqa: F401 - re-exported
    analytic_maximizer,
    changed_box,
    crop,
    prediction_report,
    read_before_activation,
    union_box,
)
from engine.maximize.graphs import call_taps, input_affine, linear_conv, output_shapes, tap_model
from engine.maximize.objectives import (
    Expr,
    as_expressions,
    layer_names,
    loss,
    parse_objective,
    plan,
)
from engine.maximize.params import make_param, start_image
from engine.maximize.readout import readout_paths, readout_value
from engine.maximize.regularizers import operate, parse_regularizers, penalty
from engine.maximize.transforms import build as build_transforms
from engine.maximize.transforms import parse_transforms
from engine.models import ModelHandle

__all__ = [
    "analytic_maximizer",
    "changed_box",
    "clear_cache",
    "crop",
    "maximize",
    "prediction_report",
    "read_before_activation",
    "union_box",
]


def _size(h: ModelHandle, size: Any) -> tuple[int, int]:
    if size is None:
        return int(h.input_shape[0]), int(h.input_shape[1])
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    try:
        hh, ww = (int(s) for s in size)
    except (TypeError, ValueError):
        raise EngineError(f"size must be N or (H, W), got {size!r}") from None
    if hh < 8 or ww < 8 or hh * ww > 4096 * 4096:
        raise EngineError(f"size {hh}x{ww} is out of range (8 .. 4096 pixels a side)")
    return hh, ww


def maximize(
    h: ModelHandle,
    objective: str | Expr | Sequence[str | Expr],
    steps: int = 200,
    size: int | tuple[int, int] | None = None,
    init: Any = "noise",
    seed: int = 0,
    transforms: Any = ("jitter", "rotate", "scale"),
    regularizers: Any = (),
    optimizer: str = "normalized",
    lr: float = 1.0,
    param: str = "pixel",
    every: int | None = 10,
    token: Any = None,
    *,
    image: Any = None,
    schedule: str = "constant",
    squash: str | None = None,
    decorrelate: bool | None = None,
    init_scales: Sequence[float] | None = None,
    control: Control | None = None,
    fps: float = 20.0,
    pre_activation: bool | None = None,
    stop_silent: bool = True,
) -> Iterator[Step]:
    """Gradient ascent on the input of model `h` to maximize `objective`; yields Steps.

    objective: a string in the grammar of engine.maximize.objectives ("conv3:5",
    "conv3:5@10,12", "conv3", "class:3", "dense1:7", "conv3:0..15", "0.5*conv3:5 - class:2"),
    an objective object (engine.maximize.objective_terms: channel("conv3", 5) - class_logit(2))
    or a list of them; every image of the batch starts from the same seeded start image
    and sees the same transforms, so a batched run gives the same images as one-at-a-time
    runs (except with a batchwise objective such as diversity: then image b starts from
    seed + b). lr is relative (1.0 = the recommended step, see optimizers). image: the photo for
    init="photo". pre_activation: True reads conv/dense layers before their fused activation
    (as Lucid's "pre_relu" taps), so a unit that is dead on the start image still moves; False
    reads the unit after its ReLU; None (the default) chooses (see read_before_activation):
    before, except on a first-layer conv, where the unit before its activation is linear in the
    input, so its maximizer is a flat image given by the sign of the weights' sum (the analytic
    maximizer shows that), while after its ReLU it grows a texture of the pattern it detects;
    there the ReLU's gradient is redirected (graphs.redirected_relu, after Lucid), so a unit
    that does not fire on the start image still moves.

    Silent units: the gradient of each image's objective is checked on the first SILENT_STEPS
    steps; an image whose gradient is exactly zero on all of them is silent from this start
    (a ReLU that never fires: no step can change it). The last Step's info lists them in
    "silent" (image indices) with a "message"; when every image is silent and stop_silent is
    True the run stops there (info["stopped"] = "silent") instead of spending all its steps.
    info["rose"] says per image whether the objective rose: the result scores higher than the
    start, or the optimized (transformed) objective ended higher than it began.
    Bad settings raise EngineError at the call, before any step runs.
    """
    import tensorflow as tf

    total = capped_steps(steps)
    opt_name, sched = optimizers.check(optimizer, schedule, lr)
    exprs = as_expressions(objective)
    texts = [str(e) for e in exprs]
    hh, ww = _size(h, size)
    channels = int(h.input_shape[2])
    uses_class = any(e.uses_class for e in exprs)
    paths = tuple(dict.fromkeys(h.resolve(n) for n in layer_names(exprs)))
    redirect = pre_activation is None  # auto: a first-layer conv read after its ReLU, gradient redirected
    pre_activation = read_before_activation(h, paths, pre_activation)
    tap_mode: bool | str = True if pre_activation else ("redirected" if redirect else False)
    taps = tap_model(h, paths, uses_class, (hh, ww), pre=tap_mode)
    shapes = output_shapes(taps, paths)
    obj = parse_objective(exprs, h, shapes)
    weights = plan(obj, shapes, int(getattr(h, "num_outputs", 0) or 0), bool(getattr(h, "binary", False)))
    # a batch that does not fit the memory there is runs in chunks of `k` images (chunked.py)
    k = chunk_size(taps, obj.batch, weights, obj.coupled)
    readout = readout_paths(h, paths, tap_mode, weights, shapes, k)
    if readout:
        taps = tap_model(h, paths, uses_class, (hh, ww), pre=tap_mode, inputs_of=frozenset(readout))
    start = start_image(init, (hh, ww, channels), seed, image=image, scales=init_scales)
    if obj.coupled:  # the images of a batch interact: identical starts would stay identical
        seeds = range(seed, seed + obj.batch)
        start = np.stack([start_image(init, start.shape, s, image=image, scales=init_scales) for s in seeds])
    tspec = parse_transforms(transforms, (hh, ww))
    regs = parse_regularizers(regularizers)
    spec = _LoopSpec(
        paths,
        uses_class,
        tap_mode,
        k,
        (hh, ww, channels),
        str(param).lower(),
        squash,
        decorrelate,
        opt_name,
        tspec,
        readout,
    )
    if k < obj.batch:
        loop: Any = ChunkedLoop(
            _loop_for(h, taps, spec, regs, slice_plan(weights, 0, k, k)), obj.batch, weights, start, seed
        )
    else:
        loop = _loop_for(h, taps, spec, regs, weights)
        loop.reset(start, weights, seed)
    prm, train_step, evaluate, render = loop.prm, loop.train_step, loop.evaluate, loop.render

    def generate() -> Iterator[Step]:
        timer = FrameTimer(every, fps)
        value0, prob0, x0 = (np.asarray(a) for a in evaluate())
        start_images = np.ascontiguousarray(x0, np.float32)
        info0: dict[str, Any] = {"objectives": obj.texts}
        if uses_class:
            info0["probability"] = tuple(float(p) for p in prob0)
        yield Step(0, total, float(value0.mean()), start_images, tuple(map(float, value0)), info0)
        curve: list[float] = []
        value = value0
        first_t: np.ndarray | None = None
        silent = np.ones(obj.batch, bool)
        probes = min(SILENT_STEPS, total)
        stopped = False
        for i in range(total):
            check_token(token)
            if control is not None:
                control.wait(token)
            if i < probes and not loop.probe_in_step:
                silent &= np.asarray(loop.grad_size(tf.constant(i, tf.int32))) == 0.0
            scale = control.lr_scale if control is not None else 1.0
            lr_t = float(lr) * scale * optimizers.schedule_factor(sched, i, total)
            value_t, ok, prob, gmax = train_step(tf.constant(i, tf.int32), tf.constant(lr_t, tf.float32))
            value = value_t.numpy()
            if i < probes and loop.probe_in_step:  # the step's own gradient, taken before its update
                silent &= gmax.numpy() == 0.0
            if not bool(ok):
                raise OptimizationDiverged(
                    f"optimization diverged at step {i + 1}: the objective or its gradient became NaN/Inf; "
                    "lower the step size or check the model for invalid weights"
                )
            if first_t is None:
                first_t = value.copy()
            curve.append(float(value.mean()))
            step = i + 1
            if step == probes and stop_silent and silent.all() and step < total:
                stopped = True
                break
            if step < total and timer.due(step, total):
                images = np.ascontiguousarray(render().numpy(), np.float32)
                info = {"probability": tuple(float(p) for p in prob.numpy())} if uses_class else {}
                yield Step(step, total, curve[-1], images, tuple(map(float, value)), info)
        if probes == 0:
            silent[:] = False
        final_value, final_prob, final_x = (np.asarray(a) for a in evaluate())
        images = np.ascontiguousarray(final_x, np.float32)
        info = _extras(h, obj, start_images, images, uses_class)
        rose = final_value > value0
        if first_t is not None:
            rose |= value > first_t
        info.update(
            objectives=obj.texts,
            curve=tuple(curve),
            start_objective=tuple(map(float, value0)),
            objective=tuple(map(float, final_value)),
            rose=tuple(bool(r) for r in rose),
            silent=tuple(int(b) for b in np.flatnonzero(silent)),
            settings=_settings(
                texts, total, (hh, ww), init, seed, tspec, regs, opt_name, lr, prm, sched, pre_activation
            ),
        )
        if silent.any():
            info["message"] = silent_message(obj.texts, silent, init, pre_activation, probes, stopped)
        if stopped:
            info["stopped"] = "silent"
        if uses_class:
            info["probability"] = tuple(float(p) for p in final_prob)
        done = len(curve)
        yield Step(
            done, total, curve[-1] if curve else float(value0.mean()), images, tuple(map(float, value)), info
        )

    gen = generate()
    loop.owner = weakref.ref(gen)
    return gen


SILENT_STEPS = 3  # steps whose gradient is checked for silent images


def silent_message(
    texts: Sequence[str], silent: np.ndarray, init: Any, pre_activation: bool, probes: int, stopped: bool
) -> str:
    """The user-facing line about silent images: which, why, and what to try."""
    start = "the photo" if not isinstance(init, str) or init == "photo" else f"the {init} start"
    checked = "the first step" if probes == 1 else f"the first {probes} steps"
    remedies = []
    if not pre_activation:
        remedies.append("read before the activation")
    if start != "the photo":
        remedies.append("start from a photo")
    remedies.append("pick another unit")
    fix = ". Try: " + ", ".join(remedies[:-1]) + (" or " if len(remedies) > 1 else "") + remedies[-1] + "."
    names = [t for t, s in zip(texts, silent) if s]
    if len(texts) == 1:
        why = "its activation never fires" if not pre_activation else "nothing that feeds it fires"
        end = ", so the run stopped early" if stopped else ""
        return f"unit is silent from this start: {names[0]} gets zero gradient at {start} ({checked}): {why}{end}{fix}"
    listed = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    rest = "the run stopped early" if stopped else "the others were optimized"
    return (
        f"{len(names)} of {len(texts)} units are silent from {start} (zero gradient on {checked}): "
        f"{listed}; {rest}{fix}"
    )


# ----- compiled loops, kept between runs of the same structure ----------------------------------------
@dataclass(frozen=True)
class _LoopSpec:
    """The structure of a run that its compiled loop depends on (with the regularizers and the
    objective's weight shapes); runs with equal specs share a loop."""

    paths: tuple[str, ...]
    uses_class: bool
    pre: bool | str  # how the taps read the layers (tap_model's pre=); the taps themselves follow it
    batch: int
    shape: tuple[int, int, int]
    param: str  # lower case
    squash: str | None
    decorrelate: bool | None
    opt_name: str
    tspec: Any
    readout: tuple[str, ...] = ()  # paths read out of their conv's input (readout_paths)


_LOOPS: dict[tuple, _Loop] = {}
_MAX_LOOPS = 3


class _Loop:
    """The variables and compiled tf.functions of a run, reused by later runs with the same structure.

    A new run re-assigns the start image, the objective's weights, the seed and the optimizer
    state, so clicking through the channels of a layer traces the step once. A loop still
    driven by an unfinished generator is never shared (a new one is built instead).
    """

    def __init__(self, h: ModelHandle, taps: Any, spec: _LoopSpec, regs: Any, weights: Any) -> None:
        import tensorflow as tf

        from engine.maximize.objectives import LossPlan

        paths, uses_class, batch, shape = spec.paths, spec.uses_class, spec.batch, spec.shape
        self.h_ref = weakref.ref(h)
        self.owner: Any = None
        self.prm = make_param(
            spec.param, (batch, *shape), np.full(shape, 0.5, np.float32), spec.squash, spec.decorrelate
        )
        self.opt = optimizers.Optimizer(
            spec.opt_name, self.prm.var, optimizers.BASE_STEPS[(spec.opt_name, self.prm.name)]
        )

        def var(a: Any) -> Any:
            return tf.Variable(a, trainable=False)

        self.weights = LossPlan(
            channel={k: var(v) for k, v in weights.channel.items()},
            unit={k: var(v) for k, v in weights.unit.items()},
            layer={k: var(v) for k, v in weights.layer.items()},
            neuron={k: (var(i), var(w)) for k, (i, w) in weights.neuron.items()},
            logits=None if weights.logits is None else var(weights.logits),
            targets=var(np.maximum(weights.targets, 0)),
            custom={k: var(v) for k, v in weights.custom.items()},
        )
        self.seed = tf.Variable(0, dtype=tf.int32, trainable=False)
        transform = build_transforms(spec.tspec)
        mat, bias = (tf.constant(a) for a in input_affine(h.scaling, shape[-1]))
        prm, opt, plan_vars, targets = self.prm, self.opt, self.weights, self.weights.targets
        binary, activation = bool(getattr(h, "binary", False)), getattr(h, "output_activation", "")

        convs = {p: linear_conv(h, p, spec.pre) for p in spec.readout}
        rest = dataclasses.replace(
            plan_vars, channel={k: v for k, v in plan_vars.channel.items() if k not in convs}
        )
        rest_empty = not (rest.channel or rest.unit or rest.layer or rest.neuron or rest.custom) and (
            rest.logits is None or not uses_class
        )

        def forward(x01: Any) -> tuple[Any, Any]:
            xm = tf.tensordot(x01, mat, axes=[[3], [0]]) + bias
            outs, logits = call_taps(taps, xm, paths, uses_class)
            value = None if rest_empty else loss(rest, outs, logits, batch)
            for p, conv in convs.items():
                part = readout_value(conv, outs[p], plan_vars.channel[p])
                value = part if value is None else value + part
            return value, logits

        # the silent-unit probe reads the train step's own gradient unless a penalty adds to it
        self.probe_in_step = penalty(regs, tf.zeros((1, 2, 2, shape[-1]))) is None
        probe_in_step = self.probe_in_step

        def target_probs(logits: Any) -> Any:
            if logits is None:
                return tf.zeros([batch])
            if binary:
                p1 = tf.sigmoid(logits[:, 0])
                return tf.where(tf.equal(targets, 1), p1, 1.0 - p1)
            probs = tf.sigmoid(logits) if activation == "sigmoid" else tf.nn.softmax(logits, axis=-1)
            return tf.gather(probs, targets, batch_dims=1)

        @tf.function(autograph=False)
        def train_step(t: Any, lr_t: Any) -> tuple[Any, Any, Any, Any]:
            with tf.GradientTape() as tape:
                x01 = prm.image()
                value, logits = forward(transform(x01, tf.stack([self.seed, t])))
                pen = penalty(regs, x01)
                target = tf.reduce_sum(value if pen is None else value - pen)
            if regs.needs_image_grad:
                grad, grad_x = tape.gradient(target, [prm.var, x01])
            else:
                grad, grad_x = tape.gradient(target, prm.var), None
            ok = tf.reduce_all(tf.math.is_finite(value)) & tf.reduce_all(tf.math.is_finite(grad))

            def update() -> Any:
                opt.apply(grad, lr_t)
                prm.project()
                if regs.has_operators:
                    prm.assign_image(operate(regs, prm.image(), t + 1, grad_x))
                return tf.constant(True)

            gmax = tf.zeros([batch])
            if probe_in_step:
                gmax = tf.reduce_max(tf.abs(tf.reshape(grad, [batch, -1])), axis=1)
            tf.cond(ok, update, lambda: tf.constant(False))
            return value, ok, target_probs(logits), gmax

        @tf.function(autograph=False)
        def grad_size(t: Any) -> Any:
            """Per image, the largest |d objective / d parameter| at step t's transform (penalties excluded)."""
            with tf.GradientTape() as tape:
                value, _ = forward(transform(prm.image(), tf.stack([self.seed, t])))
                target = tf.reduce_sum(value)
            grad = tape.gradient(target, prm.var)
            if grad is None:
                return tf.zeros([batch])
            return tf.reduce_max(tf.abs(tf.reshape(grad, [batch, -1])), axis=1)

        @tf.function(autograph=False)
        def evaluate() -> tuple[Any, Any, Any]:
            x01 = prm.image()
            value, logits = forward(x01)
            return value, target_probs(logits), tf.clip_by_value(x01, 0.0, 1.0)

        @tf.function(autograph=False)
        def render() -> Any:
            return tf.clip_by_value(prm.image(), 0.0, 1.0)

        self.train_step, self.evaluate, self.render = train_step, evaluate, render
        self.grad_size = grad_size

    @property
    def busy(self) -> bool:
        gen = self.owner() if self.owner is not None else None
        return gen is not None and gen.gi_frame is not None

    def reset(self, start: np.ndarray, weights: Any, seed: int) -> None:
        """Start a new run: the start image(s), the objective's weights, the seed, a fresh optimizer."""
        import tensorflow as tf

        start = start if start.ndim == 4 else start[None]  # one start per image, or one for all
        self.prm.assign_image(tf.constant(np.broadcast_to(start, self.prm.shape), tf.float32))
        self.prm.project()
        self.assign_weights(weights)
        self.seed.assign(int(seed) % (2**31 - 1))
        self.opt.reset()

    def assign_weights(self, weights: Any) -> None:
        """The objective's weights (a LossPlan of this loop's structure) into the loop's variables."""
        w = self.weights
        for k, v in weights.channel.items():
            w.channel[k].assign(v)
        for k, v in weights.unit.items():
            w.unit[k].assign(v)
        for k, v in weights.layer.items():
            w.layer[k].assign(v)
        for k, (idx, val) in weights.neuron.items():
            w.neuron[k][0].assign(idx)
            w.neuron[k][1].assign(val)
        for k, v in weights.custom.items():
            w.custom[k].assign(v)
        if w.logits is not None:
            w.logits.assign(weights.logits)
        w.targets.assign(np.maximum(weights.targets, 0))


def _structure(weights: Any) -> tuple:
    return (
        tuple((k, v.shape) for k, v in weights.channel.items()),
        tuple((k, v.shape) for k, v in weights.unit.items()),
        tuple((k, v.shape) for k, v in weights.layer.items()),
        tuple((k, i.shape) for k, (i, _) in weights.neuron.items()),
        None if weights.logits is None else weights.logits.shape,
        tuple(weights.custom),
    )


def _loop_for(h: ModelHandle, taps: Any, spec: _LoopSpec, regs: Any, weights: Any) -> _Loop:
    """A compiled loop for this structure: a cached idle one, or a new one (cached)."""
    key = (id(h), h.scaling, spec, tuple(regs.items.items()), _structure(weights))
    loop = _LOOPS.get(key)
    if loop is not None and loop.h_ref() is h and not loop.busy:
        _LOOPS[key] = _LOOPS.pop(key)  # most recently used last
        return loop
    loop = _Loop(h, taps, spec, regs, weights)
    _LOOPS.pop(key, None)
    _LOOPS[key] = loop
    while len(_LOOPS) > _MAX_LOOPS:
        _LOOPS.pop(next(iter(_LOOPS)))
    return loop


def clear_cache() -> None:
    """Forget the compiled loops (their variables and traced steps)."""
    _LOOPS.clear()


def _settings(
    texts: list[str],
    total: int,
    size: tuple[int, int],
    init: Any,
    seed: int,
    tspec: Any,
    regs: Any,
    opt_name: str,
    lr: float,
    prm: Any,
    sched: str,
    pre_activation: bool = True,
) -> dict[str, Any]:
    return {
        "objective": texts[0] if len(texts) == 1 else texts,
        "steps": total,
        "size": list(size),
        "init": init if isinstance(init, str) else "photo",
        "seed": int(seed),
        "transforms": tspec.settings(),
        "regularizers": regs.settings(),
        "optimizer": opt_name,
        "lr": float(lr),
        "schedule": sched,
        "param": prm.name,
        "squash": getattr(prm, "squash", None),
        "pre_activation": bool(pre_activation),
    }
