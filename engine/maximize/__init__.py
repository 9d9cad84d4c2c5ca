"""Activation maximization and DeepDream: gradient ascent in input space, streamed step by step.

``maximize(h, objective, ...)`` and ``dream(h, img, layers, ...)`` are generators of
:class:`Step` (``images`` float32 (B, H, W, C) in display range [0, 1]). Importing this
package does not import TensorFlow; the modules that need it load on first use.

The package object itself is callable and forwards to :func:`maximize`, because
``engine.maximize`` may name either this package or the function depending on import
order (importing ``engine.maximize.cli`` binds the package to ``engine.maximize``):
``engine.maximize(h, "conv3:5")`` works either way.

Objectives are composable objects: ``engine.maximize.channel("conv3", 5) - 0.1 *
engine.maximize.layer("conv3")``; strings in the grammar parse into the same objects.

Modules: objectives (objects, string grammar -> per-sample loss), objective_terms (one
function per objective: channel, neuron, layer, class_logit, direction, diversity), params (pixel / Fourier
parameterizations and starting images), transforms (jitter, rotate, scale, pad),
regularizers, optimizers (normalized gradient, Adam, schedules), run (the maximize loop),
extras (what a finished run reports besides its images), deepdream (octaves, detail re-injection, tiled random-shift gradients), units
(``unit_activity``: per-unit mean/max activation on real images, dead units), jobs (engine
job kinds "maximize", "dream" and "unit_activity") and cli (``main.py export maximize|dream``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from engine.maximize.common import Control, Step

__all__ = [
    "Control",
    "Expr",
    "Step",
    "UnitActivity",
    "analytic_maximizer",
    "channel",
    "class_logit",
    "direction",
    "diversity",
    "dream",
    "layer",
    "maximize",
    "natural_images",
    "neuron",
    "parse",
    "parse_objective",
    "unit_activity",
]

_LAZY = {
    "maximize": "engine.maximize.run",
    "analytic_maximizer": "engine.maximize.extras",
    "dream": "engine.maximize.deepdream",
    "parse_objective": "engine.maximize.objectives",
    "parse": "engine.maximize.objectives",
    "Expr": "engine.maximize.objectives",
    "channel": "engine.maximize.objective_terms",
    "neuron": "engine.maximize.objective_terms",
    "layer": "engine.maximize.objective_terms",
    "class_logit": "engine.maximize.objective_terms",
    "direction": "engine.maximize.objective_terms",
    "diversity": "engine.maximize.objective_terms",
    "unit_activity": "engine.maximize.units",
    "UnitActivity": "engine.maximize.units",
    "natural_images": "engine.maximize.units",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.maximize' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


class _CallablePackage(types.ModuleType):
    """Module type whose instances forward calls to engine.maximize.run.maximize."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from engine.maximize.run import maximize

        return maximize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
