"""Class activation maps: Grad-CAM, Grad-CAM++, Layer-CAM, Score-CAM and Eigen-CAM.

Each method turns the activations ``A`` (h, w, C) of one spatial layer into a
coarse map ``cam`` (h, w); the map is then projected onto the photo through each
cell's receptive field (engine.attribution.projection). The class score is the
pre-softmax logit of the target (for a single sigmoid unit: the logit for
"positive", its negation for "negative").

- gradcam: w_k = spatial mean of dS/dA_k; cam = sum_k w_k A_k (signed; the classic
  map is its ReLU). One forward pass and one backward pass down to the layer.
- gradcam++: w_k = sum_ij relu(g_kij) * alpha_kij with
  alpha = g^2 / (2 g^2 + sum_ij(A_k) g^3) (Chattopadhay et al. 2018, exp-score form).
- layercam: cam = sum_k relu(g_k) * A_k, cell by cell (Jiang et al. 2021).
- scorecam: each channel, projected onto the model input with the chosen mapping and
  scaled to [0, 1], masks the image (blending toward black); w_k = p(target | masked)
  - p(target | black), cam = sum_k w_k A_k (Wang et al. 2020). Channels with a constant
  map mask nothing and get weight 0 without a forward pass. Batched, ``batch_size``
  masked images per forward pass, in bfloat16 where the hardware has it natively
  (engine.precision; both probabilities come from the same bf16 network).
- eigencam: the projection of A (hw, C) onto its first right singular vector, signed so
  that its mean is positive (Muhammad & Yeasin 2020); class-agnostic.

Every TensorFlow function is compiled once per (model, layer) and cached.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import numpy as np

from engine.attribution.projection import DEFAULT_MAPPING, check_mapping, project, projection_matrices
from engine.errors import EngineError
from engine.images import ImageSource, load_image, to_model_input
from engine.precision import check_precision
from engine.scaling import to_model_range

METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "layercam", "scorecam", "eigencam")
_ALIASES = {
    "grad-cam": "gradcam",
    "gradcampp": "gradcam++",
    "grad-cam++": "gradcam++",
    "score-cam": "scorecam",
    "layer-cam": "layercam",
    "eigen-cam": "eigencam",
}

Target = int | str | None
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class CamResult:
    """A class activation map and what it explains.

    cam: (h, w) float32 signed coarse map of `layer`; heatmap: (H, W) float32 signed,
    projected onto the photo's own grid; heatmap_relu: the ReLU map projected the same way
    (the classic Grad-CAM picture). target: class index (a single sigmoid unit counts as
    two classes: 0 negative, 1 positive); score: the target's logit; probabilities: all
    class probabilities of the unmodified image.
    """

    cam: np.ndarray
    heatmap: np.ndarray
    heatmap_relu: np.ndarray
    target: int
    score: float
    layer: str
    method: str
    mapping: str
    probabilities: np.ndarray
    target_name: str | None = None
    field: Any = None  # ReceptiveField of the layer, None when it cannot be computed
    model_shape: tuple[int, int] = (0, 0)
    settings: dict[str, Any] = dc_field(default_factory=dict)

    @property
    def cam_relu(self) -> np.ndarray:
        """The coarse map with negative evidence removed."""
        return np.maximum(self.cam, 0.0)

    @property
    def probability(self) -> float:
        """Probability of the target class on the unmodified image."""
        return float(self.probabilities[self.target])


# ----------------------------------------------------------------------------- targets, scores
def check_method(method: str) -> str:
    key = _ALIASES.get(str(method).lower(), str(method).lower())
    if key not in METHODS:
        raise EngineError(f"unknown CAM method {method!r}; choose from: {', '.join(METHODS)}")
    return key


def target_index(h: Any, target: Target) -> int:
    """A class index for `target` (int, class name, "positive"/"negative"); -1 for None (top-1)."""
    if target is None:
        return -1
    n = h.num_classes
    if isinstance(target, str):
        text = target.strip()
        if text.lstrip("-").isdigit():
            return target_index(h, int(text))
        if text.lower() in ("top", "top1", "top-1", "auto"):
            return -1
        names = list(h.class_names or [])
        if text in names:
            return names.index(text)
        lowered = [str(name).lower() for name in names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if h.binary and text.lower() in ("positive", "negative"):
            return 1 if text.lower() == "positive" else 0
        if text.lower() in ("positive", "negative"):
            raise EngineError(
                f"target {text!r} is only for a single sigmoid output; model {h.name!r} has {n} classes"
            )
        hint = f"; classes: {', '.join(names[:10])}" if names else ""
        raise EngineError(f"unknown target {target!r}{hint}")
    if isinstance(target, bool) or not isinstance(target, int | np.integer):
        raise EngineError(f"target must be a class index, a class name or None, not {type(target).__name__}")
    if not 0 <= int(target) < n:
        raise EngineError(f"target {int(target)} out of range: model {h.name!r} has {n} classes (0..{n - 1})")
    return int(target)


def target_name(h: Any, index: int) -> str | None:
    names = h.class_names
    return str(names[index]) if names and 0 <= index < len(names) else None


def score_graph(logits: Any, target: Any, binary: bool) -> tuple[Any, Any]:
    """In-graph (score (B,), target (B,)) for logits (B, n) and targets (B,) int32, -1 = top-1."""
    import tensorflow as tf

    if binary:
        z = logits[:, 0]
        top = tf.cast(z > 0, tf.int32)
        t = tf.where(target < 0, top, target)
        return z * tf.cast(2 * t - 1, z.dtype), t
    top = tf.argmax(logits, axis=-1, output_type=tf.int32)
    t = tf.where(target < 0, top, target)
    return tf.gather(logits, t, axis=1, batch_dims=1), t


def probabilities_from_logits(h: Any, logits: np.ndarray) -> np.ndarray:
    """(B, num_classes) probabilities from (B, n) logits, following the model's final activation."""
    z = np.asarray(logits, np.float64)
    if h.binary:
        p = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.stack([1.0 - p, p], axis=1).astype(np.float32)
    if h.output_activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------- compiled functions
