"""Small form-field factories shared by the views (spin boxes and combo boxes set up in one call)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QLabel, QSizePolicy, QSpinBox, QWidget


def combo(items: tuple[tuple[str, Any], ...] | tuple[str, ...], tip: str = "") -> QComboBox:
    """A combo box of (label, data) pairs, or of plain strings that are both; `tip` its tooltip."""
    box = QComboBox()
    for item in items:
        label, key = (item, item) if isinstance(item, str) else item
        box.addItem(label, key)
    if tip:
        box.setToolTip(tip)
    return box


def double_spin(value: float, lo: float, hi: float, decimals: int) -> QDoubleSpinBox:
    """A QDoubleSpinBox on [lo, hi] stepping by its last decimal."""
    spin = QDoubleSpinBox()
    spin.setRange(lo, hi)
    spin.setDecimals(decimals)
    spin.setSingleStep(10 ** (-decimals) if decimals else 1.0)
    spin.setValue(value)
    return spin


def int_spin(value: int, lo: int, hi: int) -> QSpinBox:
    """A QSpinBox on [lo, hi] set to value."""
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setValue(value)
    return spin


class ClippedLabel(QLabel):
    """A one-line label that never widens its layout: long text is clipped and shown whole as its tooltip."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        super().setText(text)
        self.setToolTip(text)


def info_line(text: str = "") -> ClippedLabel:
    """A tab's one-line note (sizes, ranges): clipped to the width, whole in its tooltip, selectable."""
    label = ClippedLabel(text)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label
