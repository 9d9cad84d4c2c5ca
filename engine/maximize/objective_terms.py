"""The objectives, one function each, after Lucent's objectives.py: each returns an Expr.

    channel(layer, n)          mean of channel n's map (unit n of a dense layer)
    neuron(layer, n, y, x)     channel n at one spatial position
    layer(layer)               mean of the layer's squared output (DeepDream's)
    class_logit(n)             the pre-softmax score of class n (an index or a class name)
    direction(layer, vector)   dot product of the spatially averaged channels with a vector
    diversity(layer)           Lucid's: minus the pairwise cosine similarity of the batch's Gram
                               matrices (needs a batch; rises as its images differ)

Objectives are maximized. Combine them with +, - and * by numbers:
``channel("conv3", 5) - 0.1 * layer("conv3")``. Several channels (a list, a range or "*") make
a batch of one image each, as in the string grammar, so
``channel("conv3", [5] * 4) + 10 * diversity("conv3")`` gives four different images of channel 5.

Adding an objective is one function here: build an Atom (engine.maximize.objectives) from a
layer with channels, a position or a vector (linear: it joins the single batched plan), or with
a Custom (any TensorFlow function of the layer's batch of outputs), and return ``_expr(atom)``.
Decorate it with ``@string_form`` to let strings write it as ``NAME(LAYER)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.maximize.objectives import Atom, Custom, Expr, string_form

__all__ = ["channel", "class_logit", "direction", "diversity", "layer", "neuron"]

Channels = int | str | Sequence[int] | Sequence[str]


def _expr(atom: Atom) -> Expr:
    return Expr(((1.0, atom),))


def _channels(n: Any) -> Any:
    """An int, a class name, a sequence of them or "*" as the Atom's channels."""
    if isinstance(n, str) and n == "*":
        return "*"
    if isinstance(n, int | np.integer | str):
        return (n if isinstance(n, str) else int(n),)
    if isinstance(n, Sequence | np.ndarray | range) and len(n) > 0:
        return tuple(c if isinstance(c, str) else int(c) for c in n)
    raise EngineError(f"channel must be an index, a list of indices or '*', got {n!r}")


def _layer_name(name: Any) -> str:
    if not isinstance(name, str) or not name or name == "class":
        raise EngineError(f"layer must be a layer name such as 'conv3', got {name!r}")
    return name


def channel(layer: str, n: Channels) -> Expr:
    """The mean of channel n's map over all positions (unit n of a dense layer)."""
    chans = _channels(n)
    if chans != "*" and any(isinstance(c, str) for c in chans):
        raise EngineError(f"channels of {layer!r} must be numbers, got {n!r}")
    return _expr(Atom(_layer_name(layer), chans))


def neuron(layer: str, n: Channels, y: int, x: int) -> Expr:
    """Channel n at position (y, x) of the layer's map: one unit with one receptive field."""
    chans = _channels(n)
    if chans != "*" and any(isinstance(c, str) for c in chans):
        raise EngineError(f"channels of {layer!r} must be numbers, got {n!r}")
    return _expr(Atom(_layer_name(layer), chans, (int(y), int(x))))


def layer(layer: str) -> Expr:
    """The mean of the layer's squared output: everything it detects at once (DeepDream's)."""
    return _expr(Atom(_layer_name(layer)))


def class_logit(n: Channels) -> Expr:
    """The pre-softmax score (logit) of class n: an index, a class name, a list of them or "*"."""
    return _expr(Atom("class", _channels(n)))


def direction(layer: str, vector: Sequence[float] | np.ndarray) -> Expr:
    """The dot product of the layer's spatially averaged channels with `vector` (one entry a channel).

    A linear objective, so it joins the batched plan; a one-hot vector is channel().
    """
    v = np.asarray(vector, np.float64).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise EngineError("a direction must be a non-empty vector of finite numbers")
    return _expr(Atom(_layer_name(layer), vector=tuple(float(a) for a in v)))


def _diversity_value(acts: Any) -> Any:
    """Per image b: -(1/B) sum over j != b of cos(G_b, G_j), G the channel Gram matrices; sums to Lucid's."""
    import tensorflow as tf

    batch = tf.shape(acts)[0]
    flat = tf.reshape(acts, [batch, -1, acts.shape[-1]])
    grams = tf.nn.l2_normalize(tf.einsum("bnc,bnd->bcd", flat, flat), axis=[1, 2], epsilon=1e-10)
    cos = tf.einsum("bcd,ecd->be", grams, grams)
    return -(tf.reduce_sum(cos, axis=1) - tf.linalg.diag_part(cos)) / tf.cast(batch, cos.dtype)


_DIVERSITY = Custom("diversity", _diversity_value, batchwise=True)


@string_form
def diversity(layer: str) -> Expr:
    """Lucid's diversity: minus the mean pairwise cosine similarity of the batch's Gram matrices of `layer`.

    Higher when the images differ in style. Only meaningful for a batch (each image then starts
    from its own seeded start); add it, scaled, to the main objective to make the images differ
    (Lucid's ``- 1e2 * diversity`` with Lucid's sign, which is the opposite of this one).
    """
    return _expr(Atom(_layer_name(layer), custom=_DIVERSITY))
