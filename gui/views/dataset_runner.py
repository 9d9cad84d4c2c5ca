"""The Dataset tab's "Run on" choice: scan on this computer, or spread the same scan over a Ray cluster.

RunOn is one compact row (gui/views/dataset_widgets.py lays it out as v.run_on): the runner combo,
the cluster's address and the number of workers, the last two enabled only for Ray. The view
reads `scan_fields()` into its ScanParams (engine/dataset/contract.py: runner, address, workers)
and refuses to submit while `problem()` names one; save()/restore() keep the choice in the
view's settings group. `address_problem` is the light check of an address (no network).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QSpinBox, QWidget

from gui import settings as cfg
from gui.widgets.fields import combo
from gui.widgets.layouts import fill
from gui.widgets.wiring import signals_blocked

RUNNERS = (("this computer", "local"), ("Ray cluster", "ray"))
ADDRESS_PLACEHOLDER = "local (start one here)"
MAX_WORKERS = 1024
RUNNER_TIP = (
    "Where the scan runs. This computer: the engine thread here. Ray cluster: the same scan "
    "spread over a Ray cluster's workers, each with a copy of the model; the answer is the same "
    'as on this computer. Ray needs pip install -e ".[cluster]".'
)
ADDRESS_TIP = (
    "The Ray cluster to run on. Empty: start one on this computer (5-10 s before the first images). "
    "auto: join the cluster already running here (ray start --head). host:port: join that "
    "cluster's head (its GCS port, 6379 by default). ray://host:port: join through Ray Client "
    "(port 10001 by default)."
)
WORKERS_TIP = "Model replicas (Ray actors) the images are spread over; auto: one per CPU of the cluster."


def address_problem(text: str) -> str | None:
    """Why `text` is not a Ray address a scan can use, None when it is: empty (start a local
    cluster), "auto", "ray://host:port" or "host:port", with a numeric port in 1-65535."""
    text = text.strip()
    if text in ("", "auto"):
        return None
    rest = text[len("ray://") :] if text.startswith("ray://") else text
    if "://" in rest:
        return f"{text!r}: only ray:// addresses (or host:port, auto, empty for a local cluster)"
    host, colon, port = rest.rpartition(":")
    if not colon:
        return f"{text!r} has no port: write host:port, ray://host:port or auto"
    if not host or any(c.isspace() or c == "/" for c in host):
        return f"{text!r}: the host before the port is missing or malformed"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"{text!r}: the port must be a number from 1 to 65535"
    return None


class RunOn(QWidget):
    """The "Run on" row: this computer or a Ray cluster, with the cluster's address and workers (Ray only)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runner_box: QComboBox = combo(RUNNERS, RUNNER_TIP)
        self.address_edit = QLineEdit()
        self.address_edit.setPlaceholderText(ADDRESS_PLACEHOLDER)
        self.address_edit.setToolTip(ADDRESS_TIP)
        self.address_edit.setMinimumWidth(170)
        self.address_edit.setClearButtonEnabled(True)
        self.workers_label = QLabel("workers")
        self.workers_box = QSpinBox()
        self.workers_box.setRange(0, MAX_WORKERS)
        self.workers_box.setSpecialValueText("auto")  # 0 stands for None: one per CPU
        self.workers_box.setToolTip(WORKERS_TIP)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        fill(layout, (self.runner_box, self.address_edit, self.workers_label, self.workers_box))
        layout.addStretch(1)
        self.runner_box.currentIndexChanged.connect(lambda _i: self._sync())
        self._sync()

    def _sync(self) -> None:
        ray = self.runner == "ray"
        for widget in (self.address_edit, self.workers_label, self.workers_box):
            widget.setEnabled(ray)

    # ----- the choice -------------------------------------------------------------------------
    @property
    def runner(self) -> str:
        return str(self.runner_box.currentData())

    def set_runner(self, runner: str) -> None:
        """Choose "local" or "ray" (anything else: "local")."""
        index = self.runner_box.findData(runner)
        self.runner_box.setCurrentIndex(max(index, 0))

    @property
    def address(self) -> str | None:
        """The address as ScanParams takes it: None to start a local cluster."""
        return self.address_edit.text().strip() or None

    @property
    def workers(self) -> int | None:
        return int(self.workers_box.value()) or None

    def problem(self) -> str | None:
        """Why a scan cannot be submitted as chosen (None: it can)."""
        if self.runner != "ray":
            return None
        problem = address_problem(self.address_edit.text())
        return f"Ray address {problem}" if problem else None

    def scan_fields(self) -> dict[str, Any]:
        """runner, address and workers for ScanParams (a local scan keeps their defaults)."""
        if self.runner != "ray":
            return {"runner": "local", "address": None, "workers": None}
        return {"runner": "ray", "address": self.address, "workers": self.workers}

    def describe(self) -> str:
        """Where a Ray scan runs, for the info line: " on ray://…" ("" for this computer)."""
        if self.runner != "ray":
            return ""
        where = self.address or "a local Ray cluster"
        return f" on {where}" + (f" with {self.workers} workers" if self.workers else "")

    # ----- settings -----------------------------------------------------------------------------
    def save(self, s: QSettings) -> None:
        s.setValue("runner", self.runner)
        s.setValue("address", self.address_edit.text().strip())
        s.setValue("workers", int(self.workers_box.value()))

    def restore(self, s: QSettings) -> None:
        with signals_blocked(self.runner_box):
            self.set_runner(cfg.read(s, "runner", "local", str))
        self.address_edit.setText(cfg.read(s, "address", "", str))
        self.workers_box.setValue(max(0, min(cfg.read(s, "workers", 0, int), MAX_WORKERS)))
        self._sync()
