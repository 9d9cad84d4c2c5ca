"""Dataset sources for scans: a folder, a list of files, the built-in digits and generated shapes.

A source is an indexable set of images with optional integer labels. Every source
loads one image at a time (``load(i) -> (image, label)``), so a scan streams the
set through tf.data and never holds it all in memory; ``identity()`` is a digest of
what the set holds (paths, sizes and modification times; generator settings), the
dataset part of a scan's cache key.

Spec strings (what the CLI and the GUI pass):

    path/to/folder                        every image below it, recursively; labels from the first
                                          level of sub-folder names (images directly in the folder
                                          are unlabelled)
    path/to/list.txt                      a list of image paths, one per line (relative to the list)
    path/to/image.png                     a single image
    builtin:digits[?n=N]                  resources/data/mnist_5k.npz with its labels (first N)
    builtin:shapes[?n=N&seed=S&size=Z]    N generated shapes (default 1000, seed 1234, 128 px)
    s3://bucket/dir, gs://, hdfs://, file:// every image below a URI, read through pyarrow's filesystem
                                          layer (engine.dataset.arrow_source; labels as for a folder)

A list or tuple of paths is a list of files. ``ArraySource`` wraps in-memory arrays
for scripts and tests. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from engine.common import unit_to_uint8
from engine.errors import EngineError, ImageLoadError
from engine.images import IMAGE_SUFFIXES, array_to_image, load_image

__all__ = [
    "ArraySource",
    "DigitsSource",
    "FileListSource",
    "FolderSource",
    "ShapesSource",
    "Source",
    "open_source",
    "source_spec",
]

LIST_SUFFIXES = (".txt", ".lst", ".list")
SHAPES_DEFAULT_N = 1000
SHAPES_DEFAULT_SEED = 1234


class Source:
    """An indexable image set. Subclasses set spec, class_names and implement __len__, name, load."""

    spec: str = ""
    class_names: list[str] = []
    vectorized: bool = False  # True when load_batch works (in-memory arrays)

    def __len__(self) -> int:
        raise NotImplementedError

    def name(self, index: int) -> str:
        """A short human-readable name of image `index` (a relative path, "digits #12")."""
        return f"#{index}"

    def load(self, index: int) -> tuple[np.ndarray, int]:
        """(float32 (H, W, C) in [0, 1], label or -1); raises ImageLoadError for a bad image."""
        raise NotImplementedError

    def load_batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """A vectorized load of many images of one size (uint8 or float (B, H, W[, C]), labels), or None."""
        return None

    def label_hint(self, index: int) -> int:
        """The label of image `index` without decoding it, when the source knows it (else -1)."""
        return -1

    def identity(self) -> str:
        """A digest of what the set holds; changes when any image is added, removed or modified."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.spec} ({len(self)} images)"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _stat_entry(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, -1


class _FilesBase(Source):
    """Shared by folder and list sources: paths, labels, display names."""

    def __init__(
        self, paths: list[Path], labels: list[int], class_names: list[str], names: list[str]
    ) -> None:
        self.paths = paths
        self.labels = np.asarray(labels, np.int64) if labels else np.zeros(0, np.int64)
        self.class_names = class_names
        self._names = names

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self._names[index]

    def label_hint(self, index: int) -> int:
        return int(self.labels[index])

    def load(self, index: int) -> tuple[np.ndarray, int]:
        return load_image(self.paths[index]), int(self.labels[index])

    def identity(self) -> str:
        entries = [(str(p), *_stat_entry(p)) for p in self.paths]
        return _digest({"kind": type(self).__name__, "files": entries, "labels": self.labels.tolist()})


def folder_labels(relative: list[str]) -> tuple[list[int], list[str]]:
    """ImageFolder labels of paths relative to the root: (label per path, class names); the class
    is the first-level sub-folder (sorted names), -1 for images directly in the root."""
    classes = sorted({rel.split("/", 1)[0] for rel in relative if "/" in rel})
    index = {name: i for i, name in enumerate(classes)}
    return [index[rel.split("/", 1)[0]] if "/" in rel else -1 for rel in relative], classes


def _hidden(name: str) -> bool:
    return name.startswith(".")


class FolderSource(_FilesBase):
    """Every image below `root` (recursively, sorted, hidden files and folders skipped).

    When images live in sub-folders, the first-level sub-folder name is the label
    (an ImageFolder layout: root/cat/..., root/dog/...); images directly in root are
    unlabelled (-1).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise EngineError(f"dataset folder not found: {root}")
        found: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
            for fname in sorted(filenames):
                if _hidden(fname) or Path(fname).suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                full = Path(dirpath) / fname
                found.append((full.relative_to(root).as_posix(), full))
        found.sort(key=lambda item: item[0])
        if not found:
            raise EngineError(f"no images in {root} (looked for {', '.join(IMAGE_SUFFIXES)})")
        labels, classes = folder_labels([rel for rel, _ in found])
        super().__init__([p for _, p in found], labels, classes, [rel for rel, _ in found])
        self.root = root
        self.spec = str(root)


class FileListSource(_FilesBase):
    """An explicit list of image files; labels from `labels` (names or ints) when given, else none."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        labels: Sequence[str | int] | None = None,
        spec: str | None = None,
    ) -> None:
        files = [Path(p).expanduser() for p in paths]
        if not files:
            raise EngineError("the list of image files is empty")
        if labels is not None and len(labels) != len(files):
            raise EngineError(f"{len(labels)} labels for {len(files)} files")
        class_names: list[str] = []
        ints: list[int] = [-1] * len(files)
        if labels is not None:
            if all(isinstance(x, int | np.integer) for x in labels):
                ints = [int(x) for x in labels]
                class_names = [str(i) for i in range(max(ints, default=-1) + 1)]
            else:
                class_names = sorted({str(x) for x in labels})
                ints = [class_names.index(str(x)) for x in labels]
        super().__init__(files, ints, class_names, [p.name for p in files])
        self.spec = spec or json.dumps([str(p) for p in files])

    @classmethod
    def from_list_file(cls, path: Path) -> FileListSource:
        """A list file: one image path per line (relative paths are relative to the list); # comments."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise EngineError(f"cannot read image list {path}: {exc}") from None
        entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        files = [p if Path(p).is_absolute() else str(path.parent / p) for p in entries]
        return cls(files, spec=str(path))


class ArraySource(Source):
    """In-memory images (N, H, W[, C]) uint8/uint16/float with optional labels, for scripts and tests."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        spec: str = "arrays",
    ) -> None:
        images = np.asarray(images)
        if images.ndim not in (3, 4) or len(images) == 0:
            raise EngineError(f"images of shape {images.shape} are not a batch (N, H, W[, C])")
        self.images = images
        self.labels = (
            np.full(len(images), -1, np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
        )
        if len(self.labels) != len(images):
            raise EngineError(f"{len(self.labels)} labels for {len(images)} images")
        if class_names is None:
            top = int(self.labels.max(initial=-1))
            class_names = [str(i) for i in range(top + 1)]
        self.class_names = list(class_names)
        self.spec = spec
        self.vectorized = True
        self._identity: str | None = None

    def __len__(self) -> int:
        return len(self.images)

    def name(self, index: int) -> str:
        return f"{self.spec} #{index}"

    def label_hint(self, index: int) -> int:
        return int(self.labels[index])

    def load(self, index: int) -> tuple[np.ndarray, int]:
        return array_to_image(self.images[index]), int(self.labels[index])

    def load_batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.images[indices], self.labels[indices]

    def identity(self) -> str:
        if self._identity is None:
            h = hashlib.sha256()
            h.update(str((self.images.shape, self.images.dtype.str)).encode())
            h.update(np.ascontiguousarray(self.images).tobytes())
            h.update(self.labels.tobytes())
            h.update(json.dumps(self.class_names).encode())
            self._identity = h.hexdigest()[:32]
        return self._identity


class DigitsSource(ArraySource):
    """The shipped MNIST subset (resources/data/mnist_5k.npz) with its labels; the first n images."""

    def __init__(self, n: int | None = None) -> None:
        images, labels, path = _digits_data()
        if n is not None:
            if n < 1:
                raise EngineError("builtin:digits?n= must be at least 1")
            images, labels = images[:n], labels[:n]
        super().__init__(images, labels, [str(i) for i in range(10)], spec="builtin:digits")
        if n is not None and n < len(_digits_data()[0]):
            self.spec = f"builtin:digits?n={n}"
        self._path = path

    def name(self, index: int) -> str:
        return f"digits #{index}"

    def identity(self) -> str:
        size, mtime = _stat_entry(self._path) if self._path else (-1, -1)
        if size < 0:
            return super().identity()
        return _digest(
            {"kind": "digits", "file": str(self._path), "size": size, "mtime": mtime, "n": len(self)}
        )


def _digits_data() -> tuple[np.ndarray, np.ndarray, Path | None]:
    """(images uint8 (N, 28, 28), labels int64 (N,), npz path) from engine.zoo.digits or the npz file."""
    from engine.zoo import DATA_DIR

    path = DATA_DIR / "mnist_5k.npz"
    try:
        from engine.zoo import digits as zoo_digits
    except ImportError:
        zoo_digits = None
    if zoo_digits is not None and hasattr(zoo_digits, "load_data"):
        try:
            data = zoo_digits.load_data()
        except FileNotFoundError:
            data = None
        except EngineError:
            raise
        if data is not None:
            images, labels = _split_data(data)
            return images, labels, path if path.exists() else None
    if not path.exists():
        raise EngineError(f"built-in digit set missing: {path}")
    with np.load(path, allow_pickle=False) as npz:
        images, labels = _split_data({k: npz[k] for k in npz.files})
    return images, labels, path


def _split_data(data: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, dict):
        img_key = next((k for k in ("images", "x", "x_train", "X") if k in data), None)
        lab_key = next((k for k in ("labels", "y", "y_train", "Y") if k in data), None)
        if img_key is None or lab_key is None:
            raise EngineError(f"digit data holds {sorted(data)}; expected images and labels")
        images, labels = data[img_key], data[lab_key]
    elif isinstance(data, tuple | list) and len(data) >= 2:
        if isinstance(data[0], tuple | list):  # ((x, y), (x_test, y_test))
            data = data[0]
        images, labels = data[0], data[1]
    else:
        images, labels = data.images, data.labels
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.dtype != np.uint8:
        arr = images.astype(np.float32)
        images = unit_to_uint8(arr if arr.max(initial=0) <= 1.0 else arr / 255.0)
    return images, np.asarray(labels, np.int64).reshape(-1)


class ShapesSource(Source):
    """n generated builtin:shapes images of one seed, made one at a time (nothing stored)."""

    def __init__(
        self, n: int = SHAPES_DEFAULT_N, seed: int = SHAPES_DEFAULT_SEED, size: int | None = None
    ) -> None:
        from engine.zoo import shapes

        if n < 1:
            raise EngineError("builtin:shapes?n= must be at least 1")
        self.n = int(n)
        self.seed = int(seed)
        self.size = int(size or shapes.SIZE)
        if self.size < shapes.MAX_SHAPE + 4:
            raise EngineError(f"builtin:shapes?size= must be at least {shapes.MAX_SHAPE + 4}")
        self.class_names = list(shapes.CLASS_NAMES)
        self.spec = f"builtin:shapes?n={self.n}&seed={self.seed}" + (
            f"&size={self.size}" if self.size != shapes.SIZE else ""
        )

    def __len__(self) -> int:
        return self.n

    def name(self, index: int) -> str:
        return f"shapes seed {self.seed} #{index}"

    def load(self, index: int) -> tuple[np.ndarray, int]:
        from engine.zoo import shapes

        batch = next(shapes.iter_batches(1, self.seed, 1, size=self.size, start=int(index)))
        return batch.images[0].astype(np.float32) / 255.0, int(batch.labels[0])

    def identity(self) -> str:
        from engine.zoo import shapes

        size, mtime = _stat_entry(Path(shapes.__file__))
        return _digest(
            {"kind": "shapes", "n": self.n, "seed": self.seed, "size": self.size, "gen": [size, mtime]}
        )


def _builtin(name: str, query: str) -> Source:
    params = {k.lower(): v[-1] for k, v in parse_qs(query).items()}
    try:
        ints = {k: int(v) for k, v in params.items()}
    except ValueError:
        raise EngineError(f"builtin:{name}?{query}: parameters must be integers") from None
    if name == "digits":
        unknown = set(ints) - {"n"}
        if unknown:
            raise EngineError(f"builtin:digits takes only n=, not {', '.join(sorted(unknown))}")
        return DigitsSource(ints.get("n"))
    if name == "shapes":
        unknown = set(ints) - {"n", "seed", "size"}
        if unknown:
            raise EngineError(f"builtin:shapes takes n=, seed= and size=, not {', '.join(sorted(unknown))}")
        return ShapesSource(
            ints.get("n", SHAPES_DEFAULT_N), ints.get("seed", SHAPES_DEFAULT_SEED), ints.get("size")
        )
    raise EngineError(f"unknown built-in dataset {name!r}; choose builtin:digits or builtin:shapes")


def open_source(spec: Any) -> Source:
    """A Source from a spec string (see the module docstring), a list of paths, or a Source (returned as is)."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, np.ndarray):
        return ArraySource(spec)
    if isinstance(spec, list | tuple):
        return FileListSource([os.fspath(p) for p in spec])
    if not isinstance(spec, str | os.PathLike):
        raise EngineError(f"cannot use {type(spec).__name__} as a dataset source")
    text = os.fspath(spec).strip()
    if not text:
        raise EngineError("no dataset source given")
    if text.startswith("builtin:"):
        name, _, query = text[len("builtin:") :].partition("?")
        return _builtin(name.lower(), query)
    if text.startswith("["):
        try:
            paths = json.loads(text)
        except ValueError:
            raise EngineError("a source starting with '[' must be a JSON list of paths") from None
        return FileListSource([str(p) for p in paths])
    from engine.dataset.arrow_source import ArrowSource, is_uri

    if is_uri(text):
        return ArrowSource(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise EngineError(f"dataset source not found: {path}")
    suffix = path.suffix.lower()
    if suffix in LIST_SUFFIXES:
        return FileListSource.from_list_file(path)
    if suffix in IMAGE_SUFFIXES:
        return FileListSource([path], spec=str(path))
    raise EngineError(f"{path.name}: not a folder, an image or a list of images (.txt)")


def source_spec(source: Any) -> str:
    """The spec string of a source (what a sidecar records to reproduce a scan)."""
    return open_source(source).spec if not isinstance(source, Source) else source.spec


def fit_for_model(img: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """An image in [0, 1] resized and channel-converted to the model's (H, W, C), as engine.images does."""
    from engine.images import fit_image

    return fit_image(img, shape)


def batch_to_float(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A vectorized array batch (uint8/uint16/float, (B, H, W[, C])) as float32 (B, H, W, C) in [0, 1]."""
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[..., None]
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        x = a.astype(np.float32) / 65535.0
    else:
        x = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    if x.shape[1:3] != tuple(shape[:2]) or x.shape[-1] not in (1, 3):
        return np.stack([fit_for_model(array_to_image(img), shape) for img in a])
    c = shape[2]
    if x.shape[-1] == c:
        return x
    if c == 3:
        return np.repeat(x, 3, axis=-1)
    return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]


def check_loadable(source: Source, index: int) -> str | None:
    """None if image `index` loads, else the one-line reason (used by tests and the GUI)."""
    try:
        source.load(index)
    except ImageLoadError as exc:
        return str(exc)
    return None
