"""The window's menus and the file dialogs they open (a mixin of MainWindow).

File (models: a file, the Keras applications, the built-in models; images and folders;
Recent; Export View), View (docks, tabs by Ctrl+1…), Run (F5 runs the current tab, Esc
stops every job) and Help (the shortcut table is read from the menus themselves). The
dialogs remember their folders in QSettings and hand the choice to the window's
open_model / open_images / open_folder; File → Export View… opens gui/export_dialog.py's
ExportDialog (figure or raw, format, size, DPI, style, preview).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMenu, QMessageBox, QTabWidget

from engine.images import IMAGE_SUFFIXES
from gui import settings as cfg
from gui.image_opening import is_model_path
from gui.views.base import View

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


class MenusMixin:
    """Builds the menu bar and owns the dialogs; MainWindow supplies the attributes below."""

    settings: QSettings
    tabs: QTabWidget
    views: list[View]
    layers_dock: QDockWidget
    images_dock: QDockWidget
    predictions_dock: QDockWidget
    recent_menu: QMenu
    random_weights_action: QAction

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

    def open_keras_application(self, name: str) -> int:
        suffix = "?weights=none" if self.random_weights_action.isChecked() else ""
        return self.open_model(f"keras:{name}{suffix}")

    # ----- Recent ---------------------------------------------------------------------
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

    # ----- dialogs --------------------------------------------------------------------
    def open_model_dialog(self) -> None:
        folder = cfg.read(self.settings, "last/model_dir", str(Path.home()), str)
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open Model",
            folder,
            "Keras models (*.keras *.h5 *.hdf5);;All files (*)",
        )
        if path:
            self.settings.setValue("last/model_dir", str(Path(path).parent))
            self.open_model(path)

    def open_images_dialog(self) -> None:
        folder = cfg.read(self.settings, "last/image_dir", str(Path.home()), str)
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Open Images",
            folder,
            f"Images ({patterns});;All files (*)",
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

    def export_view_dialog(self) -> None:
        """File → Export View…: the current tab as a figure or raw, with a preview (gui/export_dialog.py)."""
        from gui.export_dialog import ExportDialog

        view = self.current_view()
        if view is None:
            return
        dialog = ExportDialog(view, self.settings, lambda question: self.ask(question), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self._exported(dialog.written))
        self.export_dialog = dialog
        dialog.open()

    def _exported(self, written: list[Path]) -> None:
        if written:
            self.statusBar().showMessage(f"exported {written[0]}", 5000)

    # ----- Help -----------------------------------------------------------------------
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
            self,
            "Keyboard Shortcuts",
            "<table cellpadding=3>" + "".join(rows) + "</table>",
        )

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About Convscope",
            "<b>Convscope</b><br>A workbench that shows what a convolutional network learned: "
            "feature maps, filters and more.<br><br>Engine on TensorFlow / Keras; window on PySide6 and pyqtgraph.",
        )

    # ----- supplied by MainWindow -----------------------------------------------------
    open_model: Callable[..., int]
    open_images: Callable[..., None]
    open_folder: Callable[..., None]
    export_view: Callable[..., Any]
    ask: Callable[[str], bool]
    current_view: Callable[[], View | None]
    run_current: Callable[[], None]
    stop_all: Callable[[], None]
