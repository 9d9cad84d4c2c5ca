"""A loaded model as bytes, so another process or machine can load the same model itself.

A Ray worker cannot read the driver's model object, and a cluster node may not see the
driver's files; pack() turns a ModelHandle into a ModelPackage (the model file's bytes, or a
tar of a SavedModel folder, with the scaling and the trust decision), and unpack() loads it
on the other side through engine.models.load_model, so the file goes through the same checks
there. Trust travels explicitly: a file the user did not trust is loaded in Keras safe mode on
every worker too. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelLoadError
from engine.models import ModelHandle

__all__ = ["ModelPackage", "pack", "unpack"]


@dataclass(frozen=True)
class ModelPackage:
    """What a worker needs to load the model: its file (or SavedModel tar) and how it was loaded.

    spec: the driver's spec (for names and messages); filename: the file or folder name to
    restore; data: the bytes; folder: data is a tar of a SavedModel folder; trust: load with
    trust=True (only when the user trusted the file on the driver); scaling: the input scaling.
    """

    spec: str
    filename: str
    data: bytes
    folder: bool
    trust: bool
    scaling: str


def _model_file(h: ModelHandle) -> Path | None:
    """The file or folder the handle was loaded from (None: not from a file, e.g. keras:NAME)."""
    spec = str(h.spec)
    if spec.startswith("builtin:"):
        from engine import zoo

        return zoo.get(spec.split(":", 1)[1]).model_path
    if spec.startswith("keras:"):
        return None
    path = Path(spec).expanduser()
    return path if path.exists() else None


def _tar_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    return buf.getvalue()


def pack(h: ModelHandle) -> ModelPackage:
    """The handle's model as a ModelPackage (a keras:NAME model is saved to .keras bytes)."""
    path = _model_file(h)
    if path is None:
        with tempfile.TemporaryDirectory(prefix="convscope-pack-") as tmp:
            out = Path(tmp) / f"{h.name}.keras"
            try:
                h.model.save(out)
            except Exception as exc:  # noqa: BLE001 - any Keras failure becomes one line
                raise ModelLoadError(
                    f"{h.name}: cannot be sent to workers ({type(exc).__name__}: {exc})"
                ) from None
            return ModelPackage(str(h.spec), out.name, out.read_bytes(), False, h.trusted, h.scaling)
    if path.is_dir():
        return ModelPackage(str(h.spec), path.name, _tar_folder(path), True, h.trusted, h.scaling)
    return ModelPackage(str(h.spec), path.name, path.read_bytes(), False, h.trusted, h.scaling)


def unpack(pkg: ModelPackage, folder: str | os.PathLike | None = None) -> ModelHandle:
    """Load a ModelPackage: write it under `folder` (a new temporary folder when None) and load it.

    The files stay there while the handle lives (a SavedModel reads its variables lazily).
    """
    from engine.models import load_model

    root = Path(folder or tempfile.mkdtemp(prefix="convscope-model-"))
    root.mkdir(parents=True, exist_ok=True)
    name = Path(pkg.filename).name  # never a path out of the folder
    if pkg.folder:
        with tarfile.open(fileobj=io.BytesIO(pkg.data), mode="r") as tar:
            if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12: no safe extraction filter
                raise ModelLoadError("unpacking a SavedModel needs Python 3.10.12 or newer")
            tar.extractall(root, filter="data")
    else:
        (root / name).write_bytes(pkg.data)
    h = load_model(root / name, trust=pkg.trust, scaling=pkg.scaling)
    h.spec = pkg.spec
    return h
