"""What File → Export View… writes: the user's choices, the sidecar's command, and the write itself.

`ExportChoice` holds the dialog's choices (figure or raw, format, style, size, DPI) and turns
them into engine.plot's FigureSize and into the CLI flags that ask for the same figure
(`--style`, `--dpi`, `--size WxH[in|px]` or `--width PX`, or `--raw`). `export_view` writes a
view's figure with engine.plot.write_figure, or its raw image (export_image(), bit for bit) with
engine.plot.raw_export; the sidecar keeps every setting plus the command that reproduces the
file. No widgets here, so the CLI-facing parts are testable without a dialog.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from engine.errors import EngineError
from gui import settings as cfg

FIGURE_FORMATS = (("PNG", ".png"), ("TIFF", ".tif"), ("SVG", ".svg"), ("PDF", ".pdf"))
RAW_FORMATS = (("PNG", ".png"), ("TIFF", ".tif"), ("NPY (values)", ".npy"))
SIZE_MODES = (("Style default", "default"), ("Width × height", "wh"), ("Width in px", "width"))
UNITS = ("in", "px")
SETTINGS_GROUP = "export"


@dataclass(frozen=True)
class ExportChoice:
    """The dialog's choices. size_mode "default" takes the style's size, "wh" width × height in
    `unit`, "width" a width of width_px pixels (height from the figure's layout)."""

    mode: str = "figure"  # "figure" | "raw"
    fmt: str = ".png"
    style: str = "paper"
    size_mode: str = "default"
    width: float = 3.5
    height: float = 2.5
    unit: str = "in"
    dpi: float = 300.0
    width_px: int = 1050

    @property
    def raw(self) -> bool:
        return self.mode == "raw"

    def size_arg(self) -> str | None:
        """--size's value ("3.5x2.5in", "1200x800px"), or None."""
        if self.size_mode != "wh":
            return None
        if self.unit == "px":
            return f"{int(round(self.width))}x{int(round(self.height))}px"
        return f"{self.width:g}x{self.height:g}in"

    def width_arg(self) -> int | None:
        """--width's value in px, or None."""
        return int(self.width_px) if self.size_mode == "width" else None

    def figure_size(self) -> Any:
        """engine.plot's FigureSize of these choices (EngineError on a size out of range)."""
        from engine.plot import parse_size

        return parse_size(self.size_arg(), self.dpi, self.width_arg(), self.style)

    def flags(self) -> list[str]:
        """The CLI flags that ask for this export: --raw, or the figure's style, DPI and size."""
        if self.raw:
            return ["--raw"]
        out = ["--style", self.style, "--dpi", f"{self.dpi:g}"]
        if self.size_arg() is not None:
            out += ["--size", str(self.size_arg())]
        elif self.width_arg() is not None:
            out += ["--width", str(self.width_arg())]
        return out

    def figure_settings(self) -> dict[str, Any]:
        """What the sidecar records about the figure besides engine.plot's own entries."""
        if self.raw:
            return {"export": "raw"}
        return {"export": "figure", "figure_size": self.size_arg(), "figure_width_px": self.width_arg()}

    def save(self, s: QSettings) -> None:
        for key, value in asdict(self).items():
            s.setValue(f"{SETTINGS_GROUP}/{key}", value)

    @classmethod
    def load(cls, s: QSettings) -> ExportChoice:
        """The choices remembered by save() (defaults where missing or of the wrong type)."""
        base = cls()
        values = {
            f.name: cfg.read(
                s, f"{SETTINGS_GROUP}/{f.name}", getattr(base, f.name), type(getattr(base, f.name))
            )
            for f in fields(cls)
        }
        choice = replace(base, **values)
        formats = RAW_FORMATS if choice.raw else FIGURE_FORMATS
        if choice.mode not in ("figure", "raw"):
            choice = replace(choice, mode="figure")
        if choice.fmt not in {f for _, f in formats}:
            choice = replace(choice, fmt=".png")
        if choice.unit not in UNITS:
            choice = replace(choice, unit="in")
        if choice.size_mode not in {m for _, m in SIZE_MODES}:
            choice = replace(choice, size_mode="default")
        return choice


# ----- the command that reproduces an export ---------------------------------------------------
def base_command(meta: dict[str, Any], raw: bool = False) -> list[str] | None:
    """`python main.py export KIND ...` (without --out and --raw) for a view's export sidecar: the
    view's own "command" when it gives one (the Dataset pages), else built by the engine from the
    settings of its kind (engine.commands.export_command: feature maps, filters, maximize, dream,
    cam, saliency; `raw`: the command of the raw export); None when it cannot be rebuilt."""
    from engine.commands import export_command as build

    given = meta.get("command")
    try:
        text = str(given) if given else build(meta, raw=raw)
    except EngineError:
        return None
    parts = shlex.split(text)
    if "--out" in parts:
        i = parts.index("--out")
        del parts[i : i + 2]
    return [p for p in parts if p != "--raw"]  # the choice adds --raw or the figure flags


def export_command(meta: dict[str, Any], choice: ExportChoice, out: str | Path) -> str | None:
    """The command line that writes this export again (figure flags or --raw, and --out)."""
    parts = base_command(meta, choice.raw)
    if parts is None:
        return None
    return shlex.join([*parts, *choice.flags(), "--out", str(out)])


# ----- writing ---------------------------------------------------------------------------------
class NeedsOverwrite(Exception):
    """The target exists; the caller asks the user and calls again with overwrite=True."""


def export_view(view: Any, path: str | Path, choice: ExportChoice, overwrite: bool = False) -> list[Path]:
    """Write the view's figure (or raw image and values) at `path` with its sidecar; returns the
    written paths. Raises engine.export.ExportExists when a file is there and overwrite is False,
    EngineError when the view has nothing to export, OSError when the disk refuses."""
    from engine import export, plot

    path = Path(path)
    image, meta = view.export_image()
    meta = {**meta, **choice.figure_settings()}
    command = export_command(meta, choice, path)
    if command is not None:
        meta["command"] = command
    else:
        meta.pop("command", None)
    if choice.raw:
        values = view.export_values()
        if path.suffix.lower() == ".npy":
            return list(
                export.write_npy(path, image if values is None else values, meta, overwrite=overwrite)
            )
        return list(plot.raw_export(path, image, values, meta, overwrite))
    spec = view.figure_spec()
    return list(
        plot.write_figure(
            path, spec, meta, style=choice.style, size=choice.figure_size(), overwrite=overwrite
        )
    )


def preview_pixels(spec: Any, choice: ExportChoice) -> Any:
    """The figure as a PNG of it holds it: uint8 RGB (H, W, 3), for the preview pane (runs off the
    main thread; matplotlib's Agg canvas, one figure per call)."""
    from engine.plot import figure_rgb

    return figure_rgb(spec, style=choice.style, size=choice.figure_size())
