"""An image pane on pg.ImageItem: aspect-locked, y down, click and hover in image pixels."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem

import gui.widgets  # noqa: F401  (pyqtgraph configuration)


class ImagePane(pg.GraphicsLayoutWidget):
    """Shows one image (uint8 RGB or grey, or float with explicit levels) with a message overlay.

    Signals give integer pixel coordinates (row, col) of the shown image; hovered gives
    (-1, -1) when the pointer leaves the image.
    """

    clicked = Signal(int, int)
    hovered = Signal(int, int)
    resized = Signal()  # the pane's size changed (views re-lay their grids out, debounced)

    def __init__(self, parent=None, *, pan_zoom: bool = True) -> None:
        super().__init__(parent)
        self.setMinimumSize(80, 80)
        self.setAcceptDrops(False)  # files dropped here go to the main window
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setMouseEnabled(pan_zoom, pan_zoom)
        self.item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.item)
        self.text = pg.TextItem("", color="#b0b0b0", anchor=(0.5, 0.5))
        self.text.setZValue(10)
        self.view.addItem(self.text, ignoreBounds=True)
        self.box = QGraphicsRectItem()
        pen = QPen(QColor(255, 60, 60))
        pen.setWidth(2)
        pen.setCosmetic(True)
        self.box.setPen(pen)
        self.box.setZValue(5)
        self.box.hide()
        self.view.addItem(self.box, ignoreBounds=True)
        self._shape: tuple[int, int] | None = None
        self._last_hover = (-1, -1)
        self._smooth = False
        self.view.sigRangeChanged.connect(self._update_smoothing)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.scene().sigMouseClicked.connect(self._on_click)

    # ----- content ------------------------------------------------------
    def set_image(self, image: np.ndarray, levels: tuple[float, float] | None = None, lut=None) -> None:
        """Show an array: uint8 (H, W[, 3]) as is, float with explicit levels (never auto-levels).

        uint8 images go to Qt untouched (no levels: pyqtgraph's pass-through path, no
        per-pixel rescaling on the main thread); floats need levels, (0, 1) by default.
        """
        arr = np.ascontiguousarray(image)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = np.ascontiguousarray(arr[..., 0])
        if arr.dtype == np.uint8 and lut is None and levels in (None, (0, 255)):
            self.item.setLookupTable(None, update=False)
            self.item.setLevels(None, update=False)
            self.item.setImage(arr, autoLevels=False)
        else:
            if levels is None:
                levels = (0, 255) if arr.dtype == np.uint8 else (0.0, 1.0)
            self.item.setLookupTable(lut, update=False)
            self.item.setImage(arr, autoLevels=False, levels=levels)
        shape = arr.shape[:2]
        if shape != self._shape:
            self._shape = shape
            self.view.autoRange(padding=0.02)
        self.set_message("")

    def clear_image(self, message: str = "") -> None:
        self.item.clear()
        self._shape = None
        self.box.hide()
        self.set_message(message)

    def set_message(self, message: str) -> None:
        """A centred note over the pane ("loading engine…", "no image"), or none."""
        self.text.setText(message)
        if message:
            rect = self.view.viewRect()
            self.text.setPos(rect.center())
            self.text.show()
        else:
            self.text.hide()

    def show_box(self, top: float, left: float, bottom: float, right: float) -> None:
        """Outline pixels top <= row < bottom, left <= col < right."""
        self.box.setRect(QRectF(left, top, max(right - left, 0), max(bottom - top, 0)))
        self.box.show()

    def hide_box(self) -> None:
        self.box.hide()

    def _update_smoothing(self, *_args) -> None:
        """Crisp pixels when magnified, smooth (less aliasing of grid lines) when shrunk."""
        try:
            px_x, px_y = self.view.viewPixelSize()
        except Exception:  # noqa: BLE001 - no geometry yet
            return
        smooth = max(px_x, px_y) > 1.0
        if smooth != self._smooth:
            self._smooth = smooth
            self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
            self.viewport().update()

    @property
    def image_shape(self) -> tuple[int, int] | None:
        return self._shape

    def fit_size(self) -> tuple[int, int]:
        """(height, width) in pixels the image is fitted into, for choosing a grid's layout."""
        return max(self.height(), 1), max(self.width(), 1)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        text = getattr(self, "text", None)
        if text is not None and text.isVisible():
            self.text.setPos(self.view.viewRect().center())
        if text is not None and event.oldSize() != event.size():
            self.resized.emit()

    # ----- mouse --------------------------------------------------------
    def pixel_at(self, scene_pos: QPointF) -> tuple[int, int] | None:
        """The (row, col) under a scene position, or None outside the image."""
        if self._shape is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return None
        p = self.view.mapSceneToView(scene_pos)
        row, col = int(np.floor(p.y())), int(np.floor(p.x()))
        if 0 <= row < self._shape[0] and 0 <= col < self._shape[1]:
            return row, col
        return None

    def _on_move(self, pos: QPointF) -> None:
        hit = self.pixel_at(pos) or (-1, -1)
        if hit != self._last_hover:
            self._last_hover = hit
            self.hovered.emit(*hit)

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        hit = self.pixel_at(event.scenePos())
        if hit is not None:
            self.clicked.emit(*hit)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().leaveEvent(event)
        if self._last_hover != (-1, -1):
            self._last_hover = (-1, -1)
            self.hovered.emit(-1, -1)
