"""A dataset on any filesystem pyarrow opens: s3://, gs://, hdfs://, abfs://, file:// URIs.

A scan on a cluster needs images every node can read. Shared folders are FolderSource; for
object stores and HDFS, ArrowSource lists the images under a URI once (recursively, sorted,
hidden names skipped, labels from the first-level sub-folder as for a folder) and each worker
reads the bytes it needs through pyarrow.fs, so nothing is copied up front. The filesystem
object travels with the source (pyarrow filesystems pickle with their credentials' settings).
pyarrow comes with the cluster extra (Ray Data needs it); importing this module does not
import it.
"""

from __future__ import annotations

import numpy as np

from engine.dataset.sources import _digest, _FilesBase, folder_labels
from engine.errors import EngineError, ImageLoadError
from engine.images import IMAGE_SUFFIXES, decode_image

__all__ = ["ArrowSource", "is_uri"]

SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "az")


def is_uri(text: str) -> bool:
    """True for a URI whose scheme pyarrow's filesystem layer knows (scheme://...)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


class ArrowSource(_FilesBase):
    """Every image below a URI; labels from first-level sub-folder names (root images: -1)."""

    def __init__(self, uri: str) -> None:
        try:
            from pyarrow import fs as pafs
        except ImportError:
            raise EngineError(f'{uri}: reading URIs needs pyarrow: pip install -e ".[cluster]"') from None
        try:
            filesystem, root = pafs.FileSystem.from_uri(uri)
            infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot list {uri}: {str(exc).splitlines()[0][:200]}") from None
        root = root.rstrip("/")
        found: list[tuple[str, str, int, float]] = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(root) :].lstrip("/")
            if _hidden(rel) or not rel.lower().endswith(IMAGE_SUFFIXES):
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else -1.0
            found.append((rel, info.path, int(info.size or -1), mtime))
        found.sort()
        if not found:
            raise EngineError(f"no images under {uri} (looked for {', '.join(IMAGE_SUFFIXES)})")
        names = [rel for rel, *_ in found]
        labels, classes = folder_labels(names)
        super().__init__([path for _, path, *_ in found], labels, classes, names)  # type: ignore[arg-type]
        self.filesystem = filesystem
        self.uri = uri
        self.spec = uri
        self._entries = [(rel, size, mtime) for rel, _, size, mtime in found]

    def load(self, index: int) -> tuple[np.ndarray, int]:
        name = self.name(index)
        try:
            with self.filesystem.open_input_file(self.paths[index]) as f:
                data = f.read()
        except OSError as exc:
            raise ImageLoadError(f"{name}: cannot read ({str(exc).splitlines()[0][:120]})") from None
        return decode_image(data, name), int(self.labels[index])

    def identity(self) -> str:
        return _digest(
            {"kind": "arrow", "uri": self.uri, "files": self._entries, "labels": self.labels.tolist()}
        )
