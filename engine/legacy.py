"""Keras 2 era files (.h5 and SavedModel metadata) rebuilt with Keras 3.

Keras 2 wrote configs with keys Keras 3 layers no longer accept (SeparableConv2D's
`groups` and `kernel_*`, tuples as {"class_name": "__tuple__"}): we drop what a
layer's constructor cannot take, then build the model and load its weights with
Keras' own legacy readers.
"""

from __future__ import annotations

import inspect
from functools import cache
from pathlib import Path
from typing import Any

_SHAPE_KEYS = {"input_shape", "input_dim", "batch_input_shape", "batch_shape", "batch_size"}


@cache
def _accepted(class_name: str) -> frozenset[str] | None:
    """Keyword arguments a keras.layers class accepts, or None when unknown (leave its config alone)."""
    import keras

    cls = getattr(keras.layers, class_name, None)
    if not isinstance(cls, type):
        return None
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            names.update(p for p in inspect.signature(init).parameters if p != "self")
        except (TypeError, ValueError):
            return None
    return frozenset(names | _SHAPE_KEYS)


def sanitize(config: Any) -> Any:
    """A copy of a Keras 2 model config that Keras 3 can deserialize."""
    if isinstance(config, list):
        return [sanitize(v) for v in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "__tuple__" and "items" in config:
        return [sanitize(v) for v in config["items"]]
    out = {k: sanitize(v) for k, v in config.items()}
    inner = out.get("config")
    cls = out.get("class_name")
    if isinstance(cls, str) and isinstance(inner, dict) and cls not in ("Functional", "Sequential", "Model"):
        accepted = _accepted(cls)
        if accepted is not None:
            out["config"] = {k: v for k, v in inner.items() if k in accepted}
    return out


def load_h5(path: Path, safe_mode: bool = True) -> Any:
    """Load a .h5 model file written by Keras 2 or Keras 3."""
    import h5py
    from keras.src.legacy.saving import json_utils, legacy_h5_format, saving_options, saving_utils
    from keras.src.saving import serialization_lib

    with h5py.File(path, "r") as f:
        raw = f.attrs.get("model_config")
        if raw is None:
            raise ValueError("no model config in file")
        if hasattr(raw, "decode"):
            raw = raw.decode("utf-8")
        config = sanitize(json_utils.decode(raw))
        with (
            saving_options.keras_option_scope(use_legacy_config=True),
            serialization_lib.SafeModeScope(safe_mode),
        ):
            model = saving_utils.model_from_config(config)
            group = f["model_weights"] if "model_weights" in f else f
            legacy_h5_format.load_weights_from_hdf5_group(group, model)
    return model


def model_from_keras2_config(meta: dict[str, Any]) -> Any:
    """Build (without weights) a model from Keras 2 SavedModel metadata {class_name, config}."""
    from keras.src.legacy.saving import saving_options, saving_utils

    config = sanitize({"class_name": meta["class_name"], "config": meta["config"]})
    with saving_options.keras_option_scope(use_legacy_config=True):
        return saving_utils.model_from_config(config)
