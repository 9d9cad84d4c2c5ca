"""The base class of a central tab: job bookkeeping, lazy refresh, settings and export hooks.

A view submits requests under its own owner name (plus an optional tag, so one view
can keep e.g. its maps and its receptive-field job apart); a newer request with the
same owner cancels the older one in the EngineClient, and events whose job id is not
the view's current one for that tag are dropped here, so subclasses only ever see
fresh results through job_finished / job_failed / job_frame / job_progress.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import QWidget

from engine.errors import EngineError
from engine.jobs import Event, Failed, Finished, Frame, JobParams, Progress
from engine.plot.spec import FigureSpec
from gui.engine_thread import EngineClient
from gui.state import AppState


class View(QWidget):
    """One tab. Subclasses set `title` and `owner` and override refresh(), export_image() and figure_spec()."""

    title = "View"
    owner = "view"
    status = Signal(str)  # a one-line note for the window's status bar

    def __init__(self, state: AppState, client: EngineClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.client = client
        self.jobs: dict[str, int] = {}
        self.active = False
        self._dirty = True
        for signal in (client.finished, client.failed, client.frame, client.progress):
            signal.connect(self._on_event)
        state.model_changed.connect(self.invalidate)
        state.layer_changed.connect(self.invalidate)
        state.image_changed.connect(self.invalidate)

    # ----- refresh policy -------------------------------------------------
    def set_active(self, active: bool) -> None:
        """The window calls this when the tab becomes (in)visible; a hidden view refreshes lazily."""
        self.active = active
        if active and self._dirty:
            self._dirty = False
            self.refresh()

    def invalidate(self) -> None:
        """The model, layer or image changed: refresh now if shown, else when next shown."""
        if self.active:
            self._dirty = False
            self.refresh()
        else:
            self._dirty = True

    def refresh(self) -> None:
        """Ask the engine for what this view shows for the current model, layer and image."""

    def run(self) -> None:
        """Run (F5): recompute the view."""
        self._dirty = False
        self.refresh()

    # ----- jobs -----------------------------------------------------------
    def submit(self, params: JobParams, tag: str = "") -> int:
        """Submit a typed job under this view's owner (and tag); returns its job id."""
        request = params.request(f"{self.owner}:{tag}" if tag else self.owner)
        self.jobs[tag] = request.job_id
        return self.client.submit(request)

    def cancel(self, tag: str = "") -> None:
        job_id = self.jobs.pop(tag, None)
        if job_id is not None:
            self.client.cancel(job_id)

    def _tag_of(self, job_id: int) -> str | None:
        for tag, current in self.jobs.items():
            if current == job_id:
                return tag
        return None

    def _on_event(self, event: Event) -> None:
        """Hand an event of one of this view's current jobs to its job_* hook; drop the rest."""
        tag = self._tag_of(event.job_id)
        if tag is None:
            return
        if isinstance(event, Finished):
            self.job_finished(tag, event)
        elif isinstance(event, Failed):
            self.job_failed(tag, event)
        elif isinstance(event, Frame):
            self.job_frame(tag, event)
        elif isinstance(event, Progress):
            self.job_progress(tag, event)

    def job_finished(self, tag: str, event: Finished) -> None:
        """A current job ended (reason 'done' or 'cancelled')."""

    def job_failed(self, tag: str, event: Failed) -> None:
        """A current job failed; the window shows the message, a view may show a note too."""

    def job_frame(self, tag: str, event: Frame) -> None:
        """A streamed frame of a current job (already coalesced to the newest)."""

    def job_progress(self, tag: str, event: Progress) -> None:
        """Progress of a current job."""

    # ----- export and settings ---------------------------------------------
    def export_image(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The uint8 RGB image this tab shows and the settings that reproduce it."""
        raise EngineError(f"the {self.title} view has nothing to export")

    def figure_spec(self) -> FigureSpec:
        """The publication figure of what this tab shows: engine.plot's FigureSpec, built with the
        builder `python main.py export KIND` uses, so the GUI and the CLI write the same figure."""
        raise EngineError(f"the {self.title} view has no figure to export; export it raw")

    def export_values(self) -> np.ndarray | None:
        """The values behind export_image() (what a raw export's .npy holds); None: none."""
        return None

    def save_settings(self, s: QSettings) -> None:
        """Store the view's choices (under its owner group)."""

    def restore_settings(self, s: QSettings) -> None:
        """Restore the choices saved by save_settings."""

    def grid_export(
        self, grid: Any, kind: str, layer: str | None, settings: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """A grid rendered in its fixed layout (engine.render's RenderedGrid) and its sidecar:
        base_settings, the layer, the export kind, the render settings and the grid's layout."""
        meta = {**self.base_settings(), "layer": layer, "kind": kind, **settings}
        meta.update(grid.layout, layout="fixed")
        return grid.image, meta

    def base_settings(self) -> dict[str, Any]:
        """Model, image and layer, for an export sidecar."""
        model = self.state.model
        return {
            "view": self.owner,
            "model": model.spec if model else None,
            "model_name": model.name if model else None,
            "image": self.state.image_spec,
            "layer": self.state.layer,
        }
