"""File → Export View…: figure or raw, format, style, size and DPI, with a preview of the file.

The figure is the one `python main.py export KIND` writes: the view's figure_spec() (built
with the engine.plot builder the CLI uses for that kind) composed by engine.plot at the chosen
style, size and DPI. The preview renders it off the main thread in a RenderWorker (newest
request wins, changes debounced), at the size it will be saved and scaled down to the pane.
Raw is the view's export_image() as today, bit for bit, plus a .npy of its values. Save asks
for the path and never overwrites without asking; the choices are remembered in QSettings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError
from gui import settings as cfg
from gui.export_choice import (
    FIGURE_FORMATS,
    RAW_FORMATS,
    SIZE_MODES,
    UNITS,
    ExportChoice,
    export_view,
    preview_pixels,
)
from gui.views.base import View
from gui.widgets.controls import single_shot_timer
from gui.widgets.fields import combo, double_spin, int_spin
from gui.widgets.forms import add_row, row_widget
from gui.widgets.layouts import row
from gui.widgets.render_worker import RenderWorker
from gui.widgets.wiring import signals_blocked

PREVIEW_DEBOUNCE_MS = 200
PREVIEW_MIN = (420, 320)


class ExportDialog(QDialog):
    """Export the current tab as a publication figure or as its raw image (see the module docstring)."""

    def __init__(
        self,
        view: View,
        settings: QSettings,
        ask: Callable[[str], bool],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export View: {view.title}")
        self.view, self.settings, self.ask = view, settings, ask
        self.written: list[Path] = []
        self.preview_image: np.ndarray | None = None  # what the preview shows (uint8 RGB)
        self._spec: Any = None
        self._spec_error = ""
        try:
            self._spec = view.figure_spec()
        except EngineError as exc:
            self._spec_error = str(exc)

        self.figure_radio = QRadioButton("Figure")
        self.figure_radio.setToolTip("Title, labels and a colour bar of real values, at the size asked for")
        self.raw_radio = QRadioButton("Raw")
        self.raw_radio.setToolTip(
            "The bare image at its native resolution (as before) and a .npy of its values"
        )
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.figure_radio)
        self.mode_group.addButton(self.raw_radio)
        modes = row(self.figure_radio, self.raw_radio)
        modes.addStretch(1)
        self.form = form = QFormLayout()
        form.addRow("Export", modes)
        self.format_box = add_row(form, "Format", combo(FIGURE_FORMATS))
        styles = (("Paper (serif 8 pt, 3.5 in column)", "paper"), ("Slide (sans 16 pt, 16:9)", "slide"))
        self.style_box = add_row(form, "Style", combo(styles))
        size_tip = "The figure's size: the style's, width × height, or a width in pixels"
        self.size_box = add_row(form, "Size", combo(SIZE_MODES, tip=size_tip))
        self.width_spin = double_spin(3.5, 0.5, 20000, 2)
        self.height_spin = double_spin(2.5, 0.5, 20000, 2)
        self.unit_box = combo(UNITS)
        self.wh_row = add_row(
            form, "", row_widget(self.width_spin, QLabel("×"), self.height_spin, self.unit_box)
        )
        self.width_px_spin = add_row(form, "Width", int_spin(1050, 16, 20000))
        self.width_px_spin.setSuffix(" px")
        self.dpi_spin = add_row(form, "Resolution", int_spin(300, 10, 2400))
        self.dpi_spin.setSuffix(" dpi")
        self.size_info = add_row(form, "", QLabel(""))
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020")

        left = QVBoxLayout()
        left.addLayout(form)
        left.addWidget(self.error)
        left.addStretch(1)

        self.preview = QLabel("")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(*PREVIEW_MIN)
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.preview.setStyleSheet("background: #e8e8e8; border: 1px solid #b0b0b0")
        self.preview_note = QLabel("")
        right = QVBoxLayout()
        right.addWidget(self.preview, 1)
        right.addWidget(self.preview_note)

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setText("Save…")
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        body = QHBoxLayout()
        body.addLayout(left, 0)
        body.addLayout(right, 1)
        outer = QVBoxLayout(self)
        outer.addLayout(body, 1)
        outer.addWidget(self.buttons)

        import engine.plot.save  # noqa: F401 - matplotlib's first import on this thread, never racing the worker's

        self.renderer = RenderWorker(self)
        self.renderer.done.connect(self._on_preview)
        self.renderer.failed.connect(self._on_preview_failed)
        self._timer = single_shot_timer(self, PREVIEW_DEBOUNCE_MS, self.update_preview)
        self.set_choice(ExportChoice.load(settings))
        self.mode_group.buttonToggled.connect(self._mode_changed)
        self.style_box.currentIndexChanged.connect(self._style_changed)
        for box in (self.format_box, self.size_box, self.unit_box):
            box.currentIndexChanged.connect(self._changed)
        for spin in (self.width_spin, self.height_spin, self.width_px_spin, self.dpi_spin):
            spin.valueChanged.connect(self._changed)
        self.unit_box.currentIndexChanged.connect(self._unit_changed)
        self._unit = self.unit_box.currentText()
        self.resize(960, 560)
        self._timer.stop()
        self.update_preview()

    # ----- choices -----------------------------------------------------------------------------
    def choice(self) -> ExportChoice:
        """The choices the dialog shows now."""
        return ExportChoice(
            mode="raw" if self.raw_radio.isChecked() else "figure",
            fmt=str(self.format_box.currentData()),
            style=str(self.style_box.currentData()),
            size_mode=str(self.size_box.currentData()),
            width=float(self.width_spin.value()),
            height=float(self.height_spin.value()),
            unit=self.unit_box.currentText(),
            dpi=float(self.dpi_spin.value()),
            width_px=int(self.width_px_spin.value()),
        )

    def set_choice(self, choice: ExportChoice) -> None:
        """Show `choice` (a figure choice falls back to raw when the view has no figure)."""
        with signals_blocked(self.figure_radio, self.raw_radio, self.format_box, self.style_box):
            raw = choice.raw or self._spec is None
            self.figure_radio.setEnabled(self._spec is not None)
            if self._spec is None:
                self.figure_radio.setToolTip(f"No figure: {self._spec_error}")
            (self.raw_radio if raw else self.figure_radio).setChecked(True)
            self._fill_formats(raw, choice.fmt)
            self.style_box.setCurrentIndex(max(0, self.style_box.findData(choice.style)))
            self._set_size(
                choice.size_mode, choice.unit, choice.width, choice.height, choice.dpi, choice.width_px
            )
        self._changed()

    def _fill_formats(self, raw: bool, current: str) -> None:
        box = self.format_box
        with signals_blocked(box):
            box.clear()
            for label, suffix in RAW_FORMATS if raw else FIGURE_FORMATS:
                box.addItem(label, suffix)
            box.setCurrentIndex(max(0, box.findData(".tif" if current == ".tiff" else current)))

    def _set_size(self, mode: str, unit: str, width: float, height: float, dpi: float, width_px: int) -> None:
        """Show a size (the size mode, the unit and its range, width × height, DPI, width in pixels)
        without signals: the caller calls _changed() once."""
        sizes = (self.size_box, self.unit_box, self.width_spin, self.height_spin)
        with signals_blocked(*sizes, self.width_px_spin, self.dpi_spin):
            self.size_box.setCurrentIndex(max(0, self.size_box.findData(mode)))
            self.unit_box.setCurrentText(unit)
            self._unit = unit
            self._set_size_range(unit)
            self.width_spin.setValue(width)
            self.height_spin.setValue(height)
            self.dpi_spin.setValue(int(round(dpi)))
            self.width_px_spin.setValue(width_px)

    def _set_size_range(self, unit: str) -> None:
        lo, hi, decimals = (16, 20000, 0) if unit == "px" else (0.5, 100, 2)
        for spin in (self.width_spin, self.height_spin):
            spin.setDecimals(decimals)
            spin.setRange(lo, hi)

    def _mode_changed(self, *_: Any) -> None:
        self._fill_formats(self.raw_radio.isChecked(), str(self.format_box.currentData()))
        self._changed()

    def _style_changed(self, *_: Any) -> None:
        """A style preset sets its default size and DPI."""
        from engine.plot import STYLES

        st = STYLES[str(self.style_box.currentData())]
        height = st.height_in if st.height_in is not None else round(st.width_in * 0.75, 2)
        self._set_size("default", "in", st.width_in, height, st.dpi, int(round(st.width_in * st.dpi)))
        self._changed()

    def _unit_changed(self, *_: Any) -> None:
        """Switching in ↔ px keeps the physical size: values convert at the current DPI."""
        unit, dpi = self.unit_box.currentText(), float(self.dpi_spin.value())
        if unit == self._unit:
            return
        factor = dpi if unit == "px" else 1 / dpi
        w, h = self.width_spin.value() * factor, self.height_spin.value() * factor
        self._unit = unit
        with signals_blocked(self.width_spin, self.height_spin):
            self._set_size_range(unit)
            self.width_spin.setValue(w)
            self.height_spin.setValue(h)
        self._changed()

    def _sync_widgets(self) -> None:
        """Show only the fields that apply, and what the size comes to in pixels."""
        choice = self.choice()
        figure = not choice.raw
        for w in (self.style_box, self.size_box, self.dpi_spin):
            w.setEnabled(figure)
        self.form.setRowVisible(self.wh_row, figure and choice.size_mode == "wh")
        self.form.setRowVisible(self.width_px_spin, figure and choice.size_mode == "width")
        self.size_info.setText(self._size_text(choice))

    def _size_text(self, choice: ExportChoice) -> str:
        if choice.raw:
            return "the image at its native resolution"
        try:
            size = choice.figure_size()
        except EngineError as exc:
            return str(exc)
        if size.pixels is None:
            return (
                f"{size.width_in:.2f} in wide ({round(size.width_in * size.dpi)} px), height from the layout"
            )
        w, h = size.pixels
        return f"{w} × {h} px = {size.width_in:.2f} × {size.height_in:.2f} in at {size.dpi:g} dpi"

    def _changed(self, *_: Any) -> None:
        self._sync_widgets()
        self._timer.start()

    # ----- preview -----------------------------------------------------------------------------
    def update_preview(self) -> None:
        """Render the preview for the current choices (raw: the image itself; figure: off-thread)."""
        self.error.setText("")
        choice = self.choice()
        if choice.raw:
            try:
                image, _ = self.view.export_image()
            except EngineError as exc:
                self._show_error(str(exc))
                return
            self.renderer.cancel()
            self._on_preview(np.asarray(image))
            return
        try:
            choice.figure_size()
        except EngineError as exc:
            self._show_error(str(exc))
            return
        self.preview_note.setText("rendering…")
        self.renderer.render(preview_pixels, self._spec, choice)

    def preview_busy(self) -> bool:
        return self._timer.isActive() or self.renderer.busy()

    def _on_preview(self, image: np.ndarray) -> None:
        a = np.ascontiguousarray(image)
        if a.ndim == 2:
            a = np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2))
        a = (
            np.ascontiguousarray(a[:, :, :3])
            if a.dtype == np.uint8
            else np.ascontiguousarray((np.clip(a[..., :3], 0, 1) * 255).astype(np.uint8))
        )
        self.preview_image = a
        h, w = a.shape[:2]
        self._qimage = QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888).copy()
        self._show_pixmap()
        self.preview_note.setText(f"preview of the file: {w} × {h} px")

    def _show_pixmap(self) -> None:
        qimage = getattr(self, "_qimage", None)
        if qimage is None:
            return
        box = self.preview.contentsRect().size()
        pixmap = QPixmap.fromImage(qimage)
        if pixmap.width() > box.width() or pixmap.height() > box.height():
            pixmap = pixmap.scaled(
                box, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        self.preview.setPixmap(pixmap)

    def _on_preview_failed(self, message: str) -> None:
        self._show_error(message.splitlines()[0] if message else "the preview failed")

    def _show_error(self, message: str) -> None:
        self.error.setText(message)
        self.preview_note.setText("")

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._show_pixmap()

    # ----- saving ------------------------------------------------------------------------------
    def save(self) -> None:
        """Ask for the path (the format's suffix), then write; the dialog closes when written."""
        choice = self.choice()
        folder = cfg.read(self.settings, "last/export_dir", str(Path.home()), str)
        label = self.format_box.currentText()
        default = os.path.join(folder, f"{self.view.owner}{choice.fmt}")
        pattern = "*.tif *.tiff" if choice.fmt == ".tif" else f"*{choice.fmt}"
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export View",
            default,
            f"{label} ({pattern})",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.save_to(path)

    def save_to(self, path: str | os.PathLike) -> list[Path]:
        """Write the export at `path` (the chosen format's suffix is added when missing); asks before
        replacing a file. Returns the written paths ([] when declined or failed, the error shown)."""
        from engine.export import ExportExists

        choice = self.choice()
        path = Path(path)
        suffixes = (".tif", ".tiff") if choice.fmt == ".tif" else (choice.fmt,)
        if path.suffix.lower() not in suffixes:
            path = path.with_name(path.name + choice.fmt)
        try:
            try:
                written = export_view(self.view, path, choice)
            except ExportExists as exc:
                if not self.ask(f"{exc}\n\nOverwrite it?"):
                    return []
                written = export_view(self.view, path, choice, overwrite=True)
        except EngineError as exc:
            self._show_error(str(exc))
            return []
        except OSError as exc:
            self._show_error(f"cannot export to {path}: {exc.strerror or exc}")
            return []
        choice.save(self.settings)
        self.settings.setValue("last/export_dir", str(path.parent))
        self.written = written
        self.accept()
        return written

    def done(self, result: int) -> None:  # noqa: D102 - QDialog's
        self.renderer.shutdown()
        super().done(result)
