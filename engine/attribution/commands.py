"""The `export cam` and `export saliency` lines that reproduce a map (engine.attribution.cli's kinds),
and the text a saliency figure's title gives what the map explains.

Built from the settings the Attribution tab records in its export sidecar. cam_command
settings: model, scaling, image, target and compare (as asked: None for top-1 / no second
target, a class index or name), layer, method, mapping, sigma, batch_size, precision (the one
Score-CAM ran), map_style (relu | signed; the tab's look), cmap, alpha, dim, coarse.
saliency_command settings: model, scaling, image, target, layer (with layer_rank: --channel or
--unit for the target, else the old spelling --target), method, samples, noise, steps,
batch_size, map_style, cmap, alpha, dim. SmoothGrad's samples and noise and Integrated
Gradients' steps are written only for the method that uses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.commands import CommandLine, required

SIGNED_SALIENCY = ("integrated", "grad_x_input")  # methods whose map is signed ("auto" draws it signed)


def _look(c: CommandLine) -> None:
    c.options("map_style", "cmap")
    c.numbers("alpha", "dim")


def _target(c: CommandLine, flag: str, value: Any) -> None:
    if value is not None:
        c.text(flag, str(value))


def cam_command(
    settings: Mapping[str, Any], *, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """`python main.py export cam ...` for a class activation map's settings."""
    c = CommandLine("cam", settings, image=True)
    _target(c, "--target", settings.get("target"))
    _target(c, "--compare", settings.get("compare"))
    c.options("layer", "method", "mapping")
    c.number("--sigma", settings.get("sigma"))
    if settings.get("method") == "scorecam":
        c.number("--batch-size", settings.get("batch_size"))
        c.add("--precision", settings.get("precision"))
        c.number("--max-channels", settings.get("max_channels"))
    c.add("--coarse", bool(settings.get("coarse")))
    _look(c)
    return c.line(out, raw, figure)


def saliency_command(
    settings: Mapping[str, Any], *, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """`python main.py export saliency ...` for a saliency map's settings."""
    c = CommandLine("saliency", settings, image=True)
    method = settings.get("method")
    c.add("--method", method)
    layer, target = settings.get("layer"), settings.get("target")
    if layer:
        c.add("--layer", layer)
        flag = {3: "--channel", 1: "--unit"}.get(int(settings.get("layer_rank") or 0), "--target")
        _target(c, flag, target)
    else:
        _target(c, "--target", target)
    if method == "smoothgrad":
        c.number("--samples", settings.get("samples"))
        c.number("--noise", settings.get("noise"))
    if method == "integrated":
        c.number("--steps", settings.get("steps"))
    c.number("--batch-size", settings.get("batch_size"))
    _look(c)
    return c.line(out, raw, figure)


def saliency_subject(
    target: Any,
    probabilities: Sequence[float] | None,
    class_names: Sequence[str] = (),
    layer: str | None = None,
) -> str:
    """What a saliency map explains, as its figure's title says it: "star (2): p 0.981" for a class
    (target None: the top-1 class of `probabilities`), "conv2:3" or "conv2 (mean)" for a layer.

    The same text as `export saliency` writes (engine.attribution.cli._saliency_what), from
    plain values: the window has the probabilities from its "predict" job.
    """
    from engine.plot.attribution import prob

    if layer:
        return f"{layer}:{target}" if target is not None else f"{layer} (mean)"
    probs = [] if probabilities is None else [float(p) for p in probabilities]
    if target is None or (isinstance(target, int) and target < 0):
        if not probs:
            raise ValueError("the top-1 class needs the class probabilities")
        index = max(range(len(probs)), key=probs.__getitem__)
    elif isinstance(target, str) and not target.strip().lstrip("-").isdigit():
        if target not in class_names:
            raise ValueError(f"unknown class {target!r}")
        index = list(class_names).index(target)
    else:
        index = int(target)
    name = str(class_names[index]) if class_names and 0 <= index < len(class_names) else None
    p = prob(probs[index]) if 0 <= index < len(probs) else "?"
    return f"{name + ' (' + str(index) + ')' if name else index}: p {p}"


def sanity_command(
    settings: Mapping[str, Any], *, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """`python main.py export sanity ...` for a check's settings: model, scaling, image, method,
    target (as asked: None for top-1), layer (CAM only; None: the default), mapping (CAM only),
    order, seed (the options of engine.attribution.sanity_cli)."""
    c = CommandLine("sanity", settings, image=True)
    c.add("--method", settings.get("method"))
    _target(c, "--target", settings.get("target"))
    c.options("layer", "mapping", "order")
    c.number("--seed", settings.get("seed"))
    return c.line(out, raw, figure)


def compare_command(
    settings: Mapping[str, Any], *, out: str = "FILE.png", raw: bool = False, figure: Sequence[str] = ()
) -> str:
    """`python main.py export compare ...` for a comparison's settings (engine.attribution.compare_cli's
    options): model, scaling, image, methods (a list or "gradcam,scorecam"), target (as asked: None
    for top-1), layer and mapping (written only when a CAM method is compared; layer None: the
    default), box (top, left, bottom, right, as CompareResult.settings() records it; written as
    --box X0,Y0,X1,Y1), baseline, steps, sanity (False: --no-sanity), seed. The command line takes
    one box: settings whose "boxes" (the user's, [x0, y0, x1, y1] each) hold several raise EngineError."""
    from engine.attribution.compare import check_methods
    from engine.errors import EngineError

    c = CommandLine("compare", settings, image=True)
    methods = check_methods(required(settings, "methods", "compare"))
    c.add("--methods", ",".join(name for name, _ in methods))
    _target(c, "--target", settings.get("target"))
    if any(kind == "cam" for _, kind in methods):
        c.options("layer", "mapping")
    boxes = settings.get("boxes") or []
    if len(boxes) > 1:
        raise EngineError(
            f"cannot rebuild the export compare command: --box takes one box, the comparison scored {len(boxes)}"
        )
    box = settings.get("box")
    if box is not None:
        top, left, bottom, right = (int(round(float(v))) for v in box)
        c.add("--box", f"{left},{top},{right},{bottom}")
    c.add("--baseline", settings.get("baseline"))
    c.number("--steps", settings.get("steps"))
    c.add("--no-sanity", settings.get("sanity") is False)
    c.number("--seed", settings.get("seed"))
    return c.line(out, raw, figure)
