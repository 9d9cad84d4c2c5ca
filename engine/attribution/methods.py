"""CAM methods as a registry of small classes, after pytorch-grad-cam's ``base_cam.py``.

A method turns one image's activations ``A`` (h, w, C) of a spatial layer, and the gradients
``dS/dA`` of the target's score when it uses them, into a signed coarse map (h, w):

    weights(A, G) -> (C,) channel weights, or (h, w, C) per-cell weights
    cam_image(A, weights) -> sum_k weights_k * A_k   (the default; a method may override it)

Score-CAM and Eigen-CAM are the non-gradient cases (``uses_gradients = False``: one forward
pass, ``G`` is None). Score-CAM needs more forward passes and reports progress, so it
overrides the generator hook ``iter_weights(ctx, A, G)`` instead; ``ctx`` (CamContext) gives
it the model, the input, the target and the projection onto the model's grid.

Adding a method is one class: subclass CamMethod, set ``name`` (and ``label``, ``aliases``),
implement ``weights`` and decorate it with ``@register``; engine.cam(method=name) runs it.

Built in: gradcam, gradcam++, layercam (gradient methods), scorecam, eigencam (not); each
class's docstring gives its formula.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from engine.attribution.projection import identity_field, projection_matrices
from engine.attribution.target import Target
from engine.errors import EngineError
from engine.models import ModelHandle
from engine.scaling import to_model_range

Progress = tuple[int, int]


@dataclass(frozen=True)
class CamContext:
    """What a method may use beyond activations and gradients: the model handle `h`, its input
    `x` (1, H, W, C), the bound `target` and the class `chosen` for it, and the layer's
    receptive `field` with the mapping that projects cells onto pixels."""

    h: ModelHandle
    x: np.ndarray
    target: Target
    chosen: int
    field: Any
    mapping: str
    sigma: float | None = None
    batch_size: int = 32
    precision: str = "auto"
    max_channels: int | float | None = None  # Score-CAM: only the most varied channels (fast mode)

    def matrices(
        self, cam_shape: tuple[int, int], out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(py, px) projecting a (h, w) map onto `out_shape` (default: the model's input grid)."""
        model_shape = tuple(self.h.input_shape[:2])
        out = model_shape if out_shape is None else tuple(out_shape)
        field_ = identity_field() if self.field is None else self.field  # bilinear needs no field
        return projection_matrices(field_, tuple(cam_shape), model_shape, out, self.mapping, self.sigma)


