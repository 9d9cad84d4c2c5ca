"""Which image the window shows, and opening paths (a mixin of MainWindow).

Images and folders go to the image browser; the chosen image is decoded off the main
thread (engine.images is NumPy/Pillow only) and becomes AppState's image, unless a newer
choice came meanwhile (a generation number drops the older answer). The start image is
the one last shown with the model, else the first built-in sample that fits it; a newly
loaded model replaces a sample that does not fit it. Dropped files and folders open as
models or images by what they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, QThreadPool, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent

from engine.contract import ModelSummary
from engine.errors import EngineError
from engine.images import IMAGE_SUFFIXES, fitting_samples, load_image, rank_samples
from gui import settings as cfg
from gui.image_browser import ImageBrowser
from gui.state import AppState, display_copy
from gui.widgets.background import BackgroundTask

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_model_path(path: str | os.PathLike) -> bool:
    """A Keras model file or a SavedModel folder."""
    p = Path(path)
    if p.is_dir():
        return (p / "saved_model.pb").exists()
    return p.suffix.lower() in MODEL_SUFFIXES


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES and not Path(path).is_dir()


class _ImageSignals(QObject):
    loaded = Signal(int, str, object, object)  # generation, spec, float image, uint8 display copy
    failed = Signal(int, str, str)  # generation, spec, message


def _decode_image(signals: _ImageSignals, generation: int, spec: str) -> None:
    """Decode spec and make its display copy (a pool thread's work)."""
    try:
        image = load_image(spec)
        display = display_copy(image)
    except EngineError as exc:
        signals.failed.emit(generation, spec, str(exc))
    except Exception as exc:  # noqa: BLE001
        signals.failed.emit(generation, spec, f"{spec}: {type(exc).__name__}: {exc}")
    else:
        signals.loaded.emit(generation, spec, image, display)


class ImageOpeningMixin:
    """The window's image choice; MainWindow supplies the attributes below and calls _init_images()."""

    state: AppState
    settings: QSettings
    image_browser: ImageBrowser
    _closed: bool
    _loading_spec: str | None
    _keep_image_once: bool  # images named on the command line stay when the model loads

    def _init_images(self) -> None:
        self._image_generation = 0
        self._wanted_image: str | None = None  # the image last asked for (it may still be decoding)
        self._image_signals = _ImageSignals()
        self._image_signals.loaded.connect(self._on_image_loaded)
        self._image_signals.failed.connect(self._on_image_failed)
        self._image_pool = QThreadPool(self)
        self._image_pool.setMaxThreadCount(1)

    def _shutdown_images(self) -> None:
        self.image_browser.shutdown()
        self._image_generation += 1
        self._image_pool.clear()
        self._image_pool.waitForDone(5000)

    # ----- opening ------------------------------------------------------------------
    def open_images(self, paths: Iterable[str]) -> None:
        """Add image files or folders to the browser and show the first image."""
        files, folders = [], []
        for p in paths:
            (folders if Path(p).is_dir() else files).append(str(p))
        if files:
            self.image_browser.add_images(files, select=True)
            for f in files:
                cfg.add_recent(self.settings, "recent/images", f)
        for folder in folders:
            self.open_folder(folder, select=not files)
        self._refresh_recent_menu()

    def open_folder(self, folder: str, select: bool = True) -> None:
        self.image_browser.add_folder(str(folder), select=select)
        cfg.add_recent(self.settings, "recent/images", str(folder))
        self._refresh_recent_menu()

    def _on_folder_listed(self, folder: str, count: int) -> None:
        self.statusBar().showMessage(f"{count:,} images in {folder}", 5000)
        if count == 0:
            self.show_error(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})", kind="info")

    def open_paths(self, paths: Iterable[str]) -> None:
        """Open dropped paths: model files/SavedModel folders load, images and folders go to the browser."""
        images: list[str] = []
        ignored: list[str] = []
        for path in paths:
            if is_model_path(path):
                self.open_model(path)
            elif Path(path).is_dir() or is_image_path(path):
                images.append(path)
            else:
                ignored.append(Path(path).name)
        if images:
            self.open_images(images)
        if ignored:
            self.show_error(f"not a model or an image: {', '.join(ignored)}", kind="info")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        event.acceptProposedAction()
        self.open_paths(paths)

    # ----- which image ----------------------------------------------------------------
    def _select_start_image(self, model_spec: str | None) -> None:
        """The first image: the one last shown with this model, else the first sample that fits it."""
        if model_spec:
            self.image_browser.order_samples(
                rank_samples(model_spec=model_spec), fitting_samples(model_spec=model_spec)
            )
            if self._open_remembered_image(model_spec):
                return
            fitting = fitting_samples(model_spec=model_spec)
            if fitting:
                self.image_browser.select(fitting[0])
                return
        last = cfg.read(self.settings, "last/image", "", str)  # a model file not loaded yet: the last image
        if not (last and self._open_existing(last)):
            specs = self.image_browser.specs()
            if specs:
                self.image_browser.select(specs[0])

    def _open_existing(self, spec: str) -> bool:
        """Select spec if it is still there (a listed sample or an existing file); False if gone."""
        if spec in self.image_browser.specs() and (spec.startswith("builtin:") or Path(spec).is_file()):
            self.image_browser.select(spec)
            return True
        if not spec.startswith("builtin:") and Path(spec).is_file():
            self.image_browser.add_images([spec], select=True)
            return True
        return False

    def _open_remembered_image(self, model_spec: str) -> bool:
        """Select the image last shown with model_spec, if it still exists."""
        remembered = cfg.remembered_image(self.settings, model_spec)
        if not remembered:
            return False
        if remembered == self._wanted_image:
            return True
        return self._open_existing(remembered)

    def _fit_image_to_model(self, summary: ModelSummary) -> None:
        """A model loaded: list the samples that fit it first, and make sure the image fits it.

        A built-in sample that does not fit (the astronaut on builtin:digits) gives way to the
        image last shown with this model, else to the first fitting sample. The user's own
        images and images named on the command line stay.
        """
        spec, shape, names = summary.spec, summary.input_shape, summary.class_names
        fitting = fitting_samples(shape, spec, names)
        self.image_browser.order_samples(rank_samples(shape, spec, names), fitting)
        if self._keep_image_once:
            self._keep_image_once = False
            return
        current = self._wanted_image
        if current is not None and (not current.startswith("builtin:") or not fitting or current in fitting):
            if current == self.state.image_spec:
                cfg.remember_image(self.settings, spec, current)  # it stays: it is this model's image now
            return
        if self._open_remembered_image(spec):
            return
        if fitting and current not in fitting:
            self.image_browser.select(fitting[0])

    # ----- decoding -------------------------------------------------------------------
    def select_image(self, spec: str) -> None:
        """Make spec the current image (decoded off the main thread)."""
        self.image_browser.select(spec)
        self._wanted_image = spec
        self._image_generation += 1
        self._image_pool.start(
            BackgroundTask(_decode_image, self._image_signals, self._image_generation, spec)
        )

    def _on_image_loaded(self, generation: int, spec: str, image: Any, display: Any) -> None:
        if generation != self._image_generation or self._closed:
            return
        self.state.set_image(spec, image, display)
        self.settings.setValue("last/image", spec)
        model_spec = self.state.model_spec or self._loading_spec
        if model_spec:
            cfg.remember_image(self.settings, str(model_spec), spec)

    def _on_image_failed(self, generation: int, spec: str, message: str) -> None:
        if generation == self._image_generation:
            self.show_error(message)

    # ----- supplied by MainWindow -------------------------------------------------------
    open_model: Callable[..., int]
    show_error: Callable[..., None]
    statusBar: Callable[[], Any]  # noqa: N815 - Qt's name
    _refresh_recent_menu: Callable[[], None]
