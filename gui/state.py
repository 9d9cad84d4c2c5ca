"""The selection every view follows: the loaded model, the selected layer, the current image."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.contract import ModelSummary


def display_copy(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) of a float image in [0, 1] (engine.render.to_uint8)."""
    from engine.render import to_uint8

    return to_uint8(image)


class AppState(QObject):
    """Plain data shared by the window and its views; changes are announced by signals.

    model: the "load_model" job's ModelSummary (name, spec, input_shape, class_names,
    layers (LayerInfo tree), ...), or None before the first model has loaded.
    layer_by_user: True once the user has picked a layer (a click in the layer tree), as
    opposed to the window's automatic selection; False again for each new model. Views that
    have a better default than the selected layer (Attribution) follow the tree only then.
    """

    model_changed = Signal()
    layer_changed = Signal()
    image_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model: ModelSummary | None = None
        self.layer: str | None = None
        self.image_spec: str | None = None
        self.image: np.ndarray | None = None
        self.loading: str | None = None  # the spec of a model being loaded
        self.layer_by_user = False
        # connected first, so the flag is reset before any view refreshes for the new model
        self.model_changed.connect(self._forget_layer_pick)

    def placeholder(self, engine_ready: bool) -> str:
        """What a view says while it has no model to show."""
        if not engine_ready:
            return "loading engine…"
        if self.loading:
            return f"loading {self.loading}…"
        return "no model: open one from the File menu"

    # ----- model and layers ---------------------------------------------
    def set_model(self, summary: ModelSummary) -> None:
        self.model = summary
        self.layer = None
        self.model_changed.emit()

    def all_layers(self) -> list[Any]:
        """Every LayerInfo of the model, nested ones included, in graph order."""
        if not self.model:
            return []
        out: list[Any] = []

        def walk(infos: Any) -> None:
            for info in infos:
                out.append(info)
                walk(info.children)

        walk(self.model.layers)
        return out

    def layer_info(self, path: str | None = None) -> Any | None:
        path = self.layer if path is None else path
        for info in self.all_layers():
            if info.path == path:
                return info
        return None

    def _forget_layer_pick(self) -> None:
        self.layer_by_user = False

    def set_layer(self, path: str | None, by_user: bool = False) -> None:
        """Select a layer; by_user marks a user's pick (announced even when the layer stays the same)."""
        first_pick = by_user and not self.layer_by_user
        if by_user:
            self.layer_by_user = True
        if path != self.layer or first_pick:
            self.layer = path
            self.layer_changed.emit()

    def default_layer(self) -> str | None:
        """The first conv layer (else the first layer with an output), for a fresh model."""
        infos = [i for i in self.all_layers() if i.kind != "model"]
        for info in infos:
            if info.kind == "conv" and info.spatial:
                return info.path
        return infos[0].path if infos else None

    def spatial_layers(self) -> list[str]:
        """Paths of the layers whose output still has spatial extent (H, W > 1), in graph order."""
        return [
            info.path
            for info in self.all_layers()
            if info.kind != "model" and info.spatial and (info.output_shape[0] or 0) > 1
        ]

    def cam_layer(self) -> str | None:
        """The engine's default attribution layer: the last one with spatial extent (None if none)."""
        if self.model is not None and self.model.default_cam_layer:
            return self.model.default_cam_layer
        spatial = self.spatial_layers()
        return spatial[-1] if spatial else None

    # ----- image --------------------------------------------------------
    def set_image(self, spec: str, image: np.ndarray, display: np.ndarray | None = None) -> None:
        """Make image (float32 (H, W, C) in [0, 1]) current; display is its uint8 RGB copy if known."""
        self.image_spec = spec
        self.image = image
        self._display = display
        self.image_changed.emit()

    @property
    def display_image(self) -> np.ndarray | None:
        """The current image as uint8 RGB for panes (made once; the window makes it off the main thread)."""
        if self.image is None:
            return None
        if getattr(self, "_display", None) is None:
            self._display = display_copy(self.image)
        return self._display

    @property
    def model_name(self) -> str:
        return self.model.name if self.model else ""

    @property
    def model_spec(self) -> str | None:
        """The loaded model's spec, None before the first model."""
        return self.model.spec if self.model else None

    @property
    def class_names(self) -> tuple[str, ...]:
        """The loaded model's class names (empty when it has none or no model is loaded)."""
        return tuple(self.model.class_names or ()) if self.model else ()

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes) if self.model else 0

    def class_name(self, index: int) -> str:
        return self.model.class_name(index) if self.model else str(index)
