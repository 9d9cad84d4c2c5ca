"""The Dataset tab's unit maximization: the selected unit maximized beside its top images.

A mixin of DatasetView (which defines `maximize_requested`, `result`, `selected`, `max_pane`,
`max_label`): "Maximize this unit" streams a "maximize" job (MaximizeParams with the unit's
objective object, engine.maximize.objective_terms.channel) into the pane and shows its
MaximizeOutput, and "Open in Maximize tab" hands the objective to that tab.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.maximize.contract import MaximizeParams
from engine.maximize.objective_terms import channel
from engine.maximize.objectives import Expr

MAX_STEPS = 64


class UnitMaximize:
    """Maximize the selected unit in place, or open it in the Maximize tab."""

    def unit_objective(self) -> Expr | None:
        """The objective object of the selected unit: its channel of the scanned layer."""
        if self.result is None or self.selected is None:
            return None
        return channel(self.result.layer, int(self.selected))

    def objective(self) -> str | None:
        """The selected unit's objective as text ("layer:unit")."""
        objective = self.unit_objective()
        return None if objective is None else str(objective)

    def maximize_unit(self) -> None:
        """Run an activation maximization of the selected unit, streamed into the pane beside its crops."""
        objective = self.unit_objective()
        if objective is None:
            return
        self.max_label.setText(f"maximizing {objective}…")
        self.max_pane.clear_image("starting…")
        self.submit(MaximizeParams(objective=objective, steps=MAX_STEPS, every=8), tag="max")
        self.maximize_requested.emit(str(objective))

    def _maximize_view(self) -> Any:
        window = self.window()
        finder = getattr(window, "view", None)
        if finder is None:
            return None
        try:
            view = finder("maximize")
        except (KeyError, LookupError, EngineError, AttributeError):
            return None
        if hasattr(view, "set_objective") or (hasattr(view, "set_mode") and hasattr(view, "channel_spin")):
            return view
        return None

    def open_in_maximize_tab(self) -> None:
        """Hand the selected unit to the Maximize tab and show it there.

        Uses the tab's set_objective (with the objective object) when it has one; otherwise
        selects the layer and sets the tab's channel mode and channel.
        """
        objective = self.unit_objective()
        view = self._maximize_view()
        if objective is None or view is None or self.result is None or self.selected is None:
            return
        if hasattr(view, "set_objective"):
            view.set_objective(objective)
        else:
            self.state.set_layer(self.result.layer)
            view.set_mode("channel")
            view.channel_spin.setValue(int(self.selected))
        tabs = getattr(self.window(), "tabs", None)
        if tabs is not None:
            tabs.setCurrentWidget(view)

    def _show_max_images(self, images: Any) -> None:
        arr = images
        if isinstance(arr, dict):
            arr = next(iter(arr.values()), None)
        if arr is None:
            return
        a = np.asarray(arr, np.float32)
        if a.ndim == 4:
            a = a[0]
        if a.ndim == 3 and a.shape[-1] in (1, 3):
            self.max_pane.set_image(np.ascontiguousarray(np.clip(a, 0.0, 1.0)), levels=(0.0, 1.0))

    def _show_max_result(self, result: Any) -> None:
        """The finished maximization (a MaximizeOutput) beside the unit's top images."""
        self._show_max_images(result.images)
        self.max_label.setText(f"maximization of {self.objective()}" if self.objective() else "")
