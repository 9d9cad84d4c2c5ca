"""SavedModel folders.

A SavedModel written by Keras 2 (`tf.keras` `model.save(folder)`) keeps its
architecture in keras_metadata.pb: we rebuild the layers from that config with
Keras 3 and restore the weights from the checkpoint, so every inner layer can be
inspected. Any other SavedModel (Keras 3 `model.export`, plain tf.Module) is
wrapped as one opaque layer: predictions work, inner layers are not visible.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import ModelLoadError


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field_number, wire_type, value) of a protobuf message (enough for keras_metadata.pb)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError("unsupported protobuf wire type")
        yield number, wire, value


def keras2_root_metadata(folder: Path) -> dict[str, Any] | None:
    """The root object's metadata (class_name, config) from keras_metadata.pb, or None."""
    file = folder / "keras_metadata.pb"
    if not file.is_file():
        return None
    for number, wire, node in _fields(file.read_bytes()):
        if number != 1 or wire != 2:
            continue
        info = {n: v for n, w, v in _fields(node) if w == 2}
        if info.get(3, b"") == b"root" and 5 in info:
            return json.loads(info[5].decode("utf-8"))
    return None


def _rebuild_keras2(folder: Path, meta: dict[str, Any]) -> Any:
    """Rebuild a Keras 2 model from its metadata config and restore its checkpointed weights."""
    import tensorflow as tf

    from engine.legacy import model_from_keras2_config

    model = model_from_keras2_config(meta)
    reader = tf.train.load_checkpoint(str(folder / "variables" / "variables"))
    keys = set(reader.get_variable_to_shape_map())

    def restore(layer: Any, prefix: str) -> None:
        weighted = [sub for sub in layer.layers if sub.weights] if hasattr(layer, "layers") else []
        if weighted and hasattr(layer, "layers"):
            for i, sub in enumerate(weighted):
                restore(sub, f"{prefix}layer_with_weights-{i}/")
            return
        for var in layer.weights:
            attr = var.name.rsplit("/", 1)[-1].split(":")[0]
            key = f"{prefix}{attr}/.ATTRIBUTES/VARIABLE_VALUE"
            if key not in keys:
                raise ModelLoadError(f"{folder.name}: checkpoint has no value for {layer.name}/{attr}")
            var.assign(reader.get_tensor(key))

    restore(model, "")
    return model


def _opaque(folder: Path) -> Any:
    import keras
    import tensorflow as tf

    loaded = tf.saved_model.load(str(folder))
    sigs = getattr(loaded, "signatures", {})
    if "serving_default" not in sigs:
        raise ModelLoadError(f"{folder.name}: SavedModel has no serving_default signature")
    specs = list(sigs["serving_default"].structured_input_signature[1].values())
    if len(specs) != 1:
        raise ModelLoadError(
            f"{folder.name}: SavedModel has {len(specs)} inputs; multi-input models are not supported"
        )
    inp = keras.Input(shape=tuple(specs[0].shape[1:]), name="image")
    out = keras.layers.TFSMLayer(str(folder), call_endpoint="serving_default", name="saved_model")(inp)
    if isinstance(out, dict):
        out = out[sorted(out)[0]]
    return keras.Model(inp, out, name=folder.name)


def load_savedmodel(folder: Path) -> Any:
    """A Keras model from a SavedModel folder: fully rebuilt when it came from Keras 2, opaque otherwise."""
    meta = keras2_root_metadata(folder)
    if meta and meta.get("class_name") in ("Sequential", "Functional", "Model"):
        return _rebuild_keras2(folder, meta)
    return _opaque(folder)