class CamMethod:
    """One CAM method. Subclasses set `name` and implement `weights` (or a hook below)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # for menus: "Grad-CAM"
    aliases: ClassVar[tuple[str, ...]] = ()
    uses_gradients: ClassVar[bool] = True  # False: one forward pass, gradients is None

    def weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        """Channel weights (C,) or per-cell weights (h, w, C) from A and dS/dA (h, w, C)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither weights nor iter_weights")

    def iter_weights(
        self, ctx: CamContext, activations: np.ndarray, gradients: np.ndarray | None
    ) -> Iterator[Progress]:
        """Generator hook: yields (done, total) progress and returns the weights (default: weights())."""
        yield from ()
        return self.weights(activations, gradients)

    def cam_image(self, activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The signed coarse map (h, w) float32: the weighted sum of the activation maps."""
        a = activations.astype(np.float64)
        w = np.asarray(weights, np.float64)
        return (a @ w if w.ndim == 1 else (w * a).sum(axis=-1)).astype(np.float32)

    def run(
        self, ctx: CamContext, activations: np.ndarray, gradients: np.ndarray | None
    ) -> Iterator[Progress]:
        """Yields (done, total) progress and returns the coarse map."""
        weights = yield from self.iter_weights(ctx, activations, gradients)
        return self.cam_image(activations, weights)

    def precision_used(self, ctx: CamContext) -> str:
        """The precision the method's passes ran in (settings["precision"])."""
        return "float32"


CAM_METHODS: dict[str, type[CamMethod]] = {}


def register(cls: type[CamMethod]) -> type[CamMethod]:
    """Class decorator: make `cls` available as engine.cam(method=cls.name)."""
    name = str(cls.name).lower()
    if not name or not issubclass(cls, CamMethod):
        raise EngineError(f"{cls!r} is not a named CamMethod")
    taken = {key for other in CAM_METHODS.values() for key in (other.name, *other.aliases)}
    for key in (name, *cls.aliases):
        if key in taken:
            raise EngineError(f"CAM method name {key!r} is already registered")
    CAM_METHODS[name] = cls
    return cls


def check_method(method: str) -> str:
    """The registered name for `method` or one of its aliases (case-insensitive)."""
    key = str(method).lower()
    for name, cls in CAM_METHODS.items():
        if key == name or key in cls.aliases:
            return name
    raise EngineError(f"unknown CAM method {method!r}; choose from: {', '.join(CAM_METHODS)}")


# ----------------------------------------------------------------------------- gradient methods
@register
class GradCAM(CamMethod):
    """w_k = spatial mean of dS/dA_k (Selvaraju et al. 2017); the classic map is the ReLU of the sum."""

    name = "gradcam"
    label = "Grad-CAM"
    aliases = ("grad-cam",)

    def weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        return np.asarray(gradients, np.float64).mean(axis=(0, 1))


@register
class GradCAMPlusPlus(CamMethod):
    """w_k = sum_ij relu(g_kij) * alpha_kij, alpha = g^2 / (2 g^2 + sum_ij(A_k) g^3)
    (Chattopadhay et al. 2018, the exp-score form)."""

    name = "gradcam++"
    label = "Grad-CAM++"
    aliases = ("gradcampp", "grad-cam++")

    def weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        a = activations.astype(np.float64)
        g = np.asarray(gradients, np.float64)
        g2 = g * g
        g3 = g2 * g
        denom = 2.0 * g2 + a.sum(axis=(0, 1))[None, None, :] * g3
        alpha = np.where(g != 0, g2 / np.where(denom != 0, denom, 1.0), 0.0)
        return (np.maximum(g, 0.0) * alpha).sum(axis=(0, 1))


@register
class LayerCAM(CamMethod):
    """Per-cell weights relu(g_kij), so cam = sum_k relu(g_k) * A_k cell by cell (Jiang et al. 2021).

    Keeps the fine detail of shallow layers that Grad-CAM's channel averages wash out.
    """

    name = "layercam"
    label = "Layer-CAM"
    aliases = ("layer-cam",)

    def weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        return np.maximum(np.asarray(gradients, np.float64), 0.0)  # per cell


# ----------------------------------------------------------------------------- non-gradient methods
FAST_CHANNELS = 0.25  # the fast Score-CAM's default share of the layer's channels (bench/scorecam_fast.py)


def check_max_channels(max_channels: Any) -> int | float | None:
    """None (every channel: exact), a count N >= 1, or a share 0 < f < 1 of the layer's channels."""
    if max_channels is None:
        return None
    if isinstance(max_channels, bool) or not isinstance(max_channels, int | float | np.integer | np.floating):
        raise EngineError(f"max_channels must be a count or a share of the channels, got {max_channels!r}")
    if float(max_channels) >= 1 and float(max_channels) == int(max_channels):
        return int(max_channels)
    if 0 < float(max_channels) < 1:
        return float(max_channels)
    raise EngineError(f"max_channels must be a whole count >= 1 or a share in (0, 1), got {max_channels!r}")


def top_variance_channels(acts: np.ndarray, live: np.ndarray, max_channels: int | float | None) -> np.ndarray:
    """The channels of `live` Score-CAM runs: all of them, or the max_channels (a count, or a
    share of all C channels, at least one) whose activation maps vary most (Faster Score-CAM,
    as tf-keras-vis' max_N), in channel order."""
    if max_channels is None:
        return live
    c = acts.shape[-1]
    n = int(max_channels) if isinstance(max_channels, int) else max(1, int(np.ceil(max_channels * c)))
    if n >= len(live):
        return live
    var = acts.reshape(-1, c).astype(np.float64).var(axis=0)[live]
    keep = np.argsort(-var, kind="stable")[:n]
    return np.sort(live[keep])


@register
class ScoreCAM(CamMethod):
    """Each channel, projected onto the model input with the chosen mapping and scaled to [0, 1],
    masks the image (blending toward black). Channels with a constant map mask nothing and get
    weight 0 without a forward pass. `batch_size` masked images per pass, in bfloat16 where the
    hardware has it natively (engine.precision; both probabilities from the same network).
    w_k = p(target | image masked by A_k) - p(target | black) (Wang et al. 2020).

    Exact by default: one forward pass per channel is its floor. `max_channels` (the fast mode)
    runs only the channels whose maps vary most (a count, or a share of the channels) and gives
    the others weight 0; bench/scorecam_fast.py measures what that changes."""

    uses_gradients = False
    name = "scorecam"
    label = "Score-CAM"
    aliases = ("score-cam",)

    def precision_used(self, ctx: CamContext) -> str:
        from engine.attribution.functions import masked_scores_fn

        return masked_scores_fn(ctx.h, ctx.precision)[1]

    def iter_weights(
        self, ctx: CamContext, activations: np.ndarray, gradients: np.ndarray | None
    ) -> Iterator[Progress]:
        import tensorflow as tf

        from engine.attribution.functions import masked_scores_fn
        from engine.memory import fit_batch

        acts, h, chosen = activations, ctx.h, ctx.chosen
        hh, ww, c = acts.shape
        span = acts.max(axis=(0, 1)) - acts.min(axis=(0, 1))
        live = np.flatnonzero(span > 1e-12 * np.maximum(np.abs(acts).max(axis=(0, 1)), 1e-30))
        live = top_variance_channels(acts, live, ctx.max_channels)
        base_img = to_model_range(np.zeros((1, 1, h.input_shape[2]), np.float32), h.scaling).reshape(-1)
        fn, _ = masked_scores_fn(h, ctx.precision)
        py, px = (tf.constant(m) for m in ctx.matrices((hh, ww)))
        xt, bt = tf.constant(ctx.x), tf.constant(base_img.astype(np.float32))
        # a constant map masks everything: the baseline image, through the same network and precision
        base_logits = np.asarray(fn(xt, tf.zeros((1, hh, ww)), py, px, bt))
        p_base = float(ctx.target.probabilities(base_logits)[0, chosen])
        maps = np.ascontiguousarray(np.transpose(acts, (2, 0, 1)), np.float32)
        weights = np.zeros(c, np.float64)
        total = len(live)
        # as many masked images per pass as asked, or as fit in the memory there is (engine.memory)
        batch_size = fit_batch(max(1, int(ctx.batch_size)), forward_bytes_per_image(h))
        yield 0, total
        for start in range(0, total, batch_size):
            idx = live[start : start + batch_size]
            logits = np.asarray(fn(xt, tf.constant(maps[idx]), py, px, bt))
            probs = ctx.target.probabilities(logits)[:, chosen]
            weights[idx] = probs.astype(np.float64) - p_base
            yield min(start + batch_size, total), total
        return weights


def forward_bytes_per_image(h: ModelHandle) -> int:
    """Peak bytes one image adds to a forward pass of `h` (engine.memory.activation_bytes)."""
    from engine.memory import activation_bytes

    return activation_bytes(h.model, training=False)


@register
class EigenCAM(CamMethod):
    """w = the first right singular vector of A (hw, C), signed so that the map's mean is
    positive (Muhammad & Yeasin 2020); class-agnostic."""

    uses_gradients = False
    name = "eigencam"
    label = "Eigen-CAM"
    aliases = ("eigen-cam",)

    def weights(self, activations: np.ndarray, gradients: np.ndarray | None) -> np.ndarray:
        hh, ww, c = activations.shape
        flat = activations.reshape(hh * ww, c).astype(np.float64)
        if not np.any(flat):
            return np.zeros(c, np.float64)
        _, _, vt = np.linalg.svd(flat, full_matrices=False)
        return -vt[0] if (flat @ vt[0]).mean() < 0 else vt[0]
