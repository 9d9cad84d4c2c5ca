"""Convscope engine: the Qt-free public API.

Importing this package is cheap: TensorFlow and Keras load on first use of a
function that needs them, so a GUI can import engine on its main thread and do
the heavy import on its engine thread. See ../shared/ARCHITECTURE.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.errors import Cancelled as Cancelled
from engine.errors import EngineError as EngineError
from engine.errors import ImageLoadError as ImageLoadError
from engine.errors import LayerNotFound as LayerNotFound
from engine.errors import ModelLoadError as ModelLoadError
from engine.errors import UnsafeModel as UnsafeModel

# public name -> module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "load_model": "engine.models",
    "ModelHandle": "engine.models",
    "LayerInfo": "engine.models",
    "builtin_models": "engine.zoo",
    "load_image": "engine.images",
    "sample_images": "engine.images",
    "predict": "engine.activations",
    "feature_maps": "engine.activations",
    "filters": "engine.weights",
    "receptive_field": "engine.receptive_field",
    "ReceptiveField": "engine.receptive_field",
    "render": "engine.render",
    "export": "engine.export",
    "jobs": "engine.jobs",
    "cam": "engine.attribution",
    "saliency": "engine.attribution",
    "CamResult": "engine.attribution",
    "Target": "engine.attribution",
    "metrics": "engine.attribution.metrics",
    "maximize": "engine.maximize",
    "dream": "engine.maximize",
    "Step": "engine.maximize",
    "scan": "engine.dataset",
    "unit_activity": "engine.maximize.units",
    "UnitActivity": "engine.maximize.units",
    "natural_images": "engine.maximize.units",
}

__all__ = sorted(
    [*_LAZY, "EngineError", "ModelLoadError", "UnsafeModel", "ImageLoadError", "LayerNotFound", "Cancelled"]
)


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.rsplit(".", 1)[-1] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
