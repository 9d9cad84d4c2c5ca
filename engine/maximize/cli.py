"""`python main.py export maximize|dream`: the GUI's runs as figures, animations or arrays.

    python main.py export maximize --model builtin:shapes --layer conv3 --channel 0..15 --steps 200 --out grid.png
    python main.py export maximize --model builtin:shapes --objective "conv3:5 - 0.5*class:2" --out mix.pdf
    python main.py export maximize --model builtin:shapes --objective class:star --out star.gif
    python main.py export dream --model builtin:digits --image photo.jpg --layer Conv2D_2 --out dream.png

The output kind follows the suffix: .png/.tif/.svg/.pdf (the figure: each image labelled with
its objective and the value it reached, and the objective curve; engine.plot.optimize), .gif
(the whole run, one grid per frame) or .npy (the float32 (B, H, W, C) result in [0, 1]).
--raw writes the bare result instead (a batch as one grid, today's pixels) and the float
images as .npy. Each file gets a FILE.json sidecar with every setting and the command that
reproduces it; writes are atomic and an existing file is only replaced with --overwrite.

Both kinds name what to optimize as every export kind does: --layer, with --channel for one
channel of a spatial layer or --unit for one unit of a dense layer (engine.cli.unit_args);
`export maximize --objective` stays for full expressions of the objective grammar. The canvas
size is --canvas (maximize) and the photo's longest side --photo-size (dream): --size is the
figure's size, as for every kind.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from engine import cli
from engine.maximize.figures import grid
from engine.plot.optimize import dream_figure, maximize_figure
from engine.plot.spec import FigureSpec

_SUFFIXES = (".png", ".tif", ".tiff", ".svg", ".pdf", ".gif", ".npy")


def _suffix(args: argparse.Namespace) -> str:
    suffix = Path(args.out).suffix.lower()
    if suffix not in _SUFFIXES:
        raise cli.CliError(f"--out {args.out}: use one of {', '.join(_SUFFIXES)}")
    return suffix


# the options passed on to maximize() / dream() unchanged, under their own names (option: keyword)
_MAXIMIZE_OPTIONS = (
    "steps canvas:size init seed transforms regularizers optimizer lr schedule param squash".split()
)
_DREAM_OPTIONS = "octaves octave_scale steps lr seed photo_size:size".split()


def _options(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The command line's options `names` ("option" or "option:keyword"), as keyword arguments."""
    pairs = [name.partition(":")[::2] for name in names]
    return {keyword or option: getattr(args, option) for option, keyword in pairs}


def _precheck(args: argparse.Namespace) -> str:
    """Cheap checks before the model loads: the suffix, and an existing output without --overwrite."""
    from engine.export import ExportExists, sidecar_path

    suffix = _suffix(args)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise cli.CliError(f"--out {args.out}: folder {out.parent} does not exist")
    if not args.overwrite:
        for target in (out, sidecar_path(out)):
            if target.exists():
                raise ExportExists(target)
    return suffix


def _produce(
    args: argparse.Namespace,
    run: Any,
    settings: dict[str, Any],
    report: list[str],
    figure: Callable[[np.ndarray], FigureSpec],
) -> cli.Produced:
    """Drive a Step generator and package the result for engine.cli's writer: a GIF or NPY
    writer, or the raw grid, its float images and the figure `figure(images)` builds."""
    from engine.export import write_gif, write_npy
    from engine.maximize.jobs import FrameRecorder

    suffix = _suffix(args)
    recorder = FrameRecorder() if suffix == ".gif" else None
    last = None
    for step in run:
        last = step
        if recorder is not None:
            recorder.add(step.step, step.images, force=step.step in (0, step.total))
    assert last is not None
    images = last.images
    zoom = max(1, int(args.zoom))
    if suffix == ".gif":
        assert recorder is not None
        frames = [grid(f, args.cols, zoom=zoom) for _, f in recorder.frames]
        settings = {**settings, "frames": len(frames)}
        return cli.Produced(
            image=frames[-1],
            settings=settings,
            report=report,
            writer=lambda path, s, ow: list(write_gif(path, frames, s, overwrite=ow)),
        )
    if suffix == ".npy":
        settings = {**settings, "shape": list(images.shape)}
        return cli.Produced(
            image=grid(images, args.cols, zoom=zoom),
            values=images,
            settings=settings,
            report=report,
            writer=lambda path, s, ow: list(write_npy(path, images, s, overwrite=ow)),
        )
    return cli.Produced(
        image=grid(images, args.cols, zoom=zoom),
        values=images,
        figure=figure(images),
        settings=settings,
        report=report,
    )


