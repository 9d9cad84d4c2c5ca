"""The main window: menus, docks (layers, images, predictions), tabbed views, status bar.

It owns the AppState (model, layer, image) and the EngineClient. The engine thread
starts after the window is first shown, so the window is on screen while TensorFlow
is still importing ("loading engine…" in the status bar). Model loads and
predictions are jobs like any other; a failed job shows its message in the message
bar above the tabs and the window carries on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError
from engine.images import IMAGE_SUFFIXES, fitting_samples, load_image, rank_samples
from engine.jobs import Failed, Finished, Progress, Request
from gui import settings as cfg
from gui.engine_thread import EngineClient, lower_priority
from gui.image_browser import ImageBrowser
from gui.layer_tree import LayerTree
from gui.predictions import PredictionsPanel
from gui.state import AppState, display_copy
from gui.views import VIEWS
from gui.views.base import View
from gui.widgets.message_bar import MessageBar

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
BUILTIN_MODELS = ("digits", "shapes")
KERAS_APPLICATIONS = (
    "VGG16",
    "VGG19",
    "ResNet50",
    "ResNet50V2",
    "MobileNet",
    "MobileNetV2",
    "MobileNetV3Small",
    "EfficientNetB0",
    "InceptionV3",
    "DenseNet121",
    "Xception",
    "ConvNeXtTiny",
)
PROGRESS_DELAY_MS = 250  # quick jobs never flash the progress bar


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


class _ImageJob(QRunnable):
    """Decodes the chosen image off the main thread (engine.images is numpy/Pillow only)."""

    def __init__(self, signals: _ImageSignals, generation: int, spec: str) -> None:
        super().__init__()
        self.signals, self.generation, self.spec = signals, generation, spec

    def run(self) -> None:
        lower_priority(2)
        try:
            image = load_image(self.spec)
            display = display_copy(image)
        except EngineError as exc:
            self.signals.failed.emit(self.generation, self.spec, str(exc))
        except Exception as exc:  # noqa: BLE001
            self.signals.failed.emit(self.generation, self.spec, f"{self.spec}: {type(exc).__name__}: {exc}")
        else:
            self.signals.loaded.emit(self.generation, self.spec, image, display)


class MainWindow(QMainWindow):
    """Convscope's window. `ask(question) -> bool` may be replaced (tests answer for the user)."""

    model_loaded = Signal(str)  # model name, after a successful load
    first_shown = Signal(float)  # time.perf_counter() when the window was first shown

    def __init__(
        self,
        model_spec: str | None = "builtin:digits",
        images: Iterable[str] = (),
        *,
        start_engine: bool = True,
        restore: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Convscope")
        self.setObjectName("ConvscopeMainWindow")
        self.setAcceptDrops(True)
        self.resize(1280, 820)
        self.state = AppState(self)
        self.client = EngineClient(self)
        self.ask: Callable[[str], bool] = self._ask_user
        self._start_engine = start_engine
        self._shown_once = False
        self._closed = False
        self._loading_spec: str | None = None
        self._model_job: int | None = None
        self._pending_layer: str | None = None
        self._image_generation = 0
        self._wanted_image: str | None = None  # the image last asked for (it may still be decoding)
        self._image_signals = _ImageSignals()
        self._image_signals.loaded.connect(self._on_image_loaded)
        self._image_signals.failed.connect(self._on_image_failed)
        self._image_pool = QThreadPool(self)
        self._image_pool.setMaxThreadCount(1)
        self.settings = cfg.settings()

        self._build_central()
        self._build_docks()
        self._build_status_bar()
        self._build_menus()
        self._connect()
        if restore:
            self._restore_settings()
        self._refresh_recent_menu()

        images = [str(i) for i in images]
        # images named on the command line take precedence over the model's start image
        self._keep_image_once = bool(images)
        if model_spec:
            self.open_model(model_spec)
        if images:
            self.open_images(images)
        else:
            self._select_start_image(model_spec)

    # ----- construction -------------------------------------------------------
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.message_bar = MessageBar()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.views: list[View] = []
        for view_cls in VIEWS:
            view = view_cls(self.state, self.client)
            view.setObjectName(f"view_{view.owner}")
            self.views.append(view)
            # a scroll area per tab: a view with a wide form must not force a wide window
            scroller = QScrollArea()
            scroller.setWidgetResizable(True)
            scroller.setFrameShape(QFrame.Shape.NoFrame)
            scroller.setWidget(view)
            self.tabs.addTab(scroller, view.title)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.layer_tree = LayerTree()
        self.layer_tree.setMinimumWidth(160)
        self.layers_dock = self._dock(
            "Layers", "dock_layers", self.layer_tree, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.image_browser = ImageBrowser()
        self.images_dock = self._dock(
            "Images", "dock_images", self.image_browser, Qt.DockWidgetArea.LeftDockWidgetArea
        )
        self.predictions = PredictionsPanel()
        self.predictions.setMinimumWidth(150)
        self.predictions_dock = self._dock(
            "Predictions", "dock_predictions", self.predictions, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.resizeDocks([self.layers_dock], [330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.predictions_dock], [260], Qt.Orientation.Horizontal)
        self.resizeDocks([self.layers_dock, self.images_dock], [420, 300], Qt.Orientation.Vertical)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_label = QLabel("loading engine…")
        self.device_label.setToolTip("Where the engine computes")
        self.model_label = QLabel("no model")
        self.job_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running job")
        self.cancel_button.clicked.connect(self.cancel_running)
        for widget in (self.job_label, self.progress, self.cancel_button):
            widget.hide()
        bar.addWidget(self.device_label)
        bar.addWidget(QLabel("│"))
        bar.addWidget(self.model_label)
        bar.addPermanentWidget(self.job_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_DELAY_MS)
        self._progress_timer.timeout.connect(self._show_progress)

    def _action(
        self, menu: Any, text: str, slot: Callable[..., Any], shortcut: Any = None, tip: str = ""
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_model_action = self._action(
            file_menu,
            "Open &Model…",
            self.open_model_dialog,
            QKeySequence.StandardKey.Open,
            "Open a Keras model",
        )
        apps = file_menu.addMenu("&Keras Applications")
        self.random_weights_action = QAction("Random weights (no ImageNet download)", self, checkable=True)
        apps.addAction(self.random_weights_action)
        apps.addSeparator()
        for name in KERAS_APPLICATIONS:
            self._action(apps, name, lambda n=name: self.open_keras_application(n))
        builtin = file_menu.addMenu("&Built-in Models")
        for name in BUILTIN_MODELS:
            self._action(builtin, name, lambda n=name: self.open_model(f"builtin:{n}"))
        file_menu.addSeparator()
        self._action(file_menu, "Open &Images…", self.open_images_dialog, "Ctrl+I")
        self._action(file_menu, "Open &Folder…", self.open_folder_dialog, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("&Recent")
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "&Export View…", self.export_view_dialog, "Ctrl+E")
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        view_menu = bar.addMenu("&View")
        for dock in (self.layers_dock, self.images_dock, self.predictions_dock):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        for i, view in enumerate(self.views):
            self._action(view_menu, view.title, lambda i=i: self.tabs.setCurrentIndex(i), f"Ctrl+{i + 1}")

        run_menu = bar.addMenu("&Run")
        self.run_action = self._action(
            run_menu, "&Run", self.run_current, "F5", "Run what the current tab computes"
        )
        self.stop_action = self._action(
            run_menu, "&Stop", self.stop_all, "Esc", "Cancel running and queued jobs"
        )

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard Shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "&About Convscope", self.show_about)

    def _connect(self) -> None:
        self.client.ready.connect(self._on_engine_ready)
        self.client.started.connect(self._on_job_started)
        self.client.progress.connect(self._on_job_progress)
        self.client.finished.connect(self._on_job_done)
        self.client.failed.connect(self._on_job_done)
        self.layer_tree.layer_selected.connect(self.state.set_layer)
        self.state.layer_changed.connect(lambda: self.layer_tree.select(self.state.layer))
        self.image_browser.image_selected.connect(self.select_image)
        self.image_browser.folder_listed.connect(self._on_folder_listed)
        self.state.image_changed.connect(self.update_predictions)
        self.state.model_changed.connect(self.update_predictions)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        for view in self.views:
            view.status.connect(lambda text: self.statusBar().showMessage(text, 4000))

    # ----- lifecycle ----------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.first_shown.emit(time.perf_counter())
            self._on_tab_changed(self.tabs.currentIndex())
            if self._start_engine:
                # after this first paint: TensorFlow's import must not delay the window
                QTimer.singleShot(30, self.client.start)

    def start_engine(self) -> None:
        """Start the engine thread now (normally it starts once the window is shown)."""
        self.client.start()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if not self._closed:
            self._closed = True
            self._save_settings()
            self.hide()  # gone from the screen at once, even if a job step must finish first
            self._progress_timer.stop()
            self.client.shutdown()
            self.image_browser.shutdown()
            self._image_generation += 1
            self._image_pool.clear()
            self._image_pool.waitForDone(5000)
        super().closeEvent(event)

    # ----- model --------------------------------------------------------------
    def open_model(self, spec: str, trust: bool = False) -> int:
        """Load a model (path, builtin:NAME, keras:NAME) on the engine thread; returns the job id."""
        spec = str(spec)
        self._loading_spec = spec
        self.state.loading = spec
        self.model_label.setText(f"loading {Path(spec).name if os.sep in spec else spec}…")
        params: dict[str, Any] = {"spec": spec}
        if trust:
            params["trust"] = True
        self._model_job = self.client.submit(Request("load_model", params, owner="model"))
        return self._model_job

    def open_keras_application(self, name: str) -> int:
        suffix = "?weights=none" if self.random_weights_action.isChecked() else ""
        return self.open_model(f"keras:{name}{suffix}")

    def _on_model_loaded(self, result: dict[str, Any]) -> None:
        spec = str(result.get("spec", self._loading_spec))
        layer = self._pending_layer
        self._pending_layer = None
        self.layer_tree.set_layers(result.get("layers", ()))
        self.state.model = result
        paths = {info.path for info in self.state.all_layers()}
        if layer not in paths:
            layer = self.state.default_layer()
        self.state.layer = layer
        self.layer_tree.select(layer)
        self.state.model_changed.emit()
        self._update_model_label()
        if result.get("device"):
            self.device_label.setText(str(result["device"]))
        self.settings.setValue("last/model", spec)
        self._fit_image_to_model(result)
        if not spec.startswith("builtin:"):
            cfg.add_recent(self.settings, "recent/models", spec)
            self._refresh_recent_menu()
        self.model_loaded.emit(self.state.model_name)

    def _update_model_label(self) -> None:
        model = self.state.model
        if not model:
            self.model_label.setText("no model")
            return
        shape = "×".join(str(s) for s in model.get("input_shape", ()))
        self.model_label.setText(f"{model.get('name')}  ({shape}, {int(model.get('params', 0)):,} params)")

    def _on_model_failed(self, event: Failed) -> None:
        self._update_model_label()
        if self.state.model is None:
            for view in self.views:
                view.invalidate()  # "loading …" becomes "no model"
        spec = self._loading_spec
        action = None
        if spec and event.kind == "unsafe_model":
            action = ("Trust and load", lambda s=spec: self.open_model(s, trust=True))
        elif spec and spec.startswith("keras:") and "?" not in spec and "weights=none" in event.message:
            action = ("Use random weights", lambda s=spec: self.open_model(f"{s}?weights=none"))
        self.show_error(event.message, event.detail, action)

    # ----- images -------------------------------------------------------------
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

    def _fit_image_to_model(self, summary: dict[str, Any]) -> None:
        """A model loaded: list the samples that fit it first, and make sure the image fits it.

        A built-in sample that does not fit (the astronaut on builtin:digits) gives way to the
        image last shown with this model, else to the first fitting sample. The user's own
        images and images named on the command line stay.
        """
        spec = str(summary.get("spec") or "")
        shape, names = summary.get("input_shape"), summary.get("class_names")
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

    def select_image(self, spec: str) -> None:
        """Make spec the current image (decoded off the main thread)."""
        self.image_browser.select(spec)
        self._wanted_image = spec
        self._image_generation += 1
        self._image_pool.start(_ImageJob(self._image_signals, self._image_generation, spec))

    def _on_image_loaded(self, generation: int, spec: str, image: Any, display: Any) -> None:
        if generation != self._image_generation or self._closed:
            return
        self.state.set_image(spec, image, display)
        self.settings.setValue("last/image", spec)
        model_spec = (self.state.model or {}).get("spec") or self._loading_spec
        if model_spec:
            cfg.remember_image(self.settings, str(model_spec), spec)

    def _on_image_failed(self, generation: int, spec: str, message: str) -> None:
        if generation == self._image_generation:
            self.show_error(message)

    # ----- predictions ----------------------------------------------------------
    def update_predictions(self) -> None:
        self.predictions.show_image(self.state.display_image)
        if self.state.model is None or self.state.image is None:
            self.predictions.clear("no image" if self.state.model else "")
            return
        self._predict_job = self.client.submit(
            Request("predict", {"image": self.state.image}, owner="predictions")
        )

    # ----- jobs and status bar ----------------------------------------------------
    def _on_engine_ready(self, device: str) -> None:
        self.device_label.setText(device)
        if device.startswith("engine failed"):
            self.show_error(device)

    def _on_job_started(self, request: Request) -> None:
        self.progress.setRange(0, 0)  # busy until a Progress event gives a total
        self.job_label.setText(_job_title(request))
        self._progress_timer.start()

    def _show_progress(self) -> None:
        if self.client.running is not None:
            for widget in (self.job_label, self.progress, self.cancel_button):
                widget.show()

    def _on_job_progress(self, event: Progress) -> None:
        running = self.client.running
        if running is None or running.job_id != event.job_id:
            return
        if event.total > 0:
            self.progress.setRange(0, int(event.total))
            self.progress.setValue(int(event.step))
        text = _job_title(running)
        if event.message:
            text += f": {event.message}"
        self.job_label.setText(text)

    def _on_job_done(self, event: Finished | Failed) -> None:
        if self.client.running is None:
            self._progress_timer.stop()
            for widget in (self.job_label, self.progress, self.cancel_button):
                widget.hide()
        if event.job_id == self._model_job:
            self._model_job = None
            self.state.loading = None
            if isinstance(event, Finished) and event.reason == "done":
                self._on_model_loaded(event.result)
            elif isinstance(event, Failed):
                self._on_model_failed(event)
            else:
                self._update_model_label()
            return
        owner = self.client.owner_of(event.job_id)
        if isinstance(event, Finished):
            if event.reason == "done" and owner and self.message_bar.owner == owner:
                self.message_bar.dismiss()  # the error it showed is out of date now
            if event.reason == "done" and event.job_id == self.client.current("predictions"):
                names = (self.state.model or {}).get("class_names")
                self.predictions.show_probabilities(event.result, names)
            return
        if self.client.is_current(event.job_id):
            self.show_error(event.message, event.detail)
            self.message_bar.owner = owner

    def cancel_running(self) -> None:
        running = self.client.running
        if running is not None:
            self.client.cancel(running.job_id)

    def stop_all(self) -> None:
        """Cancel the running job and everything queued (Esc)."""
        self.client.cancel_all()

    def run_current(self) -> None:
        """Run (F5): start whatever the current tab computes (maps, filters, maximization, CAM, scan)."""
        view = self.current_view()
        if view is not None:
            view.run()

    def current_view(self) -> View | None:
        index = self.tabs.currentIndex()
        return self.views[index] if 0 <= index < len(self.views) else None

    def view(self, owner: str) -> View:
        for view in self.views:
            if view.owner == owner:
                return view
        raise KeyError(owner)

    def _on_tab_changed(self, index: int) -> None:
        for i, view in enumerate(self.views):
            view.set_active(i == index and self._shown_once)

    # ----- messages -----------------------------------------------------------------
    def show_error(
        self,
        message: str,
        detail: str = "",
        action: tuple[str, Callable[[], None]] | None = None,
        kind: str = "error",
    ) -> None:
        self.message_bar.show_message(message, kind=kind, detail=detail, action=action)
        if kind == "error":
            self.statusBar().showMessage(message.splitlines()[0][:200], 8000)

    def _ask_user(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Convscope", question)
        return answer == QMessageBox.StandardButton.Yes

    # ----- export ---------------------------------------------------------------------
    def export_view_dialog(self) -> None:
        view = self.current_view()
        if view is None:
            return
        folder = cfg.read(self.settings, "last/export_dir", str(Path.home()), str)
        default = os.path.join(folder, f"{view.owner}.png")
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export View",
            default,
            "PNG image (*.png);;TIFF image (*.tif *.tiff)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            if Path(path).suffix.lower() not in (".png", ".tif", ".tiff"):
                path += ".png"
            self.export_view(path)

    def export_view(self, path: str | os.PathLike, overwrite: bool = False) -> Path | None:
        """Write what the current tab shows (image + JSON sidecar); ask before overwriting.

        Returns the written path, or None when nothing was written (declined or failed;
        a failure is shown in the message bar and leaves no partial file).
        """
        from engine import export

        view = self.current_view()
        if view is None:
            return None
        try:
            image, settings = view.export_image()
            try:
                written, _sidecar = export.write_image(path, image, settings, overwrite=overwrite)
            except export.ExportExists as exc:
                if not self.ask(f"{exc}\n\nOverwrite it?"):
                    return None
                written, _sidecar = export.write_image(path, image, settings, overwrite=True)
        except EngineError as exc:
            self.show_error(str(exc))
            return None
        except OSError as exc:
            self.show_error(f"cannot export to {path}: {exc.strerror or exc}")
            return None
        self.settings.setValue("last/export_dir", str(Path(written).parent))
        self.statusBar().showMessage(f"exported {written}", 5000)
        return Path(written)

    # ----- dialogs ------------------------------------------------------------------
    def open_model_dialog(self) -> None:
        folder = cfg.read(self.settings, "last/model_dir", str(Path.home()), str)
        path, _ = QFileDialog.getOpenFileName(
            self, "Open Model", folder, "Keras models (*.keras *.h5 *.hdf5);;All files (*)"
        )
        if path:
            self.settings.setValue("last/model_dir", str(Path(path).parent))
            self.open_model(path)

    def open_images_dialog(self) -> None:
        folder = cfg.read(self.settings, "last/image_dir", str(Path.home()), str)
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Open Images", folder, f"Images ({patterns});;All files (*)"
        )
        if paths:
            self.settings.setValue("last/image_dir", str(Path(paths[0]).parent))
            self.open_images(paths)

    def open_folder_dialog(self) -> None:
        folder = cfg.read(self.settings, "last/image_dir", str(Path.home()), str)
        path = QFileDialog.getExistingDirectory(self, "Open Folder", folder)
        if path:
            self.settings.setValue("last/image_dir", path)
            if is_model_path(path):
                self.open_model(path)
            else:
                self.open_folder(path)

    def _refresh_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        models = cfg.read_list(self.settings, "recent/models")
        images = cfg.read_list(self.settings, "recent/images")
        for spec in models:
            self._action(menu, f"Model: {spec}", lambda s=spec: self.open_model(s))
        if models and images:
            menu.addSeparator()
        for spec in images:
            self._action(menu, f"Images: {spec}", lambda s=spec: self.open_images([s]))
        if not models and not images:
            empty = menu.addAction("(nothing yet)")
            empty.setEnabled(False)
        else:
            menu.addSeparator()
            self._action(menu, "Clear Recent", self._clear_recent)

    def _clear_recent(self) -> None:
        self.settings.remove("recent")
        self._refresh_recent_menu()

    def show_shortcuts(self) -> None:
        rows = []
        for menu_action in self.menuBar().actions():
            menu = menu_action.menu()
            if menu is None:
                continue
            for action in menu.actions():
                if not action.shortcut().isEmpty():
                    text = action.text().replace("&", "")
                    rows.append(f"<tr><td>{text}</td><td><b>{action.shortcut().toString()}</b></td></tr>")
        rows.append("<tr><td>Layers, images</td><td><b>arrow keys</b></td></tr>")
        rows.append("<tr><td>Filter layers</td><td><b>type in the Layers box</b></td></tr>")
        QMessageBox.information(
            self, "Keyboard Shortcuts", "<table cellpadding=3>" + "".join(rows) + "</table>"
        )

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About Convscope",
            "<b>Convscope</b><br>A workbench that shows what a convolutional network learned: "
            "feature maps, filters and more.<br><br>Engine on TensorFlow / Keras; window on PySide6 and pyqtgraph.",
        )

    # ----- drag and drop --------------------------------------------------------------
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

    # ----- settings ---------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        self.random_weights_action.setChecked(cfg.read(s, "keras/random_weights", False, bool))
        for view in self.views:
            s.beginGroup(f"views/{view.owner}")
            view.restore_settings(s)
            s.endGroup()
        tab = cfg.read(s, "window/tab", 0, int)
        if 0 <= tab < self.tabs.count():
            self.tabs.setCurrentIndex(tab)

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/tab", self.tabs.currentIndex())
        s.setValue("keras/random_weights", self.random_weights_action.isChecked())
        for view in self.views:
            s.beginGroup(f"views/{view.owner}")
            view.save_settings(s)
            s.endGroup()
        s.sync()


def _job_title(request: Request) -> str:
    titles = {
        "load_model": "loading model",
        "predict": "predicting",
        "feature_maps": "feature maps",
        "filters": "filters",
        "receptive_field": "receptive field",
        "sleep": "waiting",
    }
    return titles.get(request.kind, request.kind.replace("_", " "))


def active_windows() -> list[MainWindow]:
    app = QApplication.instance()
    return [w for w in (app.topLevelWidgets() if app else []) if isinstance(w, MainWindow)]
