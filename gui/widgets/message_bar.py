"""An inline message area above the tabs: errors and notes without modal dialogs."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget


class MessageBar(QFrame):
    """One message at a time with an optional action button and a Details… button."""

    STYLES = {
        "error": "background:#5a1d1d; color:#ffd8d8; border-radius:3px;",
        "info": "background:#1d3a5a; color:#d8e8ff; border-radius:3px;",
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.details_button = QPushButton("Details…")
        self.close_button = QPushButton("✕")
        self.close_button.setFlat(True)
        self.close_button.setToolTip("Dismiss")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(self.details_button)
        layout.addWidget(self.close_button)
        self.close_button.clicked.connect(self.dismiss)
        self.details_button.clicked.connect(self._show_details)
        self.action_button.clicked.connect(self._run_action)
        self.kind = ""
        self.detail = ""
        self.owner: str | None = None  # the job owner whose failure is shown, if any
        self._action: Callable[[], None] | None = None
        self.history: list[tuple[str, str]] = []
        self.hide()

    def show_message(
        self,
        text: str,
        kind: str = "error",
        detail: str = "",
        action: tuple[str, Callable[[], None]] | None = None,
    ) -> None:
        self.kind = kind
        self.detail = detail
        self.owner = None
        self.history.append((kind, text))
        self.setStyleSheet(f"MessageBar {{{self.STYLES.get(kind, '')}}} QLabel {{background: transparent;}}")
        self.label.setText(text)
        self.details_button.setVisible(bool(detail))
        if action:
            self.action_button.setText(action[0])
            self._action = action[1]
            self.action_button.show()
        else:
            self._action = None
            self.action_button.hide()
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self.hide()
        self.label.setText("")
        self._action = None
        self.owner = None

    def _run_action(self) -> None:
        action = self._action
        self.dismiss()
        if action is not None:
            action()

    def _show_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "Details", self.label.text(), parent=self)
        box.setDetailedText(self.detail)
        box.exec()
