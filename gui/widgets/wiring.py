"""Qt wiring written once: signals held while a group of widgets is set, and a view's choice
held by a combo box (a property that reads the current item's data and a setter that selects an
item by its data).

    with signals_blocked(self.width_spin, self.height_spin):
        ...
    class View(...):
        mapping, set_mapping = combo_choice("mapping_box", "mapping")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from PySide6.QtCore import QObject

from gui.widgets.controls import select_data


@contextmanager
def signals_blocked(*objects: QObject) -> Iterator[None]:
    """Block the signals of `objects` inside the block; afterwards each is as it was before."""
    before = [obj.blockSignals(True) for obj in objects]
    try:
        yield
    finally:
        for obj, blocked in zip(objects, before):
            obj.blockSignals(blocked)


def combo_choice(
    box: str, what: str, cast: Callable[[Any], Any] = str, doc: str | None = None
) -> tuple[property, Callable[[Any, Any], None]]:
    """(property, setter) of a choice held by the combo box named `box` on the instance.

    The property is the current item's data as `cast`; the setter selects the item whose data is
    `cast(value)` and raises EngineError "unknown WHAT ..." (gui.widgets.controls.select_data)
    when there is none. In a class body: `mapping, set_mapping = combo_choice("mapping_box", "mapping")`.
    """

    def get(self: Any) -> Any:
        return cast(getattr(self, box).currentData())

    def set_choice(self: Any, value: Any) -> None:
        select_data(getattr(self, box), cast(value), what)

    return property(get, doc=doc), set_choice
