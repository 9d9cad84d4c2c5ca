"""`python main.py export compare ...`: attribution methods compared on one image, as a figure.

The figure (engine.plot.compare) holds the photo and a panel per method with its scores
(deletion / insertion AUC, the pointing game and energy for --box) and its sanity-check
verdict; --raw writes a row per method (overlay and map) and FILE.npy of the maps stack
(M, H, W). The report prints the table of scores; the sidecar holds every number.
"""

from __future__ import annotations

import argparse
import re

from engine import cli
from engine.attribution.compare import ALL_METHODS, check_methods
from engine.attribution.metrics import BASELINES, DEFAULT_BASELINE
from engine.attribution.sanity_cli import map_args

_BOX = re.compile(r"^-?\d+(\.\d+)?(,-?\d+(\.\d+)?){3}$")


def _options(p: argparse.ArgumentParser) -> None:
    cli._model_args(p)
    p.add_argument("--image", required=True, help="image path or builtin:NAME")
    p.add_argument(
        "--methods",
        default=",".join(ALL_METHODS),
        help="comma-separated CAM and saliency methods (default: all eight)",
    )
    map_args(p)
    p.add_argument(
        "--box",
        metavar="X0,Y0,X1,Y1",
        help="the object's box in image pixels (x1, y1 exclusive): adds the pointing game and energy",
    )
    p.add_argument(
        "--baseline",
        choices=BASELINES,
        default=DEFAULT_BASELINE,
        help="what deletion replaces pixels by and insertion restores them into",
    )
    p.add_argument("--steps", type=int, default=16, help="steps of the deletion and insertion curves")
    p.add_argument(
        "--no-sanity", action="store_true", help="skip the model-randomization sanity check (the slow part)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the curves' tie-break, SmoothGrad and the check"
    )
    cli._out_args(p)


def parse_box(text: str | None) -> tuple[float, float, float, float] | None:
    """--box X0,Y0,X1,Y1 as the engine's (top, left, bottom, right)."""
    if text is None:
        return None
    compact = text.replace(" ", "")
    if not _BOX.match(compact):
        raise cli.CliError(f"--box {text}: write X0,Y0,X1,Y1 in image pixels, e.g. 10,12,60,50")
    x0, y0, x1, y1 = (float(v) for v in compact.split(","))
    if x1 <= x0 or y1 <= y0:
        raise cli.CliError(f"--box {text}: X1 must exceed X0 and Y1 exceed Y0")
    return (y0, x0, y1, x1)


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def report_lines(result: object) -> list[str]:
    """The table of scores, one line per method."""
    head = (
        f"{'method':<22}{'deletion':>9}{'insertion':>10}{'pointing':>9}{'energy':>8}{'sanity':>8}{'rho':>7}"
    )
    lines = [head]
    for r in result.rows:  # type: ignore[attr-defined]
        energy = "-" if r.energy is None else f"{r.energy:.3f}"
        rho = "-" if r.sanity_rho is None else f"{r.sanity_rho:.2f}"
        sanity = "-" if r.sanity_passed is None else ("pass" if r.sanity_passed else "fail")
        lines.append(
            f"{r.label:<22}{r.deletion.auc:>9.3f}{r.insertion.auc:>10.3f}{_mark(r.pointing):>9}"
            f"{energy:>8}{sanity:>8}{rho:>7}"
        )
    return lines


@cli.export_kind(
    "compare",
    _options,
    help="attribution methods side by side on one image, with their scores and sanity-check verdicts",
)
def export_compare(args: argparse.Namespace) -> cli.Produced:
    from engine.attribution.cli import _target_arg
    from engine.attribution.compare import compare
    from engine.images import load_image
    from engine.plot.attribution import source_name
    from engine.plot.compare import compare_figure, rows_image

    methods = check_methods(args.methods)  # before the model loads: a typo fails at once
    box = parse_box(args.box)
    if args.steps < 1:
        raise cli.CliError("--steps must be at least 1")
    if args.layer and all(kind != "cam" for _, kind in methods):
        raise cli.CliError("--layer is the CAM layer; no CAM method is compared")
    h = cli._load(args)
    photo = load_image(args.image)
    result = compare(
        h,
        photo,
        [name for name, _ in methods],
        _target_arg(args.target),
        args.layer,
        args.mapping,
        box,
        args.baseline,
        args.steps,
        not args.no_sanity,
        args.seed,
    )
    settings = {"view": "compare", "model": h.spec, "image": args.image, "scaling": h.scaling}
    settings.update(result.settings())
    figure = compare_figure(photo, result, h.name, source_name(args.image))
    lines = report_lines(result)
    return cli.Produced(rows_image(photo, result), settings, lines, values=result.maps, figure=figure)
