"""Gradient-ascent optimizers and step-size schedules, per image so batches stay independent.

"normalized": x += step * g / rms(g), the RMS taken over each image's own gradient (the
classic Keras recipe). "adam": Adam on the variable (element-wise, so per image too).

`lr` everywhere is *relative*: 1.0 is the recommended step for the chosen optimizer and
parameterization (BASE_STEPS below: for pixels, 1% of the display range per step); 2.0
doubles it. Schedules scale it over the run: "constant", "linear" (to 10%), "cosine"
(to 5%), "exp" (to 10%), "warmup" (linear rise over the first 10% of steps).
"""

from __future__ import annotations

import math
from typing import Any

from engine.errors import EngineError

OPTIMIZERS = ("normalized", "adam")
SCHEDULES = ("constant", "linear", "cosine", "exp", "warmup")
BASE_STEPS = {
    ("normalized", "pixel"): 0.01,
    ("normalized", "fourier"): 0.03,
    ("adam", "pixel"): 0.01,
    ("adam", "fourier"): 0.05,
}


def schedule_factor(schedule: str, step: int, total: int) -> float:
    """The schedule's multiplier of the step size at `step` (0-based) of `total`."""
    t = step / max(1, total - 1)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return 1.0 - 0.9 * t
    if schedule == "cosine":
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "exp":
        return 0.1**t
    if schedule == "warmup":
        return min(1.0, (step + 1) / max(1.0, 0.1 * total))
    raise EngineError(f"unknown schedule {schedule!r}; choose from: {', '.join(SCHEDULES)}")


def check(optimizer: str, schedule: str, lr: float) -> tuple[str, str]:
    name = str(optimizer).lower()
    if name in ("sgd", "normalized_gradient", "rms"):
        name = "normalized"
    if name not in OPTIMIZERS:
        raise EngineError(f"unknown optimizer {optimizer!r}; choose from: {', '.join(OPTIMIZERS)}")
    sched = str(schedule).lower()
    schedule_factor(sched, 0, 2)
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise EngineError(f"step size lr must be a positive number, got {lr!r}")
    return name, sched


class Optimizer:
    """Applies one ascent update to a variable with the batch on axis 0."""

    def __init__(self, name: str, var: Any, base: float) -> None:
        import tensorflow as tf

        self.name = name
        self.var = var
        self.base = float(base)
        self.axes = list(range(1, len(var.shape)))
        if name == "adam":
            self.m = tf.Variable(tf.zeros_like(var), trainable=False)
            self.v = tf.Variable(tf.zeros_like(var), trainable=False)
            self.t = tf.Variable(0.0, trainable=False)

    def reset(self) -> None:
        """Forget Adam's moments (a new run starts)."""
        if self.name == "adam":
            self.m.assign(self.m * 0.0)
            self.v.assign(self.v * 0.0)
            self.t.assign(0.0)

    def apply(self, grad: Any, lr: Any) -> None:
        """Ascend along grad with relative step size lr (a tf scalar)."""
        import tensorflow as tf

        step = lr * self.base
        if self.name == "normalized":
            rms = tf.sqrt(tf.reduce_mean(tf.square(grad), axis=self.axes, keepdims=True))
            self.var.assign_add(step * grad / (rms + 1e-12))
            return
        b1, b2, eps = 0.9, 0.999, 1e-8
        self.t.assign_add(1.0)
        self.m.assign(b1 * self.m + (1 - b1) * grad)
        self.v.assign(b2 * self.v + (1 - b2) * tf.square(grad))
        m_hat = self.m / (1 - tf.pow(b1, self.t))
        v_hat = self.v / (1 - tf.pow(b2, self.t))
        self.var.assign_add(step * m_hat / (tf.sqrt(v_hat) + eps))
