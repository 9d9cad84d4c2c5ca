"""The on-disk scan cache: keys from model, layer and dataset identity; atomic npz files.

A finished scan is written to ``<cache>/scans/<key>.npz`` and a scan in progress
checkpoints to ``<key>.partial.npz``, so reopening a scan is instant and a
cancelled or interrupted one resumes where it stopped. Files are plain npz
(arrays plus one JSON string), read with allow_pickle=False.

The cache folder is $CONVSCOPE_CACHE_DIR, else ~/.cache/convscope. The key hashes
the model identity (spec, scaling, input shape and either the model file's
resolved path, size and modification time, or a digest of the weights the layer
depends on when there is no file, e.g. keras:VGG16?weights=none), the layer path,
k and the dataset's identity (engine.dataset.sources), plus a format version.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.models import ModelHandle

FORMAT_VERSION = 1

__all__ = ["cache_dir", "clear", "model_identity", "read_npz", "scan_key", "scans_dir", "write_npz"]


def cache_dir() -> Path:
    """$CONVSCOPE_CACHE_DIR, else $XDG_CACHE_HOME/convscope, else ~/.cache/convscope."""
    base = os.environ.get("CONVSCOPE_CACHE_DIR")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "convscope"


def scans_dir() -> Path:
    return cache_dir() / "scans"


def _file_stat(path: Path) -> list[Any]:
    path = path.resolve()
    if path.is_dir():  # a SavedModel folder: its graph and variable index
        parts = [path / "saved_model.pb", path / "variables" / "variables.index"]
        return [str(path)] + [[p.stat().st_size, p.stat().st_mtime_ns] for p in parts if p.exists()]
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def model_file(h: ModelHandle) -> Path | None:
    """The file a handle was loaded from, or None (keras: applications, in-memory models)."""
    spec = str(getattr(h, "spec", ""))
    if spec.startswith("builtin:"):
        from engine import zoo

        try:
            return zoo.get(spec.split(":", 1)[1].split("?", 1)[0]).model_path
        except Exception:  # noqa: BLE001 - unknown name: fall back to the weights digest
            return None
    if spec.startswith("keras:") or not spec:
        return None
    path = Path(spec).expanduser()
    return path if path.exists() else None


def weights_digest(variables: list[Any]) -> str:
    """A digest of the values of the given Keras variables."""
    digest = hashlib.sha256()
    for var in variables:
        arr = np.asarray(var.numpy() if hasattr(var, "numpy") else var)
        digest.update(f"{getattr(var, 'path', '')}{arr.shape}{arr.dtype.str}".encode())
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()[:32]


def model_identity(h: ModelHandle, layer: str | None = None) -> dict[str, Any]:
    """What identifies a model's activations: spec, scaling, input shape and its file (or weights)."""
    ident: dict[str, Any] = {
        "spec": str(h.spec),
        "name": str(h.name),
        "scaling": str(h.scaling),
        "input_shape": [int(v) for v in h.input_shape],
    }
    file = model_file(h)
    if file is not None:
        ident["file"] = _file_stat(file)
    else:
        variables = h.submodel([layer]).weights if layer else h.model.weights
        ident["weights"] = weights_digest(list(variables))
    return ident


def scan_key(
    h: ModelHandle, layer: str, k: int, source_identity: str, extra: Mapping[str, Any] | None = None
) -> str:
    """The cache key of a scan of `layer` of model `h` over a dataset of the given identity."""
    payload = {
        "v": FORMAT_VERSION,
        "model": model_identity(h, layer),
        "layer": layer,
        "k": int(k),
        "source": source_identity,
        **(dict(extra) if extra else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:40]


def write_npz(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write arrays plus a JSON `meta` to `path` atomically (a temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; the scan cache stores plain arrays only")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f, __meta__=np.array(json.dumps(dict(meta))), **{k: np.asarray(v) for k, v in arrays.items()}
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(arrays, meta) from a file written by write_npz, or None when absent or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "__meta__"}
            meta = json.loads(str(npz["__meta__"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None
    except Exception:  # noqa: BLE001 - a damaged zip is a cache miss, never an error
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        return None
    return arrays, meta


def result_path(key: str) -> Path:
    return scans_dir() / f"{key}.npz"


def checkpoint_path(key: str) -> Path:
    return scans_dir() / f"{key}.partial.npz"


def remove(path: Path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def clear() -> int:
    """Delete every cached scan and checkpoint; returns how many files were removed."""
    count = 0
    folder = scans_dir()
    if folder.is_dir():
        for p in folder.glob("*.npz"):
            remove(p)
            count += 1
    return count
