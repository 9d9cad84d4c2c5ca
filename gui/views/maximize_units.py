"""The Maximize tab's unit survey: which unit to open on, and which units are dead.

A mixin of MaximizeView (which defines the form's widgets, `submit`, `cancel` and `jobs`). When
the layer changes it asks the engine for each unit's activity ("unit_activity" job, tag "pick")
on the sample images that fit the model and opens on the most selective channel
(activity.best), then scans SCAN_IMAGES images of the model's own data (built-in models; the
samples otherwise; tag "scan") and names the units that are zero on every one of them as dead,
with that evidence. A run cancels a scan in flight and scans again when it ends (the engine
runs one job at a time).
"""

from __future__ import annotations

from typing import Any

from engine.jobs import Finished
from engine.maximize.contract import UnitActivityParams

SCAN_IMAGES = 256  # images of the model's own data scanned for dead units when the layer changes
DEEP_SCAN_IMAGES = 1000  # the "Scan 1,000 images" button


class UnitSurvey:
    """Pick the most selective unit of a new layer and report its dead units."""

    activity: Any  # engine UnitActivity of the layer on the sample images
    scan: Any  # engine UnitActivity of the layer on SCAN_IMAGES images (dead units)

    def _reset_survey(self) -> None:
        self.activity = None
        self.scan = None
        self._picked_for: tuple[Any, Any] | None = None  # (model spec, layer) the pick was asked for
        self._pick_channel = 0  # the channel shown when the pick was asked (a user change wins)
        self._run_since_pick = False
        self._chosen_for: tuple[Any, Any] | None = None  # (model spec, layer) whose channel was handed in
        self._scanning = 0  # images of the scan in flight (0: none)
        self._rescan = 0  # a scan cancelled by Run, to run again when the run ends
        self._scan_done = 0

    def _unit_layer(self) -> Any:
        """The selected layer when its units can be measured (not a nested model, has an output)."""
        info = self.state.layer_info()
        if info is None or info.kind == "model" or not tuple(info.output_shape or ()):
            return None
        return info

    def pick_unit(self) -> None:
        """On a new (model, layer): ask for each unit's activity on the sample images; the tab then
        opens on the most selective channel and scans for dead units (see _picked)."""
        if self.state.model is None:
            return
        info = self._unit_layer()
        key = (self.state.model_spec, info.path if info is not None else self.state.layer)
        if key == self._picked_for:
            return
        self._picked_for = key
        self.activity = self.scan = None
        self.cancel("scan")
        self._scanning = self._rescan = 0
        if info is None:
            self.cancel("pick")
            self.unit_note.setText("")
            return
        self._pick_channel = self.channel_spin.value()
        self._run_since_pick = False
        self.unit_note.setText("measuring the units on the sample images…")
        start = self.start_box.currentData()
        pick = UnitActivityParams(
            layer=info.path,
            images="samples",
            seed=int(self.seed_spin.value()),
            start=None if start == "photo" else start,  # the unit picked first must fire on this start
            pre_activation=False if self.post_check.isChecked() else None,
        )
        self.submit(pick, tag="pick")

    def scan_units(self, n: int = SCAN_IMAGES) -> None:
        """Scan n images of the model's own data (the samples for non-built-in models) for dead units."""
        info = self._unit_layer()
        if info is None or self.state.model is None:
            return
        self.scan = None
        self._scanning = int(n)
        self._scan_done = 0
        self._show_units()
        self.submit(UnitActivityParams(layer=info.path, images="natural", n=int(n)), tag="scan")

    def _picked(self, event: Finished) -> None:
        self.jobs.pop("pick", None)
        act = event.result if event.reason == "done" else None
        info = self._unit_layer()
        if act is None or info is None or act.layer != info.path:
            self.unit_note.setText("")
            return
        self.activity = act
        chosen = self._chosen_for == self._picked_for
        if not chosen and not self._run_since_pick and self.channel_spin.value() == self._pick_channel:
            self.channel_spin.setValue(act.best)
        self._show_units()
        self.scan_units(SCAN_IMAGES)

    def _scanned(self, event: Finished) -> None:
        self.jobs.pop("scan", None)
        self._scanning = 0
        act = event.result if event.reason == "done" else None
        info = self._unit_layer()
        if act is not None and info is not None and act.layer == info.path:
            self.scan = act
        self._show_units()

    def _pause_scan(self) -> None:
        """A run starts: the scan in flight waits for it (the engine runs one job at a time)."""
        self._run_since_pick = True
        if self._scanning:
            self._rescan = self._scanning
            self._scanning = 0
            self.cancel("scan")
            self._show_units()

    def _run_ended(self) -> None:
        if self._rescan:
            n, self._rescan = self._rescan, 0
            self.scan_units(n)

    def _show_units(self, *_args: Any) -> None:
        """The Units note: the most selective channel on the samples, and the dead units with their evidence."""
        lines = []
        act, scan = self.activity, self.scan
        if act is not None and len(act.mean):
            best = act.best
            flat = "" if act.flat is None else f" against {float(act.flat[best]):.3g} on a flat image"
            lines.append(
                f"most selective on {act.source}: {act.unit} {best} (mean {float(act.mean[best]):.3g}"
                f"{flat}, max {float(act.max[best]):.3g})"
            )
        if scan is not None:
            channel = self.channel_spin.value()
            if channel in scan.dead and self.mode in ("channel", "neuron"):
                lines.append(
                    f"<b>{scan.unit} {channel} is dead</b>: zero on all {scan.count:,} scanned images"
                )
            lines.append(
                scan.dead_note()
                or f"no dead {scan.unit}s: each fires on some of the {scan.count:,} scanned images ({scan.source})"
            )
        elif self._scanning:
            done = f"{self._scan_done:,} / " if self._scan_done else ""
            lines.append(f"scanning for dead units: {done}{self._scanning:,} images…")
        self.unit_note.setText("<br>".join(lines))
