"""Input scalings: how a model expects pixel values, and per-file memory of the user's choice.

Images inside the engine are float32 in [0, 1]. Each model carries one of these
scalings; to_model_range maps [0, 1] images into it and from_model_range back
(for showing optimized inputs). Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from engine.errors import EngineError

SCALINGS: dict[str, str] = {
    "unit": "[0, 1]",
    "byte": "[0, 255]",
    "signed": "[-1, 1]",
    "caffe": "keras.applications 'caffe' preprocess_input: BGR, ImageNet mean subtracted, [0, 255]",
    "torch": "keras.applications 'torch' preprocess_input: ImageNet mean/std on [0, 1]",
}
_ALIASES = {"0-1": "unit", "0,1": "unit", "0-255": "byte", "255": "byte", "-1-1": "signed", "tf": "signed"}
_MEAN_RGB = np.array([0.485, 0.456, 0.406], np.float32)
_STD_RGB = np.array([0.229, 0.224, 0.225], np.float32)
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def check_scaling(name: str) -> str:
    """Canonical scaling name, or EngineError listing the choices."""
    key = _ALIASES.get(name, name)
    if key not in SCALINGS:
        raise EngineError(f"unknown input scaling {name!r}; choose from: {', '.join(SCALINGS)}")
    return key


def to_model_range(x: np.ndarray, scaling: str) -> np.ndarray:
    """Map float images in [0, 1] (..., C) to the model's input range."""
    x = np.asarray(x, np.float32)
    if scaling == "unit":
        return x
    if scaling == "byte":
        return x * 255.0
    if scaling == "signed":
        return x * 2.0 - 1.0
    if scaling == "caffe":
        if x.shape[-1] != 3:
            return x * 255.0 - _CAFFE_MEAN_BGR.mean()
        return x[..., ::-1] * 255.0 - _CAFFE_MEAN_BGR
    if scaling == "torch":
        if x.shape[-1] != 3:
            return (x - _MEAN_RGB.mean()) / _STD_RGB.mean()
        return (x - _MEAN_RGB) / _STD_RGB
    raise EngineError(f"unknown input scaling {scaling!r}")


def from_model_range(x: np.ndarray, scaling: str) -> np.ndarray:
    """Inverse of to_model_range: model-range values back to [0, 1] display range (not clipped)."""
    x = np.asarray(x, np.float32)
    if scaling == "unit":
        return x
    if scaling == "byte":
        return x / 255.0
    if scaling == "signed":
        return (x + 1.0) / 2.0
    if scaling == "caffe":
        if x.shape[-1] != 3:
            return (x + _CAFFE_MEAN_BGR.mean()) / 255.0
        return ((x + _CAFFE_MEAN_BGR) / 255.0)[..., ::-1]
    if scaling == "torch":
        if x.shape[-1] != 3:
            return x * _STD_RGB.mean() + _MEAN_RGB.mean()
        return x * _STD_RGB + _MEAN_RGB
    raise EngineError(f"unknown input scaling {scaling!r}")


def model_range(scaling: str, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per channel of the model input that [0, 1] images map to."""
    lo = to_model_range(np.zeros((channels,), np.float32), scaling)
    hi = to_model_range(np.ones((channels,), np.float32), scaling)
    return np.minimum(lo, hi), np.maximum(lo, hi)


def _settings_file() -> Path:
    base = os.environ.get("CONVSCOPE_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "convscope"
    )
    return Path(base) / "scaling.json"


def remembered_scaling(path: str | os.PathLike) -> str | None:
    """The scaling last chosen for this model file, if any."""
    try:
        data = json.loads(_settings_file().read_text())
    except (OSError, ValueError):
        return None
    value = data.get(str(Path(path).resolve()))
    return value if value in SCALINGS else None


def remember_scaling(path: str | os.PathLike, scaling: str) -> None:
    """Store the user's scaling for this model file (best effort, atomic)."""
    file = _settings_file()
    try:
        data = json.loads(file.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data[str(Path(path).resolve())] = check_scaling(scaling)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, file)
    except OSError:
        pass
