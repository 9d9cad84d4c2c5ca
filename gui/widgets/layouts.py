"""Layout factories shared by the views: a column or row of widgets, and a splitter, in one call.

An item is a QWidget, a QLayout, or a tuple (widget, stretch) or (widget, stretch, alignment):

    detail = column(title, (pane, 3), row(run_button, cancel_button), (plot, 2), note)
    split = splitter(Qt.Orientation.Horizontal, grid, detail, stretch=(3, 1), collapsible=False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QBoxLayout, QHBoxLayout, QLayout, QSplitter, QVBoxLayout, QWidget

Item = Any  # QWidget | QLayout | tuple[QWidget, int] | tuple[QWidget, int, Qt.AlignmentFlag]
B = TypeVar("B", bound=QBoxLayout)


def fill(layout: B, items: Sequence[Item]) -> B:
    """Add `items` to `layout` in order (layouts nested, tuples with their stretch and alignment)."""
    for item in items:
        if isinstance(item, QLayout):
            layout.addLayout(item)
        elif isinstance(item, tuple):
            layout.addWidget(*item)
        else:
            layout.addWidget(item)
    return layout


def row(*items: Item) -> QHBoxLayout:
    """A QHBoxLayout of `items`."""
    return fill(QHBoxLayout(), items)


def column(*items: Item, margins: int = 2) -> QWidget:
    """A QWidget whose QVBoxLayout holds `items`, with `margins` pixels around them."""
    widget = QWidget()
    layout = QVBoxLayout(widget)
    layout.setContentsMargins(margins, margins, margins, margins)
    fill(layout, items)
    return widget


def splitter(
    orientation: Qt.Orientation,
    *widgets: QWidget,
    stretch: Sequence[int] = (),
    sizes: Sequence[int] | None = None,
    collapsible: bool = True,
) -> QSplitter:
    """A QSplitter of `widgets` with stretch factors `stretch` (in order) and initial `sizes`."""
    split = QSplitter(orientation)
    for widget in widgets:
        split.addWidget(widget)
    for index, factor in enumerate(stretch):
        split.setStretchFactor(index, factor)
    if sizes is not None:
        split.setSizes(list(sizes))
    if not collapsible:
        split.setChildrenCollapsible(False)
    return split