def _grid_args(p: argparse.ArgumentParser, zoomed: str, cols_help: str | None = None) -> None:
    """The options both kinds end with: --cols and --zoom of the grid (--raw and GIF), then
    engine.cli's output options."""
    p.add_argument("--cols", type=int, default=None, help=cols_help)
    p.add_argument("--zoom", type=int, default=1, help=f"enlarge {zoomed} N times (nearest) in --raw and GIF")
    cli._out_args(p)


# ----- export maximize -------------------------------------------------------------------------------
def _maximize_options(p: argparse.ArgumentParser) -> None:
    cli._model_args(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--layer",
        help="optimize this layer: the whole layer (mean square), or --channel / --unit of it",
    )
    what.add_argument(
        "--objective",
        nargs="+",
        help="a full expression instead of --layer, e.g. conv3:5@10,12, class:3, '0.5*conv3:5 - class:2' "
        "(several: one image each)",
    )
    cli.unit_args(p, position=True)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument(
        "--canvas",
        type=int,
        default=None,
        metavar="PX",
        help="square canvas size in pixels (default: the model's input size)",
    )
    p.add_argument(
        "--init", default="noise", help="grey | noise | normal | structured | photo (needs --image)"
    )
    p.add_argument("--image", default=None, help="photo for --init photo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--transforms",
        nargs="*",
        default=["jitter", "rotate", "scale"],
        help="jitter[:px] rotate[:deg] scale[:fraction] pad[:px]; none: give the flag alone",
    )
    p.add_argument(
        "--regularizers",
        nargs="*",
        default=[],
        help="tv[:w] lp[:p[:w]] decay[:theta] blur[:sigma[:every]] clip_value[:pct] clip_contribution[:pct]",
    )
    p.add_argument("--optimizer", default="normalized", help="normalized | adam")
    p.add_argument("--lr", type=float, default=1.0, help="relative step size (1 = recommended)")
    p.add_argument("--schedule", default="constant", help="constant | linear | cosine | exp | warmup")
    p.add_argument("--param", default="pixel", help="pixel | fourier")
    p.add_argument(
        "--squash", default=None, help="clip | sigmoid (default: clip for pixel, sigmoid for fourier)"
    )
    act = p.add_mutually_exclusive_group()
    act.add_argument(
        "--pre-activation",
        action="store_true",
        help="read conv/dense units before their fused activation (the default, except on a first-layer conv)",
    )
    act.add_argument(
        "--post-activation",
        action="store_true",
        help="read units after their activation (the default on a first-layer conv; a unit whose ReLU never "
        "fires on the start gets no gradient)",
    )
    p.add_argument(
        "--crop",
        action="store_true",
        help="neurons: crop the result to the pixels that changed (its receptive field)",
    )
    _grid_args(p, "each image", cols_help="images per row for a batch")


