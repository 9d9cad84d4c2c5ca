"""Form building written once: a labelled row that hands its field back (so a field is made and
placed in one line), a compound field (widgets in a row without margins), and the wrapping
label that forms use for notes.

    self.mode_box = add_row(form, "Mode", combo(MODES))
    self.pos = add_row(form, "Row, col", row_widget(self.row_spin, QLabel(","), self.col_spin))
"""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QWidget

from gui.widgets.layouts import Item, fill

F = TypeVar("F")  # a QWidget or a QLayout


def add_row(form: QFormLayout, label: str, field: F) -> F:
    """Add the row `label`: `field` to `form` and return `field`."""
    form.addRow(label, field)
    return field


def row_widget(*items: Item, stretch: bool = False) -> QWidget:
    """A QWidget holding `items` in a row without margins (a form's compound field); with
    `stretch` they are packed to the left. Items as gui.widgets.layouts.row takes them."""
    widget = QWidget()
    layout = fill(QHBoxLayout(widget), items)
    layout.setContentsMargins(0, 0, 0, 0)
    if stretch:
        layout.addStretch(1)
    return widget


def note_label(text: str = "", selectable: bool = False) -> QLabel:
    """A word-wrapping QLabel; `selectable`: its text can be selected with the mouse (to copy)."""
    label = QLabel(text)
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label
