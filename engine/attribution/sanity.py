"""The model-randomization sanity check (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

A map that explains a model must change when the model's learned weights are destroyed. On a
copy of the model (the user's model and its handle are never touched), the layers that have
trainable weights are re-initialized from the top (the output) down, either cumulatively
("cascade": step k has the k top layers random) or one at a time ("independent": step k has
only the k-th layer from the top random, the others trained). After each step the map is
recomputed and compared with the original one by the measures of engine.attribution.similarity:
the Spearman rank correlation of the absolute maps, SSIM and the Pearson correlation of their
HOG features.

Passing: a map passes when its rank correlation with the original falls below PASS_BELOW (0.5)
with every layer random (cascade) or, in the independent order, with at least one layer random.
A map that stays above it, like an edge detector of the input, does not depend on what the
model learned.

Re-initialization uses each weight's own initializer (``kernel_initializer``, ``bias_initializer``,
``gamma_initializer``, ...), given a seed derived from `seed` and the layer's place, so a run is
reproducible; a weight with no initializer found gets a seeded He-normal draw (2-D and up) or
zeros (a bias). The target class is fixed on the original model (its top-1 when None) and every
step explains that same class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engine.attribution.cam import drain
from engine.attribution.similarity import hog_similarity, spearman, ssim
from engine.errors import EngineError
from engine.images import ImageSource, load_image, to_model_input
from engine.models import ModelHandle

PASS_BELOW = 0.5  # the rank correlation a map must fall under to pass
EDGE_LIKE = 0.9  # above this the map "barely changes"
ORDERS: tuple[str, ...] = ("cascade", "independent")

MapFn = Callable[[ModelHandle, np.ndarray, int], np.ndarray]

__all__ = [
    "EDGE_LIKE",
    "ORDERS",
    "PASS_BELOW",
    "SanityResult",
    "iter_randomization",
    "randomization",
    "verdict",
    "weighted_layers",
]


@dataclass(frozen=True, eq=False)
class SanityResult:
    """What the randomization did to a map, step by step ("original" first).

    steps: the layer re-initialized at each step (cascade: that layer and all above it);
    maps: (S, H, W) float32 on the photo's grid (the method's own map, signed where the method
    is); spearman / ssim / hog: each step's similarity to the original (1.0 at "original");
    randomized: the layers the check re-initializes, top first; target: the class explained;
    passed: the map depends on the weights (see PASS_BELOW); verdict: that in plain words.
    """

    steps: tuple[str, ...]
    maps: np.ndarray
    spearman: tuple[float, ...]
    ssim: tuple[float, ...]
    hog: tuple[float, ...]
    order: str
    method: str
    target: int
    target_name: str | None
    seed: int
    verdict: str
    passed: bool
    layer: str | None = None  # the CAM layer, None for saliency and callables

    @property
    def statistic(self) -> float:
        """The rank correlation the verdict is read from: the last step's (cascade) or the lowest (independent)."""
        return _statistic(self.spearman, self.order)

    def settings(self) -> dict[str, Any]:
        """The numbers for an export sidecar."""
        return {
            "method": self.method,
            "order": self.order,
            "seed": self.seed,
            "target": self.target,
            "target_name": self.target_name,
            "layer": self.layer,
            "steps": list(self.steps),
            "spearman": [round(v, 6) for v in self.spearman],
            "ssim": [round(v, 6) for v in self.ssim],
            "hog": [round(v, 6) for v in self.hog],
            "passed": self.passed,
            "pass_below": PASS_BELOW,
            "verdict": self.verdict,
        }


def _statistic(values: Sequence[float], order: str) -> float:
    rest = list(values[1:]) or [1.0]
    return float(rest[-1] if order == "cascade" else min(rest))


def verdict(spearman_values: Sequence[float], steps: Sequence[str], order: str) -> tuple[bool, str]:
    """(passed, the verdict in plain words) from the per-step rank correlations ("original" first)."""
    r = _statistic(spearman_values, order)
    n = len(steps) - 1
    if order == "cascade":
        where = f"when all {n} layers are random" if n != 1 else "when its one layer is random"
    else:
        rest = list(spearman_values[1:])
        where = f"when {steps[1 + int(np.argmin(rest))]} alone is random" if rest else ""
    if r < PASS_BELOW:
        return True, f"the map depends on the weights: rank correlation falls to {r:.2f} {where}"
    if r >= EDGE_LIKE:
        return False, (
            f"the map barely changes when the weights are randomized (rank correlation {r:.2f} {where}): "
            "it behaves like an edge detector, not an explanation of this model"
        )
    return False, (
        f"the map changes only partly when the weights are randomized (rank correlation {r:.2f} "
        f"{where}, pass below {PASS_BELOW}): much of it does not depend on what the model learned"
    )


