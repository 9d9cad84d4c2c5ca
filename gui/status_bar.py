"""The window's status bar: where the engine computes, the loaded model, the running job.

StatusBar follows the EngineClient's started/progress events itself: the running job's
title, a progress bar and a Cancel button appear only once a job has run for
PROGRESS_DELAY_MS, so quick jobs never flash them, and go when the client has nothing
running. The window tells it the device (engine ready, model loaded) and the model.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar, QWidget

from engine.contract import ModelSummary
from engine.jobs import Progress, Request
from gui.engine_thread import EngineClient
from gui.widgets.controls import single_shot_timer

PROGRESS_DELAY_MS = 250  # quick jobs never flash the progress bar
JOB_TITLES = {
    "load_model": "loading model",
    "predict": "predicting",
    "feature_maps": "feature maps",
    "filters": "filters",
    "receptive_field": "receptive field",
    "sleep": "waiting",
}


def job_title(request: Request) -> str:
    """A job's name in the status bar ("feature maps"; unknown kinds with their _ as spaces)."""
    return JOB_TITLES.get(request.kind, request.kind.replace("_", " "))


class StatusBar(QStatusBar):
    """Device and model on the left; the running job, its progress and Cancel on the right."""

    def __init__(self, client: EngineClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = client
        self.device_label = QLabel("loading engine…")
        self.device_label.setToolTip("Where the engine computes")
        self.model_label = QLabel("no model")
        self.job_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Cancel the running job")
        self.cancel_button.clicked.connect(self.cancel_running)
        self.addWidget(self.device_label)
        self.addWidget(QLabel("│"))
        self.addWidget(self.model_label)
        for widget in self._job_widgets():
            widget.hide()
            self.addPermanentWidget(widget)
        self._progress_timer = single_shot_timer(self, PROGRESS_DELAY_MS, self._show_progress)
        client.started.connect(self._on_job_started)
        client.progress.connect(self._on_job_progress)

    def _job_widgets(self) -> tuple[QWidget, ...]:
        return (self.job_label, self.progress, self.cancel_button)

    # ----- device and model ---------------------------------------------------
    def show_device(self, device: str) -> None:
        self.device_label.setText(device)

    def show_loading(self, spec: str) -> None:
        self.model_label.setText(f"loading {Path(spec).name if os.sep in spec else spec}…")

    def show_model(self, model: ModelSummary | None) -> None:
        if model is None:
            self.model_label.setText("no model")
            return
        shape = "×".join(str(s) for s in model.input_shape)
        self.model_label.setText(f"{model.name}  ({shape}, {model.params:,} params)")

    # ----- the running job ------------------------------------------------------
    def _on_job_started(self, request: Request) -> None:
        self.progress.setRange(0, 0)  # busy until a Progress event gives a total
        self.job_label.setText(job_title(request))
        self._progress_timer.start()

    def _show_progress(self) -> None:
        if self.client.running is not None:
            for widget in self._job_widgets():
                widget.show()

    def _on_job_progress(self, event: Progress) -> None:
        running = self.client.running
        if running is None or running.job_id != event.job_id:
            return
        if event.total > 0:
            self.progress.setRange(0, int(event.total))
            self.progress.setValue(int(event.step))
        text = job_title(running)
        if event.message:
            text += f": {event.message}"
        self.job_label.setText(text)

    def job_done(self) -> None:
        """A job ended: hide the job's widgets once nothing runs."""
        if self.client.running is None:
            self.stop()

    def stop(self) -> None:
        """Hide the job's widgets now (and do not show them for the job running now)."""
        self._progress_timer.stop()
        for widget in self._job_widgets():
            widget.hide()

    def cancel_running(self) -> None:
        running = self.client.running
        if running is not None:
            self.client.cancel(running.job_id)
