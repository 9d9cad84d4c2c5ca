"""The user's own boxes on the Attribution tab's photo, and the map's scores against them.

"Draw boxes" (a toggle) or Shift+drag turns a left press-drag-release on the photo pane into a
rectangle in the photo's own pixels, [x0, y0, x1, y1] with x1/y1 exclusive; "Clear boxes"
removes them all. The boxes are outlined over the map (on each panel when a second target is
shown beside the first) and the map's pointing game and energy pointing game against their
union (engine.attribution.metrics.pointing_game / energy_pointing_game with a bool mask) are
shown under the buttons at once, and again whenever the map changes. A map of up to
SYNC_PIXELS pixels is scored on the main thread (about 1.5 ms at 224 × 224); a larger photo's
map in a BackgroundTask (a 1024² map takes about 0.1 s). The boxes belong to the photo: a new
image clears them. They go into the export sidecar ("boxes") and, as a mask, into the "Score
this map" metrics job. No TensorFlow here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from engine import render
from engine.attribution import figures, metrics
from engine.attribution.contract import CamOutput
from engine.errors import EngineError
from gui.widgets.background import BackgroundTask

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in photo pixels, x1 and y1 exclusive

MIN_SIDE = 1  # px: a drag narrower than this on either side is a click, not a box
SYNC_PIXELS = 512 * 512  # maps up to this size are scored on the main thread
BOX_COLOR = QColor(255, 255, 255)
BOX_Z = 6  # above the hover box (5), under the pane's message (10)


# ----- pure functions ------------------------------------------------------------------------
def union_mask(boxes: list[Box], shape: tuple[int, int]) -> np.ndarray:
    """A bool (H, W) mask that is True inside any of the boxes (clipped to the map)."""
    mask = np.zeros(tuple(int(s) for s in shape[:2]), bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(int(y0), 0) : max(int(y1), 0), max(int(x0), 0) : max(int(x1), 0)] = True
    return mask


def box_scores(heatmap: np.ndarray, boxes: list[Box]) -> tuple[bool, float]:
    """(pointing game hit, energy share inside) of a map against the union of the boxes."""
    heat = np.asarray(heatmap)
    mask = union_mask(boxes, heat.shape[:2])
    return metrics.pointing_game(heat, mask), metrics.energy_pointing_game(heat, mask)


def scores_text(n: int, pointing: bool, energy: float) -> str:
    """The line under the box buttons for n boxes and their scores."""
    what = "your box" if n == 1 else f"your {n} boxes"
    hit = "hit" if pointing else "miss"
    return f"Against {what}: pointing game <b>{hit}</b> · energy {100 * energy:.1f}% inside"


def metrics_note(out: Any) -> str:
    """The box part of the "Score this map" line: the metrics job's pointing game and energy
    against the boxes it was sent ("" when it was sent none)."""
    if getattr(out, "pointing", None) is None or getattr(out, "energy", None) is None:
        return ""
    return (
        f" · your boxes: pointing {'hit' if out.pointing else 'miss'}, energy {100 * out.energy:.1f}% inside"
    )


def _score_in_background(signals: _Signals, generation: int, heat: np.ndarray, boxes: list[Box]) -> None:
    try:
        signals.done.emit(generation, box_scores(heat, boxes))
    except EngineError as exc:
        signals.done.emit(generation, str(exc))


def panel_origins(out: Any) -> list[tuple[int, int]]:
    """(top, left) of each copy of the photo on the photo pane: one, or two side by side."""
    if not isinstance(out, CamOutput) or out.compare is None:
        return [(0, 0)]
    hw = tuple(int(s) for s in out.photo.shape[:2])
    geo = render.grid_geometry(2, 2, hw, margin=figures.GAP)
    return [(int(r[0]), int(r[1])) for r in geo.image_rects]


def panel_hit(out: Any, y: float, x: float) -> tuple[int, int]:
    """(top, left) of the copy of the photo nearest a point of the photo pane (the one under it,
    else the closest: a drag that starts just off the photo still draws on it, clipped)."""
    h, w = out.photo.shape[:2]

    def distance(origin: tuple[int, int]) -> float:
        top, left = origin
        return float(np.hypot(max(top - y, 0, y - top - h), max(left - x, 0, x - left - w)))

    return min(panel_origins(out), key=distance)


def drag_box(a: tuple[float, float], b: tuple[float, float], shape: tuple[int, int]) -> Box | None:
    """The box between two points (x, y) in photo pixels, rounded and clipped to the photo;
    None when it is thinner than MIN_SIDE."""
    h, w = int(shape[0]), int(shape[1])
    x0, x1 = sorted(int(np.clip(round(v), 0, w)) for v in (a[0], b[0]))
    y0, y1 = sorted(int(np.clip(round(v), 0, h)) for v in (a[1], b[1]))
    if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
        return None
    return x0, y0, x1, y1


class _Signals(QObject):
    done = Signal(int, object)  # generation, (pointing, energy) or an error message


# ----- the controller -------------------------------------------------------------------------
class BoxController(QObject):
    """Draws, keeps and scores the user's boxes on an AttributionView's photo pane.

    The view supplies photo_pane, draw_boxes_button (checkable), clear_boxes_button,
    box_label, `result` (the CamOutput / SaliencyOutput shown) and `request_image`; it calls
    map_changed() whenever `result` changes (a new map, or none).
    """

    changed = Signal()  # the boxes or their scores changed

    def __init__(self, view: Any) -> None:
        super().__init__(view)
        self.view = view
        self.pane = view.photo_pane
        self.boxes: list[Box] = []
        self.pointing: bool | None = None
        self.energy: float | None = None
        self.scoring = False  # a background scoring is in flight
        self._image_key: Any = None
        self._items: list[QGraphicsRectItem] = []
        self._start: tuple[float, float, int, int] | None = None  # x, y in the photo, panel top, left
        self._generation = 0
        self._signals = _Signals(self)
        self._signals.done.connect(self._on_scored)
        self._band = self._rect_item(Qt.PenStyle.DashLine)
        self.pane.viewport().installEventFilter(self)
        view.draw_boxes_button.toggled.connect(self._on_toggled)
        view.clear_boxes_button.clicked.connect(self.clear)
        self.changed.connect(self._update_buttons)  # Clear is enabled only while there are boxes
        self._update_buttons()

    # ----- state ---------------------------------------------------------------------------
    def set_boxes(self, boxes: list[Box]) -> None:
        """Replace the boxes ([x0, y0, x1, y1] in photo pixels) and rescore."""
        self.boxes = [tuple(int(v) for v in b) for b in boxes]  # type: ignore[misc]
        self._redraw()
        self._rescore()

    def add_box(self, box: Box) -> None:
        self.set_boxes([*self.boxes, box])

    def clear(self) -> None:
        self.set_boxes([])

    def map_changed(self) -> None:
        """The view's map changed: a new photo clears the boxes; redraw and rescore them."""
        out = self.view.result
        if out is not None:
            key = (self.view.request_image, tuple(out.photo.shape[:2]))
            if key != self._image_key:
                self._image_key = key
                self.boxes = []
        self._start = None
        self._band.hide()
        self._redraw()
        self._rescore()

    def mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The union of the boxes as a bool mask of `shape` (for MetricsParams.mask); None without boxes."""
        return union_mask(self.boxes, shape) if self.boxes else None

    def settings(self) -> dict[str, Any]:
        """The sidecar entries: the boxes and the scores against them (nothing without boxes)."""
        if not self.boxes:
            return {}
        out: dict[str, Any] = {"boxes": [list(b) for b in self.boxes]}
        if self.pointing is not None and self.energy is not None:
            out["box_scores"] = {"pointing": self.pointing, "energy": self.energy}
        return out

    # ----- scores --------------------------------------------------------------------------
    def _rescore(self) -> None:
        self._generation += 1
        self.pointing = self.energy = None
        self.scoring = False
        out = self.view.result
        if out is None or not self.boxes:
            self.view.box_label.setText("")
            self.changed.emit()
            return
        heat = np.asarray(out.heatmap)
        if heat.size <= SYNC_PIXELS:
            try:
                self._show(box_scores(heat, self.boxes))
            except EngineError as exc:
                self._show(str(exc))
            return
        self.scoring = True
        self.view.box_label.setText("scoring your boxes…")
        task = BackgroundTask(_score_in_background, self._signals, self._generation, heat, list(self.boxes))
        QThreadPool.globalInstance().start(task)

    def _on_scored(self, generation: int, answer: Any) -> None:
        if generation == self._generation:
            self.scoring = False
            self._show(answer)

    def _show(self, answer: tuple[bool, float] | str) -> None:
        if isinstance(answer, str):
            self.view.box_label.setText(answer)
        else:
            self.pointing, self.energy = bool(answer[0]), float(answer[1])
            self.view.box_label.setText(scores_text(len(self.boxes), self.pointing, self.energy))
        self.changed.emit()

    # ----- drawing -------------------------------------------------------------------------
    def _rect_item(self, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QGraphicsRectItem:
        item = QGraphicsRectItem()
        pen = QPen(BOX_COLOR)
        pen.setWidth(2)
        pen.setCosmetic(True)
        pen.setStyle(style)
        item.setPen(pen)
        item.setZValue(BOX_Z)
        item.hide()
        self.pane.view.addItem(item, ignoreBounds=True)
        return item

    def _redraw(self) -> None:
        """One outlined rectangle per box on each copy of the photo (none without a map)."""
        out = self.view.result
        rects = []
        if out is not None:
            for top, left in panel_origins(out):
                rects += [QRectF(left + x0, top + y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in self.boxes]
        while len(self._items) < len(rects):
            self._items.append(self._rect_item())
        for item, rect in zip(self._items, rects):
            item.setRect(rect)
            item.show()
        for item in self._items[len(rects) :]:
            item.hide()

    def _on_toggled(self, on: bool) -> None:
        if on:
            self.pane.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.pane.viewport().unsetCursor()

    def _update_buttons(self) -> None:
        self.view.clear_boxes_button.setEnabled(bool(self.boxes))

    def _pane_point(self, event: Any) -> tuple[float, float]:
        """(x, y) on the photo pane's image of a viewport mouse event."""
        scene = self.pane.mapToScene(event.position().toPoint())
        p = self.pane.view.mapSceneToView(QPointF(scene))
        return float(p.x()), float(p.y())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress:
            return self._press(event)
        if kind == QEvent.Type.MouseMove and self._start is not None:
            self._move(event)
            return True
        if kind == QEvent.Type.MouseButtonRelease and self._start is not None:
            self._release(event)
            return True
        return False

    def _press(self, event: Any) -> bool:
        out = self.view.result
        drawing = self.view.draw_boxes_button.isChecked() or bool(
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        )
        if event.button() != Qt.MouseButton.LeftButton or not drawing or out is None:
            return False
        x, y = self._pane_point(event)
        top, left = panel_hit(out, y, x)
        h, w = out.photo.shape[:2]
        self._start = (float(np.clip(x - left, 0, w)), float(np.clip(y - top, 0, h)), top, left)
        self._move(event)
        return True

    def _end_point(self, event: Any) -> tuple[float, float]:
        assert self._start is not None
        x, y = self._pane_point(event)
        return x - self._start[3], y - self._start[2]

    def _move(self, event: Any) -> None:
        assert self._start is not None
        x0, y0, top, left = self._start
        x, y = self._end_point(event)
        h, w = self.view.result.photo.shape[:2]
        x, y = float(np.clip(x, 0, w)), float(np.clip(y, 0, h))
        self._band.setRect(QRectF(left + min(x0, x), top + min(y0, y), abs(x - x0), abs(y - y0)))
        self._band.show()

    def _release(self, event: Any) -> None:
        assert self._start is not None
        end = self._end_point(event)
        start = self._start[:2]
        self._start = None
        self._band.hide()
        out = self.view.result
        box = drag_box(start, end, out.photo.shape[:2]) if out is not None else None
        if box is not None:
            self.add_box(box)
