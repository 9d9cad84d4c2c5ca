"""Plain-data pieces shared by the maximize and dream loops (no TensorFlow here)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import Cancelled, EngineError
from engine.jobs import CancelToken

STEPS_ENV = "CONVSCOPE_MAX_STEPS"


@dataclass(frozen=True)
class Step:
    """One frame of a gradient-ascent run.

    images: float32 (B, H, W, C) in display range [0, 1], one image per objective of the batch.
    loss: the objective's value (mean over the batch) at this step; losses: per image.
    info: extras of the run (class probability, prediction, crop box, analytic maximizer ...).
    """

    step: int
    total: int
    loss: float
    images: np.ndarray
    losses: tuple[float, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)


class Control(CancelToken):
    """Live controls of a loop run outside a job (scripts, tests): pause()/resume() hold it between
    steps and lr_scale multiplies the step size from the next step on. A job's own CancelToken
    is its control (the engine passes control=token), so this only adds the starting lr_scale."""

    def __init__(self, lr_scale: float = 1.0) -> None:
        super().__init__()
        self.lr_scale = float(lr_scale)


def capped_steps(steps: int) -> int:
    """`steps`, capped by the CONVSCOPE_MAX_STEPS environment variable (tests set it)."""
    steps = int(steps)
    if steps < 1:
        raise EngineError(f"steps must be at least 1, got {steps}")
    cap = os.environ.get(STEPS_ENV)
    if cap:
        try:
            steps = min(steps, max(1, int(cap)))
        except ValueError:
            raise EngineError(f"{STEPS_ENV} must be an integer, got {cap!r}") from None
    return steps


def check_token(token: Any) -> None:
    """Raise Cancelled when a CancelToken (or anything with .cancelled) is set."""
    if token is not None and getattr(token, "cancelled", False):
        raise Cancelled()


def parse_spec(item: Any, what: str) -> tuple[str, tuple[float, ...]]:
    """("name", (numbers...)) from "name", "name:1:2", ("name", 1, 2) or {"name": n}."""
    if isinstance(item, str):
        name, *rest = item.strip().split(":")
        args = rest
    elif isinstance(item, Mapping) and len(item) == 1:
        name, value = next(iter(item.items()))
        args = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    elif isinstance(item, Sequence) and item and isinstance(item[0], str):
        name, *args = item
    else:
        raise EngineError(f"cannot read {what} {item!r}; write it as 'name' or 'name:value'")
    try:
        numbers = tuple(float(a) for a in args if str(a).strip() != "")
    except (TypeError, ValueError):
        raise EngineError(f"{what} {item!r} has a value that is not a number") from None
    return str(name).strip().lower(), numbers


def as_list(value: Any) -> list[Any]:
    """None -> [], a string -> [it] (split on commas/whitespace when it has several items), a sequence -> list."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
        return parts
    if isinstance(value, Mapping):
        return [{k: v} for k, v in value.items()]
    return list(value)


class FrameTimer:
    """Chooses `every` (steps per frame) so frames arrive at about `fps` per second."""

    def __init__(self, every: int | None, fps: float = 20.0) -> None:
        self.fixed = int(every) if every else 0
        if every is not None and self.fixed < 0:
            raise EngineError(f"every must be a positive number of steps, got {every}")
        self.fps = fps
        self.last = time.perf_counter()
        self.count = 0

    def due(self, step: int, total: int) -> bool:
        if step >= total or step == 0:
            self.last = time.perf_counter()
            return True
        if self.fixed:
            return step % self.fixed == 0
        now = time.perf_counter()
        if now - self.last >= 1.0 / self.fps:
            self.last = now
            return True
        return False
