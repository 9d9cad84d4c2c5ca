"""PNG / TIFF / GIF / NPY export with a JSON sidecar of every setting; atomic, never overwriting silently.

Every writer stages the data file and its ``.json`` sidecar as hidden temp files in
the target folder (written, flushed, fsynced) before either becomes visible, then
moves them into place. An error while staging leaves nothing behind and the old
files untouched; an error while committing the sidecar removes the freshly committed
data file, so a reader sees both files or neither. Without ``overwrite=True`` an
existing target is refused, also when it appears while the export runs (the final
step is ``os.link``, which fails instead of replacing).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import numpy as np

from engine.common import unit_to_uint8
from engine.errors import EngineError

IMAGE_FORMATS: frozenset[str] = frozenset({".png", ".tif", ".tiff"})
EXPORT_FORMATS: frozenset[str] = frozenset({".png", ".tif", ".tiff", ".gif", ".npy"})
MAX_LIST_ELEMENTS = 4096  # larger arrays in settings are summarised in the sidecar, not listed

Writer = Callable[[BinaryIO], None] | bytes
PathArg = str | os.PathLike[str]
Settings = Mapping[str, Any] | None  # the figure's settings, kept in the sidecar
Written = tuple[Path, Path]  # (the file, its sidecar)


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("convscope")
    except (ImportError, PackageNotFoundError):  # pragma: no cover - depends on installation
        return "0.1.0"
    except Exception:  # pragma: no cover - broken metadata must not break exports
        return "0.1.0"


class ExportExists(EngineError):
    """The export target exists and overwrite was not requested."""

    def __init__(self, path: PathArg) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} exists; pass overwrite=True (CLI: --overwrite)")


# --------------------------------------------------------------------------- atomic files


def _umask() -> int:
    """The process umask without changing it (Linux /proc), else the common 0o022."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _check_folder(path: Path) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise EngineError(f"cannot write {path}: folder {parent} does not exist")
    if path.is_dir():
        raise EngineError(f"cannot write {path}: it is a folder")


def _stage(path: Path, data: Writer) -> Path:
    """Write data to a hidden temp file beside path (flushed and fsynced); return the temp path."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                data(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move a staged temp file to path; without overwrite, never replace a file that exists now.

    The temp file is gone afterwards whether or not this succeeds.
    """
    try:
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # atomic: fails if path exists, even if it appeared just now
        except FileExistsError:
            raise ExportExists(path) from None
        except OSError:
            # the file system has no hard links: claim the name exclusively, then replace
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                raise ExportExists(path) from None
            os.close(fd)
            try:
                os.replace(tmp, path)
            except BaseException:
                _unlink(path)
                raise
    finally:
        _unlink(tmp)


def atomic_write(path: PathArg, write_fn: Writer, overwrite: bool = False) -> Path:
    """Write a file atomically: the bytes (or what write_fn(f) writes) appear all at once or not at all.

    Writes to a temp file in the same folder, fsyncs it and moves it into place. On any
    exception the temp file is removed and no partial target is left. An existing
    target raises :class:`ExportExists` unless overwrite is True. Returns the path.
    """
    target = Path(path)
    _check_folder(target)
    if not overwrite and os.path.lexists(target):
        raise ExportExists(target)
    tmp = _stage(target, write_fn)
    _commit(tmp, target, overwrite)
    _fsync_dir(target.parent)
    return target


def sidecar_path(path: PathArg) -> Path:
    """The JSON sidecar beside an export: "fig.png" -> "fig.png.json"."""
    p = Path(path)
    return p.with_name(p.name + ".json")


# --------------------------------------------------------------------------- settings -> JSON


