"""The command line: `python main.py info|export|train ...`.

Every command prints results on stdout; bad input exits non-zero with one line
on stderr and no traceback (set CONVSCOPE_DEBUG=1 for the traceback). TensorFlow's
native log lines are silenced so that line is the only one.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import EngineError

if TYPE_CHECKING:
    import numpy as np

    from engine.models import ModelHandle
    from engine.plot.spec import FigureSpec

COMMANDS = ("info", "export", "train", "evaluate")
FIGURE_SUFFIXES = (".png", ".tif", ".tiff", ".svg", ".pdf")  # a figure (engine.plot.write_figure)
RAW_SUFFIXES = (".png", ".tif", ".tiff")  # --raw: the bare array image (engine.export.write_image)
EXPORT_KINDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


@dataclass(frozen=True)
class Produced:
    """What an export runner computed, for _export to write.

    image: the raw uint8 array image (what the screen shows; --raw writes it bit for bit).
    values: the numbers behind it (maps, weights, heatmap), written as FILE.npy by --raw.
    figure: the publication figure (engine.plot); None while a kind has none (then the raw image
    is written). writer(path, settings, overwrite) -> [paths]: the kind writes the file itself
    (.gif animations, .npy arrays). report: lines printed after the written paths.
    """

    image: np.ndarray | None
    settings: Mapping[str, Any]
    report: Sequence[str] = ()
    values: np.ndarray | None = None
    figure: FigureSpec | None = None
    writer: Callable[[Path, dict[str, Any], bool], list[Path]] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, result: Produced | Mapping[str, Any]) -> Produced:
        """A runner's result as Produced (runners not converted yet return a dict of the same keys)."""
        if isinstance(result, Produced):
            return result
        known = ("image", "settings", "report", "values", "figure", "writer")
        return cls(**{k: result[k] for k in known if k in result} | {"image": result.get("image")})


_RUNNERS: dict[str, Callable[[argparse.Namespace], Produced | dict[str, Any]]] = {}


