"""The predictions dock: the current image and the model's top-5 classes for it as a bar chart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from gui.widgets.image_pane import ImagePane
from gui.widgets.plots import static_plot

TOP_K = 5


def top_k(probs: np.ndarray, k: int = TOP_K) -> list[tuple[int, float]]:
    """(class index, probability) of the k most likely classes, most likely first."""
    p = np.asarray(probs, np.float64).reshape(-1)
    order = np.argsort(-p, kind="stable")[:k]
    return [(int(i), float(p[i])) for i in order]


class PredictionsPanel(QWidget):
    """Horizontal bars of the top-5 probabilities, labelled with class names."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = static_plot(bottom="probability")
        self.plot.setXRange(-0.02, 1.06, padding=0)
        self.plot.getViewBox().invertY(True)
        self.plot.getAxis("bottom").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")], []])
        self.plot.setMinimumHeight(120)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=[], width=[], brush="#4a90d9")
        self.plot.addItem(self.bars)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.input = ImagePane(pan_zoom=False)
        self.input.setToolTip("The current image")
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.caption)
        lower_layout.addWidget(self.plot, 1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.input)
        split.addWidget(lower)
        split.setSizes([260, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(split)
        self.rows: list[tuple[str, float]] = []

    def show_probabilities(self, probs: np.ndarray, names: Sequence[str] | None) -> None:
        """Draw the top-5 bars; names label the classes (indices where the model has none)."""
        rows = []
        for index, p in top_k(probs):
            label = str(names[index]) if names and index < len(names) else f"class {index}"
            rows.append((label, p))
        self.rows = rows
        n = len(rows)
        self.bars.setOpts(
            x0=np.zeros(n), y=np.arange(n), height=np.full(n, 0.7), width=np.array([p for _, p in rows])
        )
        ticks = [(i, f"{label}  {p:.1%}") for i, (label, p) in enumerate(rows)]
        self.plot.getAxis("left").setTicks([ticks, []])
        self.plot.setYRange(-0.6, max(n, TOP_K) - 0.4, padding=0)
        self.plot.setXRange(-0.02, 1.06, padding=0)
        best = rows[0] if rows else None
        self.caption.setText(f"Top class: <b>{best[0]}</b> ({best[1]:.1%})" if best else "")

    def show_image(self, image: np.ndarray | None) -> None:
        """Show the current image (uint8 RGB, or float in [0, 1]) above the bars."""
        if image is None:
            self.input.clear_image("no image")
        else:
            self.input.set_image(image)

    def clear(self, message: str = "") -> None:
        self.rows = []
        self.bars.setOpts(x0=[], y=[], height=[], width=[])
        self.plot.getAxis("left").setTicks([[], []])
        self.caption.setText(message)