def _jsonable(value: Any, where: str = "settings") -> Any:
    """Plain JSON data from settings that may hold numpy scalars/arrays, tuples, Paths, enums, dataclasses."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else str(f)  # "nan", "inf", "-inf": JSON has no such numbers
    if isinstance(value, (complex, np.complexfloating)):
        return [_jsonable(value.real, where), _jsonable(value.imag, where)]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, where)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)
        }
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise EngineError(f"{where}: object arrays cannot be written to the sidecar")
        if value.size <= MAX_LIST_ELEMENTS:
            return _jsonable(value.tolist(), where)
        finite = value[np.isfinite(value)] if np.issubdtype(value.dtype, np.number) else value
        summary: dict[str, Any] = {"array_shape": list(value.shape), "dtype": str(value.dtype)}
        if np.issubdtype(value.dtype, np.number) and finite.size:
            summary.update(min=_jsonable(finite.min()), max=_jsonable(finite.max()))
        return summary
    if isinstance(value, Mapping):
        return {str(_jsonable(k, where)): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(items)]
    raise EngineError(f"{where}: a {type(value).__name__} cannot be written to the sidecar")


def _sidecar_bytes(path: Path, settings: Settings) -> bytes:
    settings = dict(settings or {})
    clean = _jsonable(settings)
    doc = {
        "convscope": _version(),
        "created": _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds"),
        "file": path.name,
        "settings": clean,
        "command": clean.get("command"),
    }
    return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _write_with_sidecar(path: PathArg, data: Writer, settings: Settings, overwrite: bool) -> Written:
    """Both files or neither: stage both, then commit the data file and the sidecar."""
    target = Path(path)
    side = sidecar_path(target)
    _check_folder(target)
    if not overwrite:
        for p in (target, side):
            if os.path.lexists(p):
                raise ExportExists(p)
    side_bytes = _sidecar_bytes(target, settings)  # bad settings fail before any file is touched
    tmp_data = _stage(target, data)
    try:
        tmp_side = _stage(side, side_bytes)
    except BaseException:
        _unlink(tmp_data)
        raise
    try:
        _commit(tmp_data, target, overwrite)
    except BaseException:
        _unlink(tmp_side)
        raise
    try:
        _commit(tmp_side, side, overwrite)
    except BaseException:
        _unlink(target)
        raise
    _fsync_dir(target.parent)
    return target, side


def _suffix(path: PathArg, allowed: Sequence[str] | frozenset[str], what: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        raise EngineError(
            f"cannot write {what} to {Path(path).name!r}: use one of {', '.join(sorted(allowed))}"
        )
    return suffix


def _image_uint8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) from uint8 or float [0, 1] data; (H, W, 1) becomes (H, W)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or a.size == 0:
        raise EngineError(f"{what} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if np.issubdtype(a.dtype, np.floating):
        return np.ascontiguousarray(unit_to_uint8(a))
    raise EngineError(f"{what} must be uint8 or float in [0, 1], got dtype {a.dtype}")


# --------------------------------------------------------------------------- writers


def write_image(path: PathArg, image: np.ndarray, settings: Settings, overwrite: bool = False) -> Written:
    """Write a PNG or TIFF (by suffix) and its JSON sidecar; returns (image path, sidecar path).

    image: uint8 or float [0, 1], grey (H, W) / (H, W, 1), RGB or RGBA. The sidecar holds
    {"convscope", "created", "file", "settings", "command"}; settings["command"], when
    given, is the CLI line that reproduces the figure.
    """
    from PIL import Image

    suffix = _suffix(path, IMAGE_FORMATS, "an image")
    pixels = _image_uint8(image)
    fmt = "PNG" if suffix == ".png" else "TIFF"

    def write(f: BinaryIO) -> None:
        Image.fromarray(pixels).save(f, format=fmt)

    return _write_with_sidecar(path, write, settings, overwrite)


def write_gif(
    path: PathArg,
    frames: Sequence[np.ndarray] | np.ndarray,
    settings: Settings,
    duration_ms: int = 80,
    loop: int = 0,
    overwrite: bool = False,
) -> Written:
    """Write an animated GIF (e.g. the frames of a maximization run) and its sidecar.

    frames: uint8 RGB (or float [0, 1]) images of one size; loop=0 repeats forever.
    GIF has 256 colours per frame, so colours are quantized; Pillow merges a frame
    identical to the previous one into it (its duration adds up).
    """
    from PIL import Image

    _suffix(path, {".gif"}, "an animation")
    arrays = [_image_uint8(fr, f"frame {k}") for k, fr in enumerate(frames)]
    if not arrays:
        raise EngineError("an animation needs at least one frame")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise EngineError(f"all frames must have one size, got {sorted(shapes)}")
    if int(duration_ms) < 1 or int(loop) < 0:
        raise EngineError(f"duration_ms must be positive and loop >= 0, got {duration_ms}, {loop}")
    images = [Image.fromarray(a[:, :, :3] if a.ndim == 3 else a).convert("RGB") for a in arrays]

    def write(f: BinaryIO) -> None:
        images[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=int(duration_ms),
            loop=int(loop),
        )

    return _write_with_sidecar(path, write, settings, overwrite)


def write_npy(path: PathArg, array: np.ndarray, settings: Settings, overwrite: bool = False) -> Written:
    """Write the raw numbers (maps, heatmaps, weights) as .npy, without pickle, and its sidecar."""
    _suffix(path, {".npy"}, "an array")
    arr = np.asarray(array)
    if arr.dtype.hasobject:
        raise EngineError("cannot write an object array to .npy (pickle is off); convert it to numbers first")

    def write(f: BinaryIO) -> None:
        np.save(f, arr, allow_pickle=False)

    return _write_with_sidecar(path, write, settings, overwrite)


def write_bytes(path: PathArg, data: bytes, settings: Settings, overwrite: bool = False) -> Written:
    """Write ready-made file bytes (a composed figure) and their sidecar, atomically."""
    return _write_with_sidecar(path, bytes(data), settings, overwrite)


def read_sidecar(path: PathArg) -> dict[str, Any]:
    """The sidecar dict of an export, given the exported file ("fig.png") or the sidecar itself."""
    p = Path(path)
    side = p if p.suffix.lower() == ".json" else sidecar_path(p)
    try:
        text = side.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EngineError(f"no sidecar {side} next to the export") from None
    except OSError as e:
        raise EngineError(f"cannot read sidecar {side}: {e.strerror or e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise EngineError(f"sidecar {side} is not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(doc, dict):
        raise EngineError(f"sidecar {side} does not hold a JSON object")
    return doc