_FUNCTIONS: weakref.WeakKeyDictionary[Any, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def compiled(h: Any, key: tuple, build: Callable[[], Any]) -> Any:
    """A function cached per model handle under `key` (built on first use)."""
    table = _FUNCTIONS.setdefault(h, {})
    fn = table.get(key)
    if fn is None:
        fn = table[key] = build()
    return fn


def _input_spec(h: Any) -> Any:
    import tensorflow as tf

    return tf.TensorSpec((None, *h.input_shape), tf.float32)


def _grad_fn(h: Any, layer: str) -> Any:
    """f(x (B,H,W,C), target (B,)) -> (A, dS/dA, logits, target) for layer `layer`."""
    import tensorflow as tf

    def build() -> Any:
        model = h.submodel([layer], logits=True)
        binary = h.binary

        @tf.function(input_signature=[_input_spec(h), tf.TensorSpec((None,), tf.int32)])
        def fn(x: Any, target: Any) -> Any:
            with tf.GradientTape() as tape:
                acts, logits = model(x, training=False)
                score, t = score_graph(logits, target, binary)
            grads = tape.gradient(score, acts, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return acts, grads, logits, t

        return fn

    return compiled(h, ("grad", layer), build)


def _forward_fn(h: Any, layer: str) -> Any:
    """f(x) -> (A, logits) for layer `layer`."""
    import tensorflow as tf

    def build() -> Any:
        model = h.submodel([layer], logits=True)

        @tf.function(input_signature=[_input_spec(h)])
        def fn(x: Any) -> Any:
            acts, logits = model(x, training=False)
            return acts, logits

        return fn

    return compiled(h, ("forward", layer), build)


def logits_fn(h: Any) -> Any:
    """f(x (B,H,W,C)) -> logits (B, n), compiled."""
    import keras
    import tensorflow as tf

    def build() -> Any:
        model = keras.Model(h.flat_input, h.logits, name="convscope_logits")

        @tf.function(input_signature=[_input_spec(h)])
        def fn(x: Any) -> Any:
            return model(x, training=False)

        return fn

    return compiled(h, ("logits",), build)


def _masked_scores_fn(h: Any, precision: str = "float32") -> tuple[Any, str]:
    """(f, precision used): f(x (1,H,W,C), maps (K,h,w), py, px, base (C,)) -> float32 logits (K, n)
    of the image blended toward `base` by each map, projected (py, px) and scaled to [0, 1]."""
    import tensorflow as tf

    from engine.precision import logits_model, resolve_precision

    def build() -> tuple[Any, str]:
        model, used = logits_model(h, precision)

        @tf.function(
            input_signature=[
                _input_spec(h),
                tf.TensorSpec((None, None, None), tf.float32),
                tf.TensorSpec((None, None), tf.float32),
                tf.TensorSpec((None, None), tf.float32),
                tf.TensorSpec((h.input_shape[2],), tf.float32),
            ]
        )
        def fn(x: Any, maps: Any, py: Any, px: Any, base: Any) -> Any:
            masks = tf.einsum("Hh,khw,Ww->kHW", py, maps, px)
            lo = tf.reduce_min(masks, axis=[1, 2], keepdims=True)
            hi = tf.reduce_max(masks, axis=[1, 2], keepdims=True)
            masks = (masks - lo) / tf.maximum(hi - lo, 1e-12)
            masked = base + masks[..., None] * (x - base)
            return tf.cast(model(masked, training=False), tf.float32)

        return fn, used

    return compiled(h, ("masked", resolve_precision(precision)), build)


# ----------------------------------------------------------------------------- the methods
def _check_layer(h: Any, layer: str | None) -> str:
    path = h.resolve(layer) if layer else h.default_cam_layer()
    shape = tuple(h.symbolic(path).shape[1:])
    if len(shape) != 3:
        raise EngineError(
            f"layer {path} has no spatial extent (output {shape}); choose a conv layer such as {h.default_cam_layer()}"
        )
    return path


def _layer_field(h: Any, path: str, mapping: str) -> Any:
    from engine.receptive_field import receptive_field

    try:
        return receptive_field(h, path)
    except EngineError:
        if mapping == "bilinear":
            return None
        raise


def _gradcam_weights(acts: np.ndarray, grads: np.ndarray, method: str) -> np.ndarray:
    """Signed coarse map (h, w) from activations and gradients (h, w, C) for the gradient methods."""
    a = acts.astype(np.float64)
    g = grads.astype(np.float64)
    if method == "gradcam":
        weights = g.mean(axis=(0, 1))
        return (a @ weights).astype(np.float32)
    if method == "gradcam++":
        g2 = g * g
        g3 = g2 * g
        denom = 2.0 * g2 + a.sum(axis=(0, 1))[None, None, :] * g3
        alpha = np.where(g != 0, g2 / np.where(denom != 0, denom, 1.0), 0.0)
        weights = (np.maximum(g, 0.0) * alpha).sum(axis=(0, 1))
        return (a @ weights).astype(np.float32)
    if method == "layercam":
        return (np.maximum(g, 0.0) * a).sum(axis=-1).astype(np.float32)
    raise EngineError(f"{method} is not a gradient method")


def _eigencam(acts: np.ndarray) -> np.ndarray:
    hh, ww, c = acts.shape
    flat = acts.reshape(hh * ww, c).astype(np.float64)
    if not np.any(flat):
        return np.zeros((hh, ww), np.float32)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    proj = flat @ vt[0]
    if proj.mean() < 0:
        proj = -proj
    return proj.reshape(hh, ww).astype(np.float32)


def _scorecam(
    h: Any,
    x: np.ndarray,
    acts: np.ndarray,
    target: int,
    mats: tuple[np.ndarray, np.ndarray],
    batch_size: int,
    precision: str,
    used: list[str],
) -> Iterator[tuple[int, int] | np.ndarray]:
    """Yield (done, total) progress per batch, then the signed coarse map; used[0] = precision run."""
    import tensorflow as tf

    hh, ww, c = acts.shape
    span = acts.max(axis=(0, 1)) - acts.min(axis=(0, 1))
    live = np.flatnonzero(span > 1e-12 * np.maximum(np.abs(acts).max(axis=(0, 1)), 1e-30))
    base_img = to_model_range(np.zeros((1, 1, h.input_shape[2]), np.float32), h.scaling).reshape(-1)
    fn, used[0] = _masked_scores_fn(h, precision)
    py, px = (tf.constant(m) for m in mats)
    xt, bt = tf.constant(x), tf.constant(base_img.astype(np.float32))
    # a constant map masks everything: the baseline image, through the same network and precision
    base_logits = np.asarray(fn(xt, tf.zeros((1, hh, ww)), py, px, bt))
    p_base = float(probabilities_from_logits(h, base_logits)[0, target])
    maps = np.ascontiguousarray(np.transpose(acts, (2, 0, 1)), np.float32)
    weights = np.zeros(c, np.float64)
    total = len(live)
    batch_size = max(1, int(batch_size))
    yield 0, total
    for start in range(0, total, batch_size):
        idx = live[start : start + batch_size]
        logits = np.asarray(fn(xt, tf.constant(maps[idx]), py, px, bt))
        probs = probabilities_from_logits(h, logits)[:, target]
        weights[idx] = probs.astype(np.float64) - p_base
        yield min(start + batch_size, total), total
    return (acts.astype(np.float64) @ weights).astype(np.float32)


def iter_cam(
    h: Any,
    img: ImageSource,
    target: Target = None,
    layer: str | None = None,
    method: str = "gradcam",
    mapping: str = DEFAULT_MAPPING,
    *,
    sigma: float | None = None,
    batch_size: int = 32,
    precision: str = "auto",
) -> Iterator[tuple[int, int]]:
    """cam() as a generator: yields (done, total) progress and returns the CamResult (for jobs)."""
    method = check_method(method)
    mapping = check_mapping(mapping)
    check_precision(precision)
    used = ["float32"]
    index = target_index(h, target)
    path = _check_layer(h, layer)
    photo = (
        load_image(img)
        if not (isinstance(img, np.ndarray) and img.dtype == np.float32 and img.ndim == 3)
        else img
    )
    x = to_model_input(photo, h)
    field_ = _layer_field(h, path, mapping)
    target_arr = np.array([index], np.int32)

    if method in ("gradcam", "gradcam++", "layercam"):
        acts, grads, logits, t = (np.asarray(v) for v in _grad_fn(h, path)(x, target_arr))
        chosen = int(t[0])
        coarse = _gradcam_weights(acts[0], grads[0], method)
    else:
        acts, logits = (np.asarray(v) for v in _forward_fn(h, path)(x))
        chosen = index if index >= 0 else _top1(h, logits)
        if method == "eigencam":
            coarse = _eigencam(acts[0])
        else:
            model_mats = _matrices(
                field_, acts.shape[1:3], h.input_shape[:2], h.input_shape[:2], mapping, sigma
            )
            coarse = yield from _scorecam(h, x, acts[0], chosen, model_mats, batch_size, precision, used)
    probs = probabilities_from_logits(h, logits)[0]
    score = float(logits[0, 0] * (1 if chosen == 1 else -1)) if h.binary else float(logits[0, chosen])
    mats = _matrices(field_, coarse.shape, h.input_shape[:2], photo.shape[:2], mapping, sigma)
    heat = project(coarse, *mats)
    heat_relu = project(np.maximum(coarse, 0.0), *mats)
    return CamResult(
        cam=coarse,
        heatmap=heat,
        heatmap_relu=heat_relu,
        target=chosen,
        score=score,
        layer=path,
        method=method,
        mapping=mapping,
        probabilities=probs,
        target_name=target_name(h, chosen),
        field=field_,
        model_shape=tuple(h.input_shape[:2]),
        settings={
            "method": method,
            "mapping": mapping,
            "layer": path,
            "target": chosen,
            "sigma": sigma,
            "precision": used[0],
        },
    )


def _top1(h: Any, logits: np.ndarray) -> int:
    if h.binary:
        return int(logits[0, 0] > 0)
    return int(np.argmax(logits[0]))


def _matrices(
    field_: Any,
    cam_shape: tuple[int, int],
    model_shape: tuple[int, int],
    out_shape: tuple[int, int],
    mapping: str,
    sigma: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    if field_ is None:  # bilinear needs no field
        from engine.attribution.projection import identity_field

        field_ = identity_field()
    return projection_matrices(field_, tuple(cam_shape), tuple(model_shape), tuple(out_shape), mapping, sigma)


def drain(gen: Iterator[Any], progress: ProgressFn | None = None) -> Any:
    """Run a progress generator to its end and return its value, reporting (done, total) to `progress`."""
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(*step)


def cam(
    h: Any,
    img: ImageSource,
    target: Target = None,
    layer: str | None = None,
    method: str = "gradcam",
    mapping: str = DEFAULT_MAPPING,
    *,
    sigma: float | None = None,
    batch_size: int = 32,
    precision: str = "auto",
    progress: ProgressFn | None = None,
) -> CamResult:
    """A class activation map of `img` for `target`, projected onto the photo's own pixel grid.

    target: None (top-1), a class index or name, or "positive"/"negative" for a single
    sigmoid unit. layer: a spatial layer path (default: the last one with spatial extent,
    nested models included). method: gradcam | gradcam++ | layercam | scorecam | eigencam.
    mapping: roi | gaussian | center | bilinear (see engine.attribution.projection; the default,
    projection.DEFAULT_MAPPING, is the one bench/cam_quality.py scores best); sigma
    sets the gaussian mapping's width in input pixels. batch_size: masked images per
    Score-CAM forward pass. precision: the masked Score-CAM passes run in "float32" or
    "bfloat16" ("auto": bf16 where the hardware computes it natively, about twice as fast;
    see engine.precision); settings["precision"] records what ran. progress(done, total)
    is called between Score-CAM batches (it may raise to cancel).
    """
    return drain(
        iter_cam(
            h, img, target, layer, method, mapping, sigma=sigma, batch_size=batch_size, precision=precision
        ),
        progress,
    )
