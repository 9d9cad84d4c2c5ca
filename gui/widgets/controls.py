"""The controls above a tab: a row of labelled fields, the tab's column (controls, info line,
picture), a combo box chosen by its data, and the single-shot timer that debounces resizes and
streamed frames. (Generic rows, columns and splitters: gui.widgets.layouts.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLayout, QVBoxLayout, QWidget

from engine.errors import EngineError

ROW_SPACING = 8  # px between one control and the next label


def control_row(*controls: tuple[str, QWidget]) -> QHBoxLayout:
    """A row of (label, control) pairs above a tab's picture, packed to the left."""
    row = QHBoxLayout()
    row.setContentsMargins(4, 2, 4, 2)
    for text, widget in controls:
        row.addWidget(QLabel(text))
        row.addWidget(widget)
        row.addSpacing(ROW_SPACING)
    row.addStretch(1)
    return row


def tab_column(view: QWidget, controls: QLayout, info: QLabel, body: QWidget) -> QVBoxLayout:
    """The view's layout: its controls, a one-line info under them, then `body` taking the rest."""
    column = QVBoxLayout(view)
    column.setContentsMargins(0, 0, 0, 0)
    column.addLayout(controls)
    info.setContentsMargins(6, 0, 6, 0)
    column.addWidget(info)
    column.addWidget(body, 1)
    return column


def select_data(box: QComboBox, data: Any, what: str) -> None:
    """Make the item whose data is `data` current; EngineError "unknown WHAT 'data'; choose from: ..."
    (the items' data) if none is."""
    index = box.findData(data)
    if index < 0:
        choices = ", ".join(str(box.itemData(i)) for i in range(box.count()))
        raise EngineError(f"unknown {what} {data!r}; choose from: {choices}")
    box.setCurrentIndex(index)


def single_shot_timer(parent: QObject, interval_ms: int, slot: Callable[[], Any]) -> QTimer:
    """A single-shot timer that calls slot interval_ms after its (last) start()."""
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(interval_ms)
    timer.timeout.connect(slot)
    return timer