# ----------------------------------------------------------------------------- the model copy
def weighted_layers(h: ModelHandle) -> list[str]:
    """The paths of the layers with trainable weights, in graph order (bottom up)."""
    out = []
    for info in h.all_layers():
        if info.kind == "model":
            continue
        layer = h.layer(info.path)
        if getattr(layer, "trainable_weights", None):
            out.append(info.path)
    return out


def _copy(h: ModelHandle) -> ModelHandle:
    """A ModelHandle of a clone of h's model with the same weights (h itself is left alone)."""
    import keras

    try:
        clone = keras.models.clone_model(h.model)
        clone.set_weights(h.model.get_weights())
    except Exception as exc:  # noqa: BLE001 - any Keras failure becomes one message
        text = str(exc).strip().splitlines()
        raise EngineError(
            f"cannot copy model {h.name!r} for the randomization check ({text[0][:160] if text else type(exc).__name__})"
        ) from None
    return ModelHandle(
        clone,
        name=h.name,
        spec=h.spec,
        scaling=h.scaling,
        class_names=h.class_names,
        opaque=h.opaque,
    )


def _initializer_of(layer: Any, name: str) -> Any:
    short = name.rsplit("/", 1)[-1]
    candidates = [f"{short}_initializer", f"{short.removesuffix('_kernel')}_initializer"]
    if short == "kernel":
        candidates.append("depthwise_initializer")
    for attr in candidates:
        init = getattr(layer, attr, None)
        if init is not None:
            return init
    return None


def _seeded(init: Any, seed: int) -> Any:
    import keras

    init = keras.initializers.get(init)
    config = init.get_config()
    if "seed" in config:
        return type(init).from_config({**config, "seed": seed})
    return init


def _random_values(layer: Any, index: int, seed: int) -> list[np.ndarray]:
    """Fresh values for every weight of `layer` (the index-th randomized layer), reproducible."""
    import keras

    base = int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] % (2**31 - 1000))
    values = []
    for j, v in enumerate(layer.weights):
        shape = tuple(int(s) for s in v.shape)
        init = _initializer_of(layer, v.name)
        if init is None:
            init = keras.initializers.HeNormal(seed=base + j) if len(shape) >= 2 else "zeros"
        value = _seeded(init, base + j)(shape, dtype=str(v.dtype))
        values.append(np.asarray(keras.ops.convert_to_numpy(value)))
    return values


def _set(layer: Any, values: Sequence[np.ndarray]) -> None:
    for v, value in zip(layer.weights, values):
        v.assign(value)


# ----------------------------------------------------------------------------- maps
def _map_fn(method: str | MapFn, options: dict[str, Any]) -> tuple[str, Callable[..., Iterator], bool]:
    """(method name, gen(h, photo, target) -> map, is_cam) for a CAM or saliency name or a callable."""
    if callable(method):
        fn = method

        def gen_callable(h: ModelHandle, photo: np.ndarray, target: Any) -> Iterator:
            yield from ()
            index = target.index if hasattr(target, "index") else target
            return np.asarray(fn(h, photo, index), np.float32)

        return getattr(fn, "__name__", "custom"), gen_callable, False
    from engine.attribution.gradients import SALIENCY_METHODS, check_saliency_method
    from engine.attribution.methods import CAM_METHODS, check_method

    key = str(method).lower()
    is_cam = any(key == n or key in c.aliases for n, c in CAM_METHODS.items())
    if is_cam:
        from engine.attribution.cam import iter_cam

        name = check_method(key)

        def gen_cam(h: ModelHandle, photo: np.ndarray, target: Any) -> Iterator:
            res = yield from iter_cam(h, photo, target, method=name, **options)
            return res.heatmap

        return name, gen_cam, True
    try:
        name = check_saliency_method(key)
    except EngineError:
        known = ", ".join((*CAM_METHODS, *SALIENCY_METHODS))
        raise EngineError(f"unknown attribution method {method!r}; choose from: {known}") from None
    from engine.attribution.gradients import iter_saliency

    def gen_saliency(h: ModelHandle, photo: np.ndarray, target: Any) -> Iterator:
        return (yield from iter_saliency(h, photo, target, name, **options))

    return name, gen_saliency, False


