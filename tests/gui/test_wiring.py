"""The Qt helpers written once: form rows (gui.widgets.forms), held signals and combo-backed
choices (gui.widgets.wiring)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QSpinBox, QWidget

from engine.errors import EngineError
from gui.widgets.fields import combo
from gui.widgets.forms import add_row, note_label, row_widget
from gui.widgets.wiring import combo_choice, signals_blocked


def test_add_row_places_the_field_and_hands_it_back(qapp):
    holder = QWidget()
    form = QFormLayout(holder)
    spin = add_row(form, "Steps", QSpinBox())
    assert isinstance(spin, QSpinBox) and form.rowCount() == 1
    assert form.labelForField(spin).text() == "Steps"
    pair = add_row(form, "Row, col", row_widget(QSpinBox(), QLabel(","), QSpinBox()))
    assert form.rowCount() == 2 and pair.layout().count() == 3
    margins = pair.layout().contentsMargins()
    assert (margins.left(), margins.top(), margins.right(), margins.bottom()) == (0, 0, 0, 0)
    packed = row_widget(QLabel("a"), stretch=True)
    assert packed.layout().count() == 2 and packed.layout().itemAt(1).spacerItem() is not None


def test_note_label_wraps_and_is_selectable_only_when_asked(qapp):
    plain, selectable = note_label("—"), note_label(selectable=True)
    assert plain.text() == "—" and plain.wordWrap() and selectable.wordWrap()
    assert not plain.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    assert selectable.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse


def test_signals_blocked_holds_the_signals_and_restores_each_state(qapp):
    a, b = QSpinBox(), QSpinBox()
    seen = []
    a.valueChanged.connect(seen.append)
    b.blockSignals(True)  # already blocked: stays so
    with signals_blocked(a, b):
        a.setValue(3)
        assert a.signalsBlocked() and b.signalsBlocked()
    assert seen == [] and not a.signalsBlocked() and b.signalsBlocked()
    with pytest.raises(RuntimeError), signals_blocked(a):
        raise RuntimeError("the block failed")
    assert not a.signalsBlocked()
    a.setValue(4)
    assert seen == [4]


class _Choices(QWidget):
    scale, set_scale = combo_choice("scale_box", "colour scale", bool, doc="Shared scale?")
    mapping, set_mapping = combo_choice("mapping_box", "mapping")

    def __init__(self) -> None:
        super().__init__()
        self.scale_box = combo((("Shared", True), ("Per filter", False)))
        self.mapping_box = combo(("roi", "gaussian"))


def test_combo_choice_reads_and_selects_by_data(qapp):
    w = _Choices()
    assert w.scale is True and w.mapping == "roi"
    w.set_scale(0)
    w.set_mapping("gaussian")
    assert w.scale is False and w.scale_box.currentText() == "Per filter" and w.mapping == "gaussian"
    with pytest.raises(EngineError, match=r"unknown mapping 'bilinear'; choose from: roi, gaussian"):
        w.set_mapping("bilinear")
    assert w.mapping == "gaussian" and _Choices.scale.__doc__ == "Shared scale?"
