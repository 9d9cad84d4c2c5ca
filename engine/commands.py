"""The `python main.py export KIND ...` line that reproduces an export, built from its settings.

An export sidecar (the GUI's File → Export View, or the CLI's own) records every setting and
the command that writes the file again. The CLI names its own command (engine.cli.command_line
of its parsed arguments); the GUI builds the same command from the settings its views record,
with one function per export kind, each beside its kind's CLI:

- featuremaps_command, filters_command (here),
- engine.maximize.commands: maximize_command, dream_command,
- engine.attribution.commands: cam_command, saliency_command,
- engine.dataset.cli: topk_command.

`export_command(settings)` picks the function by settings["kind"]. Each function raises
EngineError when the settings lack what the command needs (a model, an image, an objective).
`out` is the file the command writes ("FILE.png" stands for the sidecar's own file); `raw`
adds --raw, else `figure` (e.g. ["--style", "paper", "--dpi", "300"]) shapes the figure.
Nothing here loads TensorFlow, so the window builds commands on its main thread.
"""

from __future__ import annotations

import importlib
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.errors import EngineError

# kind -> "module:function" of its command builder (imported on first use)
BUILDERS = {
    "featuremaps": "engine.commands:featuremaps_command",
    "filters": "engine.commands:filters_command",
    "maximize": "engine.maximize.commands:maximize_command",
    "dream": "engine.maximize.commands:dream_command",
    "cam": "engine.attribution.commands:cam_command",
    "saliency": "engine.attribution.commands:saliency_command",
    "sanity": "engine.attribution.commands:sanity_command",
    "compare": "engine.attribution.commands:compare_command",
}


def number(value: Any) -> str:
    """A number as the command line gives it back exactly: 4 (not 4.0), 0.37, 1e-05."""
    if isinstance(value, bool):
        raise EngineError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def spec_text(item: Any) -> str:
    """A transform or regularizer as the CLI spells it: "jitter:4" from ("jitter", 4.0) or "jitter:4"."""
    if isinstance(item, str):
        return item
    name, *values = item
    return ":".join([str(name), *(number(v) for v in values)])


class CommandLine:
    """`python main.py export KIND --model M ...`, one option at a time."""

    def __init__(self, kind: str, settings: Mapping[str, Any], *, image: bool = False) -> None:
        """image: the kind needs the photo (--image, an EngineError when the settings lack it)."""
        model = settings.get("model")
        if not model:
            raise EngineError(f"cannot rebuild the export {kind} command: no model in its settings")
        self.settings = settings
        self.parts = ["python", "main.py", "export", kind, "--model", str(model)]
        if settings.get("scaling"):
            self.add("--scaling", settings["scaling"])
        if image:
            self.add("--image", required(settings, "image", kind))

    def add(self, flag: str, value: Any) -> None:
        """flag VALUE; nothing for None or ""; the flag alone for True; nothing for False."""
        if value is None or value is False or value == "":
            return
        if value is True:
            self.parts.append(flag)
        elif isinstance(value, float):
            self.parts += [flag, number(value)]
        else:
            self.parts += [flag, str(value)]

    def number(self, flag: str, value: Any) -> None:
        if value is not None:
            self.parts += [flag, number(value)]

    def options(self, *keys: str) -> None:
        """add() of each settings key under its flag ("octave_scale": --octave-scale)."""
        for key in keys:
            self.add(_flag(key), self.settings.get(key))

    def numbers(self, *keys: str) -> None:
        """number() of each settings key under its flag."""
        for key in keys:
            self.number(_flag(key), self.settings.get(key))

    def text(self, flag: str, value: str) -> None:
        """One free-text value (an objective, layers): FLAG=VALUE when it starts with "-", so the
        parser does not take it for an option."""
        value = str(value)
        self.parts += [f"{flag}={value}"] if value.startswith("-") else [flag, value]

    def values(self, flag: str, items: Sequence[Any] | None) -> None:
        """A list option (nargs="*"): the flag alone for an empty list, nothing for None."""
        if items is not None:
            self.parts += [flag, *(spec_text(v) for v in items)]

    def line(self, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()) -> str:
        tail = ["--raw"] if raw else [str(f) for f in figure]
        return shlex.join([*self.parts, *tail, "--out", str(out)])


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def required(settings: Mapping[str, Any], key: str, kind: str) -> Any:
    value = settings.get(key)
    if value is None or value == "" or value == []:
        raise EngineError(f"cannot rebuild the export {kind} command: no {key} in its settings")
    return value


def builder(kind: str | None) -> Callable[..., str] | None:
    """The command builder of an export kind (None for a kind without one)."""
    target = BUILDERS.get(str(kind))
    if target is None:
        return None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def export_command(
    settings: Mapping[str, Any], out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """The command of the kind settings["kind"] names (EngineError for a kind without one)."""
    build = builder(settings.get("kind"))
    if build is None:
        raise EngineError(f"no command reproduces an export of kind {settings.get('kind')!r}")
    return build(settings, out=out, raw=raw, figure=figure)


# ----- featuremaps / filters (their runners are in engine/cli.py) -------------------------------------
def featuremaps_command(
    settings: Mapping[str, Any], *, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """`export featuremaps`: model, image, layer, norm, cmap, cols (the Feature maps tab's settings)."""
    c = CommandLine("featuremaps", settings, image=True)
    c.add("--layer", required(settings, "layer", "featuremaps"))
    c.options("norm", "cmap", "cols")
    return c.line(out, raw, figure)


def filters_command(
    settings: Mapping[str, Any], *, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """`export filters`: model, layer, scale (or the Filters tab's shared_scale), max_filters, and
    for --raw the grid's fixed layout (cols, sections_per_row); the Filters tab's figure lays its
    panels out itself, as the command does without --cols."""
    c = CommandLine("filters", settings)
    c.add("--layer", required(settings, "layer", "filters"))
    scale = settings.get("scale")
    if isinstance(scale, bool) or scale is None:  # the view records shared_scale
        scale = "shared" if settings.get("shared_scale", True) else "per-filter"
    c.add("--scale", scale)
    c.add("--max-filters", settings.get("max_filters"))
    if raw:
        c.add("--cols", settings.get("cols"))
        c.add("--sections-per-row", settings.get("sections_per_row"))
    return c.line(out, raw, figure)