@cli.export_kind(
    "maximize", _maximize_options, help="activation maximization of a layer, channel, unit or class"
)
def _export_maximize(args: argparse.Namespace) -> cli.Produced:
    from engine.maximize.run import maximize

    cli.check_unit_args(args)
    _precheck(args)
    from engine.maximize import optimizers
    from engine.maximize.params import PARAMS
    from engine.maximize.regularizers import parse_regularizers
    from engine.maximize.transforms import parse_transforms

    optimizers.check(args.optimizer, args.schedule, args.lr)
    parse_transforms(args.transforms, (64, 64))
    parse_regularizers(args.regularizers)
    if args.param.lower() not in (*PARAMS, "fft", "decorrelated"):
        raise cli.CliError(f"--param {args.param}: choose from {', '.join(PARAMS)}")
    image = None
    if args.image:
        from engine.images import load_image

        image = load_image(args.image)
    h = cli._load(args)
    if args.objective:
        objective = args.objective[0] if len(args.objective) == 1 else list(args.objective)
    else:
        objective = cli.layer_objective(h, args.layer, args.channel, args.unit, args.position)
    run = maximize(
        h,
        objective,
        image=image,
        pre_activation=True if args.pre_activation else (False if args.post_activation else None),
        every=1 if _suffix(args) == ".gif" else 10,
        **_options(args, _MAXIMIZE_OPTIONS),
    )
    steps = list(run)
    last = steps[-1]
    info = dict(last.info)
    settings = {"view": "maximize", "model": h.spec, "scaling": h.scaling, **info.get("settings", {})}
    if args.image:
        settings["image"] = args.image
    settings["final_objective"] = list(info.get("objective", ()))
    report = []
    ran = len(info.get("curve", ())) or last.total
    for text, a, b in zip(
        info.get("objectives", ()), info.get("start_objective", ()), info.get("objective", ())
    ):
        report.append(f"{text}: {a:.4g} -> {b:.4g} over {ran} steps")
    if info.get("message"):
        report.append(info["message"])
        settings["silent"] = list(info.get("silent", ()))
    if info.get("stopped"):
        settings["stopped"] = info["stopped"]
    if "predictions" in info:
        settings["predictions"] = info["predictions"]
        report += list(info.get("report", ()))
    if args.crop:
        from engine.maximize.run import union_box

        box = union_box(info.get("changed_boxes") or [])
        if box is None:
            raise cli.CliError("--crop needs a neuron objective (conv3:5@10,12) whose pixels changed")
        top, left, bottom, right = box
        steps = [replace(s, images=np.ascontiguousarray(s.images[:, top:bottom, left:right])) for s in steps]
        settings["crop"] = list(box)
        report.append(f"cropped to rows {top}..{bottom - 1}, cols {left}..{right - 1}")
    what = " ".join(args.objective) if args.objective else str(objective)

    def figure(images: np.ndarray) -> FigureSpec:
        return maximize_figure(
            images,
            list(info.get("objectives", ())),
            info.get("curve"),
            h.name,
            what,
            settings,
            start=info.get("start_objective"),
            final=info.get("objective"),
            cols=args.cols,
        )

    return _produce(args, iter(steps), settings, report, figure)


# ----- export dream ------------------------------------------------------------------------------------
def _dream_options(p: argparse.ArgumentParser) -> None:
    cli._model_args(p)
    p.add_argument("--image", required=True, help="the photo to dream on (path or builtin:NAME)")
    p.add_argument(
        "--layer",
        "--layers",
        dest="layer",
        required=True,
        nargs="+",
        help="layers to amplify (mean square), weighted terms like 0.5*conv3, or one layer with --channel / --unit",
    )
    cli.unit_args(p)
    p.add_argument("--octaves", type=int, default=4)
    p.add_argument("--octave-scale", type=float, default=1.4)
    p.add_argument("--steps", type=int, default=20, help="steps per octave")
    p.add_argument("--lr", type=float, default=0.01, help="mean change of a pixel per step (display units)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--photo-size", type=int, metavar="PX", help="resize the photo to this longest side first")
    _grid_args(p, "the result")


@cli.export_kind("dream", _dream_options, help="DeepDream: amplify what layers see in a photo")
def _export_dream(args: argparse.Namespace) -> cli.Produced:
    from engine.images import load_image
    from engine.maximize.deepdream import dream

    cli.check_unit_args(args)
    if (args.channel is not None or args.unit is not None) and len(args.layer) != 1:
        raise cli.CliError("--channel and --unit need exactly one --layer")
    suffix = _precheck(args)
    photo = load_image(args.image)
    h = cli._load(args)
    if args.channel is not None or args.unit is not None:
        layers = cli.layer_objective(h, args.layer[0], args.channel, args.unit)
    else:
        layers = " + ".join(args.layer)
    run = dream(
        h,
        photo,
        layers,
        every=1 if suffix == ".gif" else 5,
        **_options(args, _DREAM_OPTIONS),
    )
    steps = list(run)
    info = dict(steps[-1].info)
    settings = {
        "view": "dream",
        "model": h.spec,
        "scaling": h.scaling,
        "image": args.image,
        **info.get("settings", {}),
    }
    curve = info.get("curve", ())
    report = [f"{layers}: {curve[0]:.4g} -> {curve[-1]:.4g} over {len(curve)} steps"] if curve else []

    def figure(images: np.ndarray) -> FigureSpec:
        return dream_figure(photo, images, curve, layers, h.name, args.image, settings)

    return _produce(args, iter(steps), settings, report, figure)
