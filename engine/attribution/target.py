"""What an attribution explains: a class, which of its scores, and the model's head.

After tf-keras-vis's ``scores.py`` (CategoricalScore, BinaryScore): one frozen `Target` owns
every head-dependent rule that cam.py, gradients.py (saliency) and metrics.py need, so the
single-sigmoid special cases live here and nowhere else.

- head "softmax": one logit per class (a linear head counts as softmax); top-1 = argmax.
- head "sigmoid": several independent sigmoid units (multi-label); top-1 = argmax.
- head "binary": one sigmoid unit z, read as two classes: 0 "negative" (logit -z), 1
  "positive" (logit z); top-1 = z > 0.

The differentiated score is the target's pre-activation "logit" (default), or its
"probability". Imports no TensorFlow at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from engine.errors import EngineError
from engine.models import ModelHandle

Head = Literal["softmax", "sigmoid", "binary"]
Score = Literal["logit", "probability"]
HEADS: tuple[str, ...] = ("softmax", "sigmoid", "binary")
SCORES: tuple[str, ...] = ("logit", "probability")
_TOP1_WORDS = ("top", "top1", "top-1", "auto")


def head_of(h: ModelHandle) -> Head:
    """The head kind of a model handle: "binary" for a single sigmoid unit."""
    if h.binary:
        return "binary"
    return "sigmoid" if h.output_activation == "sigmoid" else "softmax"


@dataclass(frozen=True)
class Target:
    """A class to explain (index None: the model's top-1 on the image), the score taken of it,
    and the head that score is read through (None until `Target.of` binds it to a model)."""

    index: int | None = None
    score: Score = "logit"
    head: Head | None = None

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise EngineError(f"unknown target score {self.score!r}; choose from: {', '.join(SCORES)}")
        if self.head is not None and self.head not in HEADS:
            raise EngineError(f"unknown head {self.head!r}; choose from: {', '.join(HEADS)}")

    # ----------------------------------------------------------------- building
    @classmethod
    def of(cls, h: ModelHandle, spec: TargetSpec = None, score: Score | None = None) -> Target:
        """A Target bound to model `h` from None (top-1), an index, a class name, "positive" /
        "negative" (single sigmoid unit) or a Target; checks the index against the model."""
        head = head_of(h)
        if isinstance(spec, Target):
            if spec.head is not None and spec.head != head:
                raise EngineError(f"target is for a {spec.head} head; model {h.name!r} has a {head} head")
            index = None if spec.index is None else _check_index(h, spec.index)
            return replace(spec, index=index, head=head, score=score or spec.score)
        index = _parse(h, spec)
        return cls(None if index < 0 else index, score or "logit", head)

    @property
    def top1(self) -> bool:
        """True when the class is the model's top-1 on the image."""
        return self.index is None

    @property
    def graph_index(self) -> int:
        """The index as the compiled functions take it: -1 for top-1."""
        return -1 if self.index is None else int(self.index)

    def _head(self) -> Head:
        if self.head is None:
            raise EngineError("target is not bound to a model; build it with Target.of(h, ...)")
        return self.head

    # ----------------------------------------------------------------- NumPy side
    def chosen(self, logits: np.ndarray) -> int:
        """The class explained for one image's logits (n,) or (1, n): the index, or the top-1."""
        if self.index is not None:
            return int(self.index)
        z = np.asarray(logits).reshape(-1)
        if self._head() == "binary":
            return int(z[0] > 0)
        return int(np.argmax(z))

    def value(self, logits: np.ndarray, index: int | None = None) -> float:
        """The score (logit or probability) of class `index` (default: chosen) for one image."""
        z = np.asarray(logits).reshape(1, -1)
        index = self.chosen(z) if index is None else int(index)
        if self.score == "probability":
            return float(self.probabilities(z)[0, index])
        if self._head() == "binary":
            return float(z[0, 0] * (1 if index == 1 else -1))
        return float(z[0, index])

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(B, num_classes) float32 class probabilities from (B, n) logits through the head."""
        z = np.asarray(logits, np.float64)
        head = self._head()
        if head == "binary":
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p, p], axis=1).astype(np.float32)
        if head == "sigmoid":
            return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    # ----------------------------------------------------------------- TensorFlow side
    def graph(self, logits: Any, target: Any) -> tuple[Any, Any]:
        """In-graph (score (B,), class (B,)) for logits (B, n) and int32 targets (B,), -1 = top-1.

        Depends only on head and score, so one compiled function serves every class index."""
        return graph_score(logits, target, self._head(), self.score)


def graph_score(logits: Any, target: Any, head: Head, score: Score = "logit") -> tuple[Any, Any]:
    """In-graph (score (B,), class (B,)) of `target` (int32 (B,), -1 = top-1) for a `head`."""
    import tensorflow as tf

    if head == "binary":
        z = logits[:, 0]
        t = tf.where(target < 0, tf.cast(z > 0, tf.int32), target)
        signed = z * tf.cast(2 * t - 1, z.dtype)
        return (tf.sigmoid(signed) if score == "probability" else signed), t
    t = tf.where(target < 0, tf.argmax(logits, axis=-1, output_type=tf.int32), target)
    if score == "probability":
        probs = tf.sigmoid(logits) if head == "sigmoid" else tf.nn.softmax(logits, axis=-1)
        return tf.gather(probs, t, axis=1, batch_dims=1), t
    return tf.gather(logits, t, axis=1, batch_dims=1), t


TargetSpec = int | str | Target | None


def _check_index(h: ModelHandle, index: Any) -> int:
    n = h.num_classes
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise EngineError(f"target must be a class index, a class name or None, not {type(index).__name__}")
    if not 0 <= int(index) < n:
        raise EngineError(f"target {int(index)} out of range: model {h.name!r} has {n} classes (0..{n - 1})")
    return int(index)


def _parse(h: ModelHandle, target: Any) -> int:
    """A class index for an int, a class name or "positive"/"negative"; -1 for None (top-1)."""
    if target is None:
        return -1
    if not isinstance(target, str):
        return _check_index(h, target)
    text = target.strip()
    if text.lstrip("-").isdigit():
        return _check_index(h, int(text))
    if text.lower() in _TOP1_WORDS:
        return -1
    names = list(h.class_names or [])
    if text in names:
        return names.index(text)
    lowered = [str(name).lower() for name in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.lower() in ("positive", "negative"):
        if h.binary:
            return 1 if text.lower() == "positive" else 0
        raise EngineError(
            f"target {text!r} is only for a single sigmoid output; model {h.name!r} has {h.num_classes} classes"
        )
    hint = f"; classes: {', '.join(names[:10])}" if names else ""
    raise EngineError(f"unknown target {target!r}{hint}")


def target_index(h: ModelHandle, target: TargetSpec) -> int:
    """A class index for `target` (int, class name, "positive"/"negative", Target); -1 for top-1."""
    return Target.of(h, target).graph_index


def target_name(h: ModelHandle, index: int) -> str | None:
    """The class name of `index`, None when the model has no names for it."""
    names = h.class_names
    return str(names[index]) if names and 0 <= index < len(names) else None
