"""The `export maximize` and `export dream` lines that reproduce a run (engine.maximize.cli's kinds).

Built from a run's settings as the Maximize and DeepDream tabs record them in their export
sidecar (MaximizeParams / DreamParams fields, objective objects as their text). The command
runs the same seeded optimization with the same settings, so it writes the same images and
the same figure; a long run (200 steps) is still the one command a user would run.

maximize_command settings: model, scaling; objective (text, or a list: a batch) and, when the
tab's form named a layer, objective_layer and layer_rank (3: a spatial layer, --channel; 1: a
dense one, --unit), so the command reads --layer conv3 --channel 5 [--position 10,12] instead
of --objective conv3:5@10,12; steps, size (--canvas), init, image (--init photo), seed,
transforms, regularizers (strings "jitter:4" or (name, values...) pairs), optimizer, lr,
schedule, param, squash, pre_activation (None: auto; True: --pre-activation; False:
--post-activation), cols.

dream_command settings: model, scaling, image, layers (text or a list), octaves,
octave_scale, steps, lr, seed, size (--photo-size), cols.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from engine.commands import CommandLine, required

_INDEX = r"(\d+(?:,\d+)*|\d+\.\.\d+|\*)"


def _objective(c: CommandLine, settings: Mapping[str, Any]) -> None:
    """--layer [--channel/--unit [--position]] when the objective is one of a layer, else --objective."""
    objective = required(settings, "objective", "maximize")
    if isinstance(objective, list | tuple):
        if len(objective) != 1:
            c.parts += ["--objective", *(str(o) for o in objective)]
            return
        objective = objective[0]
    text = str(objective).strip()
    layer, rank = settings.get("objective_layer"), settings.get("layer_rank")
    m = re.fullmatch(re.escape(str(layer)) + rf"(?::{_INDEX})?(?:@(\d+),(\d+))?", text) if layer else None
    flag = {3: "--channel", 1: "--unit"}.get(int(rank)) if rank is not None else None
    if m is None or (m.group(1) is not None and flag is None) or (m.group(2) and flag != "--channel"):
        c.text("--objective", text)
        return
    c.add("--layer", layer)
    if m.group(1) is not None:
        c.add(str(flag), m.group(1))
    if m.group(2):
        c.add("--position", f"{m.group(2)},{m.group(3)}")


def maximize_command(
    settings: Mapping[str, Any], *, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """`python main.py export maximize ...` for a run's settings (see the module's docstring)."""
    c = CommandLine("maximize", settings)
    _objective(c, settings)
    c.number("--steps", settings.get("steps"))
    size = settings.get("size")
    if isinstance(size, list | tuple) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    if size is not None and not isinstance(size, list | tuple):  # --canvas is square
        c.number("--canvas", int(size))
    init = settings.get("init")
    c.add("--init", init)
    if init == "photo":
        c.add("--image", required(settings, "image", "maximize --init photo"))
    c.number("--seed", settings.get("seed"))
    c.values("--transforms", settings.get("transforms"))
    c.values("--regularizers", settings.get("regularizers") or None)  # none is the default
    c.add("--optimizer", settings.get("optimizer"))
    c.number("--lr", settings.get("lr"))
    c.options("schedule", "param", "squash")
    pre = settings.get("pre_activation")
    c.add("--pre-activation", pre is True)
    c.add("--post-activation", pre is False)
    c.number("--cols", settings.get("cols"))
    return c.line(out, raw, figure)


def dream_command(
    settings: Mapping[str, Any], *, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """`python main.py export dream ...` for a DeepDream's settings (see the module's docstring)."""
    c = CommandLine("dream", settings, image=True)
    layers = required(settings, "layers", "dream")
    if isinstance(layers, list | tuple):
        c.parts += ["--layers", *(str(v) for v in layers)]
    else:
        c.text("--layers", str(layers).strip())
    c.numbers("octaves", "octave_scale", "steps", "lr", "seed")
    size = settings.get("size")
    if size is not None and not isinstance(size, list | tuple):
        c.number("--photo-size", int(size))
    c.number("--cols", settings.get("cols"))
    return c.line(out, raw, figure)
