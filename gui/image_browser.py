"""The image browser dock: thumbnails of opened images and folders plus the built-in samples.

Nothing slow happens on the main thread: folders are listed and thumbnails decoded
(Pillow only, JPEG draft mode) on a small QThreadPool. Thumbnails are requested lazily
by the list model when the view first paints a row, newest requests first, so a
folder of thousands of photos shows at once and the visible rows fill in first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QVBoxLayout, QWidget

from engine.common import unit_to_uint8
from engine.images import IMAGE_SUFFIXES, sample_images, sample_path
from gui.widgets.background import BackgroundTask
from gui.widgets.controls import single_shot_timer

SPEC_ROLE = Qt.ItemDataRole.UserRole + 1
THUMB = 72
BATCH = 8
LIST_CHUNK = 400


def image_files(folder: str | os.PathLike) -> list[str]:
    """The image files directly inside folder, sorted by name (case-insensitive)."""
    try:
        with os.scandir(folder) as it:
            names = [e.path for e in it if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES]
    except OSError:
        return []
    return sorted(names, key=lambda p: os.path.basename(p).lower())


def spec_path(spec: str) -> Path:
    """The file behind an image spec (a path or builtin:NAME)."""
    return sample_path(spec.split(":", 1)[1]) if spec.startswith("builtin:") else Path(spec)


def make_thumbnail(spec: str, size: int = THUMB) -> QImage:
    """A size×size-bounded RGB thumbnail as a QImage (Pillow only; safe off the main thread)."""
    with Image.open(spec_path(spec)) as img:
        img.draft("RGB", (size * 2, size * 2))  # JPEG: decode at reduced scale
        img = ImageOps.exif_transpose(img)
        img.thumbnail((size, size))
        if img.mode in ("I;16", "I;16L", "I;16B", "I", "F"):
            arr = np.nan_to_num(np.asarray(img, dtype=np.float32))
            top = float(arr.max(initial=0)) or 1.0
            img = Image.fromarray(unit_to_uint8(arr / top))
        if img.mode in ("RGBA", "LA", "PA", "P"):
            rgba = img.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, rgba)
        img = img.convert("RGB")
        data = img.tobytes()
        qimg = QImage(data, img.width, img.height, img.width * 3, QImage.Format.Format_RGB888)
        return qimg.copy()


class _Signals(QObject):
    thumbnails = Signal(int, object)  # generation, [(spec, QImage | None, error)]
    listed = Signal(int, str, object)  # generation, folder, [paths]
    listing_done = Signal(int, str, int)  # generation, folder, count


def _make_thumbnails(signals: _Signals, generation: int, specs: list[str], size: int) -> None:
    """Thumbnails of specs, emitted as one batch (a pool thread's work)."""
    out = []
    for spec in specs:
        try:
            out.append((spec, make_thumbnail(spec, size), ""))
        except Exception as exc:  # noqa: BLE001 - a broken file gets a broken icon
            out.append((spec, None, str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__))
    signals.thumbnails.emit(generation, out)


def _list_folder(signals: _Signals, generation: int, folder: str) -> None:
    """The folder's image files, emitted in chunks, then their count (a pool thread's work)."""
    files = image_files(folder)
    for start in range(0, len(files), LIST_CHUNK):
        signals.listed.emit(generation, folder, files[start : start + LIST_CHUNK])
    signals.listing_done.emit(generation, folder, len(files))


def _placeholder(color: str) -> QIcon:
    pix = QPixmap(THUMB, THUMB)
    pix.fill(QColor(color))
    return QIcon(pix)


class ImageListModel(QAbstractListModel):
    """Image specs with lazily loaded thumbnails (requested when a row is first painted)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.specs: list[str] = []
        self._index: dict[str, int] = {}
        self.fitting: set[str] = set()  # samples that fit the model (others are dimmed)
        self._icons: dict[str, QIcon] = {}
        self._errors: dict[str, str] = {}
        self._requested: set[str] = set()
        self._pending: list[str] = []
        self._loading = _placeholder("#3a3a3a")
        self._broken = _placeholder("#6a2020")
        self._signals = _Signals()
        self._signals.thumbnails.connect(self._on_thumbnails)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.generation = 0
        self._flush_timer = single_shot_timer(self, 0, self._flush)

    # ----- Qt model -------------------------------------------------------
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.specs)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.specs):
            return None
        spec = self.specs[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return label_of(spec)
        if role == Qt.ItemDataRole.DecorationRole:
            icon = self._icons.get(spec)
            if icon is not None:
                return icon
            if spec in self._errors:
                return self._broken
            self._request(spec)
            return self._loading
        if role == Qt.ItemDataRole.ToolTipRole:
            error = self._errors.get(spec)
            if error:
                return f"{spec}\n{error}"
            return f"{spec}\n(fits the model)" if spec in self.fitting else spec
        if role == Qt.ItemDataRole.ForegroundRole:
            unfit = self.fitting and spec.startswith("builtin:") and spec not in self.fitting
            return QColor("#8a8a8a") if unfit else None
        if role == SPEC_ROLE:
            return spec
        return None

    # ----- content --------------------------------------------------------
    def add(self, specs: Iterable[str]) -> list[str]:
        """Append specs not already listed; returns the ones added."""
        new = []
        for spec in specs:
            if spec not in self._index and spec not in new:
                new.append(spec)
        if new:
            start = len(self.specs)
            self.beginInsertRows(QModelIndex(), start, start + len(new) - 1)
            for i, spec in enumerate(new):
                self._index[spec] = start + i
            self.specs.extend(new)
            self.endInsertRows()
        return new

    def put_first(self, specs: Iterable[str], fitting: Iterable[str] = ()) -> None:
        """Move the listed specs to the top in the given order; the other rows keep their order.

        fitting: the specs that fit the model (the others are shown dimmed). The current
        row stays current (a layout change, not a reset), so no image is reloaded.
        """
        first = [s for s in dict.fromkeys(specs) if s in self._index]
        self.fitting = set(fitting)
        chosen = set(first)
        order = first + [s for s in self.specs if s not in chosen]
        if order == self.specs:
            if self.specs:
                self.dataChanged.emit(self.index(0), self.index(len(self.specs) - 1))
            return
        self.layoutAboutToBeChanged.emit()
        old_specs = self.specs
        self.specs = order
        self._index = {spec: row for row, spec in enumerate(order)}
        moved_from, moved_to = [], []
        for persistent in self.persistentIndexList():
            if persistent.isValid() and persistent.row() < len(old_specs):
                moved_from.append(persistent)
                moved_to.append(self.index(self._index[old_specs[persistent.row()]]))
        self.changePersistentIndexList(moved_from, moved_to)
        self.layoutChanged.emit()

    def row_of(self, spec: str) -> int:
        return self._index.get(spec, -1)

    def has_thumbnail(self, spec: str) -> bool:
        return spec in self._icons or spec in self._errors

    def _request(self, spec: str) -> None:
        if spec in self._requested:
            return
        self._requested.add(spec)
        self._pending.append(spec)
        self._flush_timer.start()

    def _flush(self) -> None:
        # newest requests first: they are the rows on screen now
        while self._pending and self.pool.activeThreadCount() < self.pool.maxThreadCount():
            batch = self._pending[-BATCH:][::-1]
            del self._pending[-BATCH:]
            self.pool.start(BackgroundTask(_make_thumbnails, self._signals, self.generation, batch, THUMB))

    def _on_thumbnails(self, generation: int, results: list) -> None:
        if generation == self.generation:
            for spec, qimage, error in results:
                if qimage is not None:
                    self._icons[spec] = QIcon(QPixmap.fromImage(qimage))
                else:
                    self._errors[spec] = error or "cannot read image"
                row = self._index.get(spec)
                if row is not None:
                    index = self.index(row)
                    self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])
        self._flush()

    def shutdown(self) -> None:
        """Drop pending work and wait for running thumbnail jobs (called when the window closes)."""
        self._pending.clear()
        self.generation += 1
        self.pool.clear()
        self.pool.waitForDone(5000)


def label_of(spec: str) -> str:
    if spec.startswith("builtin:"):
        return spec.split(":", 1)[1]
    return os.path.basename(spec) or spec


class ImageBrowser(QWidget):
    """Thumbnails of the samples and of opened images and folders; emits image_selected(spec)."""

    image_selected = Signal(str)
    folder_listed = Signal(str, int)  # folder, number of images found

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ImageListModel(self)
        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 24, THUMB + 28))
        self.list.setUniformItemSizes(True)
        self.list.setResizeMode(QListView.ResizeMode.Adjust)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setLayoutMode(QListView.LayoutMode.Batched)
        self.list.setBatchSize(200)
        self.list.setWordWrap(False)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list)
        self.list.selectionModel().currentChanged.connect(self._on_current)
        self.model._signals.listed.connect(self._on_listed)
        self.model._signals.listing_done.connect(self._on_listing_done)
        self._select_first_of: str | None = None
        self.add_images(sample_images())

    def add_images(self, specs: Iterable[str], select: bool = False) -> list[str]:
        """Add image paths or builtin specs; select the first new (or given) one when asked."""
        specs = [str(s) for s in specs]
        added = self.model.add(specs)
        if select and specs:
            self.select(specs[0])
        return added

    def add_folder(self, folder: str, select: bool = True) -> None:
        """List folder's images off the main thread and add them as they come."""
        folder = str(folder)
        self._select_first_of = folder if select else None
        self.model.pool.start(
            BackgroundTask(_list_folder, self.model._signals, self.model.generation, folder)
        )

    def _on_listed(self, generation: int, folder: str, paths: list[str]) -> None:
        if generation != self.model.generation:
            return
        self.model.add(paths)
        if self._select_first_of == folder and paths:
            self._select_first_of = None
            self.select(paths[0])

    def _on_listing_done(self, generation: int, folder: str, count: int) -> None:
        if generation == self.model.generation:
            self.folder_listed.emit(folder, count)

    def select(self, spec: str) -> None:
        row = self.model.row_of(spec)
        if row >= 0:
            index = self.model.index(row)
            self.list.setCurrentIndex(index)
            if row == 0:
                self.list.scrollToTop()  # the whole first row, not just the selected cell's edge
            else:
                self.list.scrollTo(index)

    def order_samples(self, ranked: Iterable[str], fitting: Iterable[str] = ()) -> None:
        """Show the built-in samples in ranked order (those fitting the model first), then the rest."""
        self.model.put_first(ranked, fitting)

    def current_spec(self) -> str | None:
        index = self.list.currentIndex()
        return index.data(SPEC_ROLE) if index.isValid() else None

    def specs(self) -> list[str]:
        return list(self.model.specs)

    def _on_current(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid():
            self.image_selected.emit(current.data(SPEC_ROLE))

    def shutdown(self) -> None:
        self.model.shutdown()