class CliError(EngineError):
    """Bad command-line usage."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise CliError(f"{self.prog}: {message}")


def quiet_native_stderr() -> None:
    """Send fd 2 (TensorFlow's C++ logs) to /dev/null and keep Python's stderr on the real terminal."""
    if os.environ.get("CONVSCOPE_DEBUG"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(saved, "w", buffering=1, encoding="utf-8", errors="replace")
    except (OSError, ValueError, AttributeError):
        pass


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--model", required=required, help="path, builtin:NAME or keras:NAME[?weights=none]")
    p.add_argument("--trust", action="store_true", help="allow Lambda/custom code in the model file (unsafe)")
    p.add_argument("--scaling", help="input scaling: unit, byte, signed, caffe, torch (remembered per file)")


def _out_args(p: argparse.ArgumentParser) -> None:
    """--out, --overwrite and the figure options every kind shares: --raw, --size, --dpi, --width, --style.

    These names are taken for every kind: a kind's own options must not reuse them (maximize's
    canvas is --canvas, cam's look --map-style).
    """
    from engine.plot.style import STYLES

    p.add_argument(
        "--out",
        required=True,
        help="output file: a figure (.png .tif .tiff .svg .pdf) or, with --raw, the bare image "
        "(.png .tif); FILE.json sidecar beside it",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    fig = p.add_argument_group("figure or raw output")
    fig.add_argument(
        "--raw",
        action="store_true",
        help="instead of the figure: the bare array image at native resolution (the screen's pixels) and FILE.npy of its values",
    )
    fig.add_argument(
        "--size",
        dest="figure_size",
        metavar="WxH[in|px]",
        help="figure size: 3.5x2.5in (inches, the default unit) or 1200x800px (default: the style's width, "
        "the height from the layout)",
    )
    fig.add_argument("--dpi", type=float, help="raster resolution in dots per inch (default: the style's)")
    fig.add_argument(
        "--width", type=int, metavar="PX", help="figure width in pixels (height from the layout)"
    )
    fig.add_argument(
        "--style",
        choices=tuple(STYLES),
        help="paper (serif 8 pt, 3.5 in single column; the default) or slide (sans, 16:9)",
    )


def export_kind(name: str, configure: Callable[[argparse.ArgumentParser], None], help: str | None = None):
    """Register `python main.py export NAME`: configure adds its options; the decorated fn runs it.

    help is the one line `export --help` shows for NAME (default: the runner's docstring, then
    _KIND_HELP).
    """

    def register(fn: Callable[[argparse.Namespace], Produced | dict[str, Any]]):
        EXPORT_KINDS[name] = configure
        _RUNNERS[name] = fn
        text = help or (fn.__doc__ or "").strip().split("\n")[0] or _KIND_HELP.get(name, "")
        _HELP[name] = text
        return fn

    return register


# One line per kind for `export --help`, for kinds whose module passes no help= (yet).
_KIND_HELP = {
    "cam": "class activation map laid over the photo",
    "saliency": "saliency map of a class (or of a layer's output) on the photo",
    "topk": "the dataset images that excite each unit of a layer most",
}
_HELP: dict[str, str] = {}

# ----- the options every kind spells the same way ----------------------------------------------
_INDICES = re.compile(r"^(\*|\d+\.\.\d+|\d+(,\d+)*)$")
_POSITION = re.compile(r"^\d+,\d+$")


def unit_args(p: argparse.ArgumentParser, position: bool = False) -> None:
    """--channel (conv / spatial layers) and --unit (dense layers), with --position ROW,COL for one neuron."""
    p.add_argument("--channel", help="channel(s) of a spatial --layer: 5, 0,3, 0..15 (inclusive) or * (all)")
    p.add_argument("--unit", help="unit(s) of a dense --layer, written as for --channel")
    if position:
        p.add_argument(
            "--position", metavar="ROW,COL", help="with --channel: one neuron at this cell of the layer's map"
        )


def check_unit_args(args: argparse.Namespace) -> None:
    """Cheap checks of --layer/--channel/--unit/--position before any model loads."""
    channel, unit, position = args.channel, args.unit, getattr(args, "position", None)
    if channel is not None and unit is not None:
        raise CliError("give --channel (spatial layer) or --unit (dense layer), not both")
    for flag, value in (("--channel", channel), ("--unit", unit)):
        if value is not None and not _INDICES.match(value.replace(" ", "")):
            raise CliError(f"{flag} {value}: use an index (5), a list (0,3), a range (0..15) or * (all)")
    if (channel is not None or unit is not None) and not getattr(args, "layer", None):
        raise CliError("--channel and --unit need --layer")
    if position is not None:
        if channel is None:
            raise CliError("--position needs --layer and --channel (one neuron of a spatial layer)")
        if not _POSITION.match(position.replace(" ", "")):
            raise CliError(f"--position {position}: use ROW,COL, e.g. 10,12")


def layer_objective(
    h: ModelHandle, layer: str, channel: str | None, unit: str | None, position: str | None = None
) -> str:
    """The objective text ("conv3", "conv3:2", "conv3:2@10,12", "fc:7") for --layer and its unit options.

    --channel must name a layer with (H, W, C) output and --unit one with (units,) output, so a
    mix-up says which flag the layer wants.
    """
    path = h.resolve(layer)
    if channel is None and unit is None:
        return path
    dims = len(h.info(path).output_shape)
    if channel is not None and dims != 3:
        hint = "; it is a dense layer: use --unit" if dims == 1 else ""
        raise CliError(f"--channel needs a spatial layer (H, W, C); {path} has output rank {dims}{hint}")
    if unit is not None and dims != 1:
        hint = "; it is a spatial layer: use --channel" if dims == 3 else ""
        raise CliError(f"--unit needs a dense layer (units,); {path} has output rank {dims}{hint}")
    text = f"{path}:{(channel if channel is not None else unit).replace(' ', '')}"
    if position is not None:
        text += "@" + position.replace(" ", "")
    return text


def unit_indices(text: str | None, units: int, flag: str = "--channel") -> list[int] | None:
    """The indices a --channel/--unit value names (5, 0,3, 0..15; None for * or no value), each
    checked against the layer's `units`. The value's form was checked by check_unit_args."""
    if text is None or text.replace(" ", "") == "*":
        return None
    text = text.replace(" ", "")
    if ".." in text:
        lo, hi = (int(v) for v in text.split(".."))
        out = list(range(lo, hi + 1))
    else:
        out = [int(v) for v in text.split(",")]
    if not out:
        raise CliError(f"{flag} {text}: the range is empty")
    bad = [u for u in out if not 0 <= u < units]
    if bad:
        raise CliError(f"{flag} {bad[0]} is out of range; the layer has {units} (0-{units - 1})")
    return out


def selected_units(h: ModelHandle, args: argparse.Namespace) -> list[int] | None:
    """The channels (--channel) or units (--unit) of --layer that the command line names; None: all.

    Like layer_objective, --channel must name a spatial layer and --unit a dense one.
    """
    layer_objective(h, args.layer, args.channel, args.unit)
    flag, text = ("--channel", args.channel) if args.channel is not None else ("--unit", args.unit)
    return unit_indices(text, int(h.info(h.resolve(args.layer)).output_shape[-1]), flag)


def one_unit(h: ModelHandle, args: argparse.Namespace, instead: str | None = None) -> int | None:
    """The one channel (--channel) or unit (--unit) of --layer that the command line names; None: *.

    instead: an option that names it another way (an old spelling); giving both is an error.
    """
    if instead is not None and getattr(args, instead.lstrip("-").replace("-", "_")) is not None:
        raise CliError(f"with --layer, give --channel/--unit or {instead}, not both")
    units = selected_units(h, args)
    if units is not None and len(units) != 1:
        raise CliError("give one --channel/--unit index, or * for the whole layer")
    return None if units is None else units[0]


def _load(args: argparse.Namespace) -> ModelHandle:
    """The model named by --model, --trust and --scaling."""
    from engine.models import load_model

    return load_model(args.model, trust=args.trust, scaling=args.scaling)


_FLAGS = {"figure_size": "--size"}  # options whose dest is not their flag


def command_line(kind: str, args: argparse.Namespace, skip: tuple[str, ...] = ()) -> str:
    """The `python main.py export ...` line that reproduces an export (for the sidecar)."""
    parts = ["python", "main.py", "export", kind]
    for key, value in sorted(vars(args).items()):
        if key in ("command", "kind", "overwrite", *skip) or value in (None, False):
            continue
        flag = _FLAGS.get(key, "--" + key.replace("_", "-"))
        if value is True:
            parts.append(flag)
        elif isinstance(value, list | tuple):  # a lone value that starts with "-" needs flag=value
            one = len(value) == 1 and str(value[0]).startswith("-")
            parts += [f"{flag}={value[0]}"] if one else [flag, *map(str, value)]
        else:
            parts += [f"{flag}={value}"] if str(value).startswith("-") else [flag, str(value)]
    return " ".join(_quote(p) for p in parts)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# ----- export featuremaps / filters ------------------------------------------
def _fm_options(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("--image", required=True, help="image path or builtin:NAME")
    p.add_argument("--layer", required=True)
    p.add_argument("--norm", default="per_map", help="global | per_map | standardize | raw")
    p.add_argument("--cmap", default="gray", help="gray | viridis | magma | turbo | signed")
    p.add_argument("--cols", type=int, default=None)
    _out_args(p)


@export_kind("featuremaps", _fm_options, help="the feature maps of a layer for one image")
def _export_featuremaps(args: argparse.Namespace) -> Produced:
    from engine import render
    from engine.activations import feature_maps
    from engine.images import load_image
    from engine.plot.features import featuremaps_figure

    h = _load(args)
    img = load_image(args.image)
    path = h.resolve(args.layer)
    maps = feature_maps(h, img, [path])[path]
    grid = render.feature_grid(maps, norm=args.norm, cmap=args.cmap, cols=args.cols)
    settings = {
        "view": "featuremaps",
        "model": h.spec,
        "image": args.image,
        "layer": path,
        "norm": args.norm,
        "cmap": args.cmap,
        "cols": grid.layout["cols"],
        "layout": "fixed",
        "scaling": h.scaling,
    }
    figure = featuremaps_figure(maps, path, h.name, display_name(args.image), args.norm, args.cmap, args.cols)
    return Produced(grid.image, settings, values=maps, figure=figure)


def display_name(source: str) -> str:
    """How a figure's title names an image or model given as a path or builtin:NAME."""
    if ":" in source and not Path(source).exists():
        return source.split(":", 1)[1] or source
    return Path(source).name


def _filter_options(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("--layer", required=True)
    p.add_argument("--scale", choices=("shared", "per-filter"), default="shared")
    p.add_argument("--max-filters", type=int, default=256, help="show at most this many filters")
    p.add_argument("--cols", type=int, default=None, help="filters per row (default: about square)")
    p.add_argument(
        "--sections-per-row",
        type=int,
        choices=(1, 2, 4),
        default=None,
        help="first-layer RGB, R, G, B sections per row, or blocks of filter rows side by side "
        "for deeper layers (default 1: stacked)",
    )
    _out_args(p)


@export_kind("filters", _filter_options, help="the filters (weights) of a conv layer")
def _export_filters(args: argparse.Namespace) -> Produced:
    from engine import render
    from engine.plot.features import filters_figure
    from engine.weights import filters

    h = _load(args)
    path = h.resolve(args.layer)
    kernel = filters(h, path)
    grid = render.filter_grid(
        kernel,
        shared_scale=args.scale == "shared",
        max_out=args.max_filters,
        cols=args.cols,
        sections_per_row=args.sections_per_row,
    )
    settings = {
        "view": "filters",
        "model": h.spec,
        "layer": path,
        "scale": args.scale,
        "max_filters": args.max_filters,
        **grid.layout,
        "layout": "fixed",
    }
    figure = filters_figure(kernel, path, h.name, args.scale == "shared", args.max_filters, cols=args.cols)
    return Produced(grid.image, settings, values=kernel, figure=figure)


def _load_export_plugins() -> None:
    """Later features register their export kinds in these modules (absent ones are skipped)."""
    import importlib

    for module in (
        "engine.maximize.cli",
        "engine.attribution.cli",
        "engine.attribution.sanity_cli",
        "engine.attribution.compare_cli",
        "engine.dataset.cli",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise


# ----- info / train -----------------------------------------------------------
def _info(args: argparse.Namespace) -> int:
    h = _load(args)
    print(
        f"{h.name}  input {h.input_shape}  scaling {h.scaling}  classes {h.num_classes}  "
        f"output {h.output_activation}  params {h.model.count_params():,}"
    )
    if h.class_names:
        print("classes: " + ", ".join(h.class_names[:20]) + (" …" if len(h.class_names) > 20 else ""))
    width = max((len(i.path) for i in h.all_layers()), default=10) + 2
    print(f"{'layer':<{width}}{'type':<24}{'output':<22}{'params':>10}")
    for info in h.all_layers():
        depth = info.path.count("/")
        name = "  " * depth + info.path
        shape = "x".join("?" if d is None else str(d) for d in info.output_shape)
        print(f"{name:<{width}}{info.type:<24}{shape:<22}{info.params:>10,}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from engine import zoo

    spec = args.name
    name = spec.split(":", 1)[1] if spec.startswith("builtin:") else spec
    out = Path(args.out) if args.out else None
    result = zoo.train(name, out=out, seed=args.seed, epochs=args.epochs)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="main.py", description="Convscope: what did my CNN learn? (no command opens the window)"
    )
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    p_info = sub.add_parser("info", help="print the layer table of a model")
    p_info.add_argument("model")
    p_info.add_argument("--trust", action="store_true")
    p_info.add_argument("--scaling")
    p_export = sub.add_parser(
        "export",
        help="write a view as a figure with its JSON sidecar",
        description=textwrap.fill(
            "Write a view as a figure with a JSON sidecar holding every setting and the command that "
            "reproduces it. Every kind takes --model and --out (--overwrite replaces); a layer is always "
            "--layer, one channel of a spatial layer --channel, one unit of a dense layer --unit.",
            88,
        )
        + "\n\n"
        + textwrap.fill(
            "The figure (title, labelled panels, a colour bar of real values) takes the format of --out's "
            "suffix: .png .tif .tiff .svg .pdf (vector output keeps text as text). Size it with "
            "--size WxH (inches, or 1200x800px) and --dpi, or --width PX; --style paper (serif 8 pt, "
            "3.5 in column; the default) or slide (sans, 16:9). --raw writes the bare array image at "
            "native resolution instead, plus FILE.npy of its values.",
            88,
        ),
        formatter_class=lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=30),
    )
    kinds = p_export.add_subparsers(dest="kind", parser_class=_Parser, metavar="KIND")
    _load_export_plugins()
    table = []
    for kind, configure in EXPORT_KINDS.items():
        text = _HELP.get(kind, "")
        kp = kinds.add_parser(kind, help=text, description=text or None)
        configure(kp)
        flags = [f for f in ("--image", "--layer", "--channel", "--unit") if f in kp._option_string_actions]
        table.append(f"  {kind:<12}{' '.join(flags)}")
    p_export.epilog = "layer and image options of each kind:\n" + "\n".join(table)
    from engine.attribution.evaluate_cli import add_parser as add_evaluate

    add_evaluate(sub, _Parser)  # `evaluate cam`
    p_train = sub.add_parser("train", help="retrain a built-in model from its shipped data")
    p_train.add_argument("name", help="builtin:digits or builtin:shapes")
    p_train.add_argument("--epochs", type=int, default=None)
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument(
        "--out", help="where to write the .keras file (default: resources/models/NAME.keras)"
    )
    return parser


def _figure_options(args: argparse.Namespace) -> tuple[str, Any] | None:
    """Cheap checks of --out's suffix and the figure options, before any model loads.

    Returns (style, FigureSize) when a figure is to be written, None for --raw, .gif and .npy.
    """
    from engine.export import EXPORT_FORMATS
    from engine.plot.size import parse_size

    suffix = Path(args.out).suffix.lower()
    allowed = sorted(EXPORT_FORMATS | set(FIGURE_SUFFIXES))
    if suffix not in allowed:
        raise CliError(f"cannot write {args.out!r}: use one of {', '.join(allowed)}")
    figure_flags = [
        flag
        for flag, value in (("--size", args.figure_size), ("--dpi", args.dpi), ("--width", args.width))
        if value is not None
    ] + (["--style"] if args.style is not None else [])
    if args.raw or suffix not in FIGURE_SUFFIXES:
        if args.raw and suffix not in RAW_SUFFIXES:
            raise CliError(f"--raw writes the bare image as {', '.join(RAW_SUFFIXES)}, not {suffix}")
        if figure_flags:
            why = "--raw" if args.raw else f"a {suffix} file"
            raise CliError(f"{' '.join(figure_flags)} shape a figure; {why} is written at native resolution")
        return None
    style = args.style or "paper"
    return style, parse_size(args.figure_size, args.dpi, args.width, style=style)


def _export(args: argparse.Namespace) -> int:
    from engine.export import write_image

    if not args.kind:
        raise CliError(f"main.py export: choose what to export: {', '.join(EXPORT_KINDS)}")
    figure_options = _figure_options(args)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CliError(f"{args.out} exists; pass --overwrite to replace it")
    produced = Produced.of(_RUNNERS[args.kind](args))
    settings = dict(produced.settings)
    settings["command"] = command_line(args.kind, args)
    suffix = out.suffix.lower()
    if produced.writer is not None and (suffix in (".gif", ".npy") or produced.image is None):
        written = produced.writer(out, settings, args.overwrite)
    elif args.raw:
        written = _write_raw(out, produced, settings, args.overwrite)
    elif figure_options is not None and produced.figure is not None:
        from engine.plot import write_figure

        style, size = figure_options
        written = write_figure(
            out, produced.figure, settings, style=style, size=size, overwrite=args.overwrite
        )
    else:  # .gif/.npy, or a kind without a figure yet: the bare image, as before figures
        if suffix in (".svg", ".pdf"):
            raise CliError(f"export {args.kind} has no figure yet; write .png or .tif")
        written = write_image(out, produced.image, settings, overwrite=args.overwrite)
    for path in written:
        print(path)
    for line in produced.report:
        print(line)
    return 0


def _write_raw(out: Path, produced: Produced, settings: dict[str, Any], overwrite: bool) -> list[Path]:
    """--raw: the runner's array image bit for bit, plus FILE.npy of its values when it has them."""
    from engine.plot import raw_export

    if produced.image is None:
        raise CliError("this export has no array image to write with --raw")
    return list(raw_export(out, produced.image, produced.values, settings, overwrite))


def main(argv: list[str]) -> int:
    """Run one CLI command; returns the process exit code."""
    quiet_native_stderr()
    warnings.filterwarnings("ignore")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "info":
            return _info(args)
        if args.command == "export":
            return _export(args)
        if args.command == "train":
            return _train(args)
        if args.command == "evaluate":
            from engine.attribution.evaluate_cli import run as run_evaluate

            return run_evaluate(args)
        build_parser().print_help()
        return 0
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback for the user
        if os.environ.get("CONVSCOPE_DEBUG"):
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: {type(exc).__name__}: {first[:300]}", file=sys.stderr)
        return 1
