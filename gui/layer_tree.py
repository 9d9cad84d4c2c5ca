"""The layer tree dock: name, type, output shape, parameters; nested models; a filter box."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLineEdit, QTreeView, QVBoxLayout, QWidget

PATH_ROLE = Qt.ItemDataRole.UserRole + 1
COLUMNS = ("Layer", "Type", "Output", "Params")


def shape_text(shape: Iterable[int | None]) -> str:
    """(26, 26, 32) -> '26×26×32'; unknown sizes show as '?'."""
    parts = ["?" if s is None else str(s) for s in shape]
    return "×".join(parts) if parts else "—"


class LayerTree(QWidget):
    """A filterable tree of LayerInfo rows; emits layer_selected(path, by_user) on selection.

    by_user is True for the user's own picks (a click or the keyboard) and False for the
    selection the window makes itself through select(), so the signal can go straight to
    AppState.set_layer(path, by_user).
    """

    layer_selected = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter layers (name or type)…")
        self.filter.setClearButtonEnabled(True)
        self.model = QStandardItemModel(0, len(COLUMNS))
        self.model.setHorizontalHeaderLabels(list(COLUMNS))
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.model)
        self.proxy.setRecursiveFilteringEnabled(True)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.tree = QTreeView()
        self.tree.setModel(self.proxy)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.tree.header()
        header.setStretchLastSection(False)
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self.filter.textChanged.connect(self._on_filter)
        self.tree.selectionModel().currentChanged.connect(self._on_current)
        self.tree.clicked.connect(self._on_clicked)
        self._items: dict[str, QStandardItem] = {}
        self._quiet = False
        self._selecting = False  # inside select(): a change made by the window, not the user

    def set_layers(self, layers: Iterable[Any]) -> None:
        """Fill the tree from a LayerInfo list (children become expandable rows)."""
        self._quiet = True
        try:
            self.model.removeRows(0, self.model.rowCount())
            self._items.clear()
            root = self.model.invisibleRootItem()
            for info in layers:
                self._add(root, info)
        finally:
            self._quiet = False
        self._on_filter(self.filter.text())

    def _add(self, parent: QStandardItem, info: Any) -> None:
        name = QStandardItem(info.name)
        name.setData(info.path, PATH_ROLE)
        name.setToolTip(f"{info.path}\n{info.type} ({info.kind})")
        kind = QStandardItem(info.type)
        shape = QStandardItem(shape_text(info.output_shape))
        params = QStandardItem(f"{int(info.params):,}")
        params.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row = [name, kind, shape, params]
        for item in row:
            item.setEditable(False)
        parent.appendRow(row)
        self._items[info.path] = name
        for child in info.children:
            self._add(name, child)

    def paths(self) -> list[str]:
        """Every layer path in tree order."""
        return list(self._items)

    def visible_paths(self) -> list[str]:
        """The paths the filter lets through, in tree order."""
        out: list[str] = []

        def walk(parent: QModelIndex) -> None:
            for row in range(self.proxy.rowCount(parent)):
                index = self.proxy.index(row, 0, parent)
                out.append(index.data(PATH_ROLE))
                walk(index)

        walk(QModelIndex())
        return out

    def select(self, path: str | None) -> None:
        """Make path the current row (no signal when it already is)."""
        item = self._items.get(path) if path else None
        if item is None:
            self.tree.clearSelection()
            return
        index = self.proxy.mapFromSource(item.index())
        if not index.isValid():
            return
        parent = index.parent()
        while parent.isValid():
            self.tree.expand(parent)
            parent = parent.parent()
        self._selecting = True
        try:
            self.tree.setCurrentIndex(index)
        finally:
            self._selecting = False
        self.tree.scrollTo(index)

    def pick(self, path: str) -> None:
        """Select path as the user's own pick (what a click on its row does)."""
        self.select(path)
        if self.current_path() == path:
            self.layer_selected.emit(path, True)

    def current_path(self) -> str | None:
        index = self.tree.currentIndex()
        return index.siblingAtColumn(0).data(PATH_ROLE) if index.isValid() else None

    def _on_filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        if text.strip():
            self.tree.expandAll()

    def _on_current(self, current: QModelIndex, previous: QModelIndex) -> None:
        if self._quiet or not current.isValid():
            return
        path = current.siblingAtColumn(0).data(PATH_ROLE)
        if path:
            self.layer_selected.emit(path, not self._selecting)

    def _on_clicked(self, index: QModelIndex) -> None:
        """A click on a row, the current one included: the user's pick."""
        path = index.siblingAtColumn(0).data(PATH_ROLE) if index.isValid() else None
        if path and not self._quiet:
            self.layer_selected.emit(path, True)