def _fixed_target(h: ModelHandle, x: np.ndarray, target: Any) -> Any:
    """The Target every step explains: `target`, with top-1 resolved on the original model."""
    from engine.attribution.functions import logits_fn
    from engine.attribution.target import Target

    goal = Target.of(h, target)
    if goal.top1:
        goal = replace(goal, index=goal.chosen(np.asarray(logits_fn(h)(x))[0]))
    return goal


def _check(order: str, h: ModelHandle, layers: Sequence[str] | None) -> list[str]:
    if order not in ORDERS:
        raise EngineError(f"unknown order {order!r}; choose from: {', '.join(ORDERS)}")
    every = weighted_layers(h)
    if layers is None:
        chosen = every
    else:
        paths = [h.resolve(p) for p in ([layers] if isinstance(layers, str) else layers)]
        bare = [p for p in paths if p not in every]
        if bare:
            raise EngineError(f"layer {bare[0]} has no trainable weights to randomize")
        chosen = [p for p in every if p in paths]
    if not chosen:
        raise EngineError(f"model {h.name!r} has no layer with trainable weights to randomize")
    return chosen[::-1]  # top (output) first


def iter_randomization(
    h: ModelHandle,
    img: ImageSource,
    method: str | MapFn = "gradcam",
    target: Any = None,
    order: str = "cascade",
    layers: Sequence[str] | None = None,
    seed: int = 0,
    **method_options: Any,
) -> Iterator[tuple[int, int]]:
    """randomization() as a generator: yields (done, total) maps and returns the SanityResult.

    method: a CAM method (engine.attribution.methods: gradcam, gradcam++, layercam, scorecam,
    eigencam), a saliency method (gradient, smoothgrad, integrated, grad_x_input) or a callable
    fn(h, photo, target_index) -> (H, W) map. target: None (top-1 of the original model), an
    index, a class name or a Target. order: cascade | independent. layers: the layers to
    re-initialize (default: every layer with trainable weights). seed: the re-initialization's.
    method_options go to the method (e.g. layer=, mapping= of a CAM; samples= of SmoothGrad).
    """
    from engine.attribution.target import target_name

    name, gen, is_cam = _map_fn(method, dict(method_options))
    chosen = _check(order, h, layers)
    photo = (
        load_image(img)
        if not (isinstance(img, np.ndarray) and img.dtype == np.float32 and img.ndim == 3)
        else img
    )
    layer_used = None
    if is_cam:
        from engine.attribution.cam import _check_layer

        layer_used = _check_layer(h, method_options.get("layer"))
    goal = _fixed_target(h, to_model_input(photo, h), target)
    total = len(chosen) + 1
    yield 0, total
    maps = [(yield from relay(gen(h, photo, goal), 0, total))]
    yield 1, total
    copy = _copy(h)
    for k, path in enumerate(chosen):
        layer = copy.layer(path)
        trained = layer.get_weights() if order == "independent" else None
        _set(layer, _random_values(layer, k, seed))
        maps.append((yield from relay(gen(copy, photo, goal), k + 1, total)))
        if trained is not None:  # independent: this layer trained again before the next
            _set(layer, trained)
        yield k + 2, total
    steps = ("original", *chosen)
    rho = tuple(spearman(maps[0], m) for m in maps)
    passed, words = verdict(rho, steps, order)
    return SanityResult(
        steps=steps,
        maps=_frozen(np.stack([np.asarray(m, np.float32) for m in maps])),
        spearman=rho,
        ssim=tuple(ssim(maps[0], m) for m in maps),
        hog=tuple(hog_similarity(maps[0], m) for m in maps),
        order=order,
        method=name,
        target=int(goal.index),
        target_name=target_name(h, int(goal.index)),
        seed=int(seed),
        verdict=words,
        passed=passed,
        layer=layer_used,
    )


def relay(gen: Iterator[Any], done: int, total: int) -> Iterator[tuple[int, int]]:
    """Run one stage's generator (a map, a curve), re-yielding each of its steps as (done, total)
    of the whole run (this check, engine.attribution.compare's comparison); returns its value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
        yield done, total


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def randomization(
    h: ModelHandle, img: ImageSource, *args: Any, progress: Any = None, **options: Any
) -> SanityResult:
    """The model-randomization sanity check of a map of `img` (arguments: iter_randomization's);
    progress(done, total) is called after each map."""
    return drain(iter_randomization(h, img, *args, **options), progress)
