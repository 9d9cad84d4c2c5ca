"""`python main.py export sanity ...`: the model-randomization sanity check as a figure.

The figure (engine.plot.sanity) holds the photo, the map after each re-initialization step and
the Spearman / SSIM / HOG curve, with the verdict as its caption; --raw writes the row of maps
(each |map| scaled to [0, 1] in viridis, the photo first) and FILE.npy of the maps stack. The
report prints one line per step and the verdict; the sidecar holds every number.
"""

from __future__ import annotations

import argparse

import numpy as np

from engine.attribution.cam import METHODS
from engine.attribution.gradients import SALIENCY_METHODS
from engine.attribution.projection import DEFAULT_MAPPING, MAPPINGS
from engine.attribution.sanity import ORDERS
from engine.cli import CliError, Produced, _load, _model_args, _out_args, export_kind


def map_args(p: argparse.ArgumentParser, top: str = "top-1", layer_note: str = "") -> None:
    """--target (default: `top`), --layer and --mapping: what the checked or compared maps explain."""
    p.add_argument("--target", help=f"class index or name (default: {top})")
    p.add_argument("--layer", help=f"CAM layer (default: the last one with spatial extent){layer_note}")
    p.add_argument(
        "--mapping", choices=MAPPINGS, default=DEFAULT_MAPPING, help="CAM projection onto the photo"
    )


def _options(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument("--image", required=True, help="image path or builtin:NAME")
    p.add_argument(
        "--method",
        choices=(*METHODS, *SALIENCY_METHODS),
        default="gradcam",
        help="the CAM or saliency method whose map is checked",
    )
    map_args(p, "top-1 of the trained model", "; CAM methods only")
    p.add_argument(
        "--order",
        choices=ORDERS,
        default="cascade",
        help="cascade: re-initialize layers from the top down, cumulatively; independent: one at a time",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the re-initialization")
    _out_args(p)


@export_kind(
    "sanity",
    _options,
    help="model-randomization sanity check of a map (Adebayo et al. 2018): maps as weights are re-initialized",
)
def export_sanity(args: argparse.Namespace) -> Produced:
    from engine.attribution.cli import _target_arg
    from engine.attribution.sanity import randomization
    from engine.images import load_image
    from engine.plot.attribution import source_name
    from engine.plot.sanity import maps_row, sanity_figure

    cam_method = args.method in METHODS
    if args.layer and not cam_method:
        raise CliError(f"--layer is the CAM layer; {args.method} is a saliency method and takes none")
    h = _load(args)
    photo = load_image(args.image)
    options = {"layer": args.layer, "mapping": args.mapping} if cam_method else {}
    result = randomization(
        h, photo, args.method, _target_arg(args.target), args.order, seed=args.seed, **options
    )
    settings = {
        "view": "sanity",
        "model": h.spec,
        "image": args.image,
        "scaling": h.scaling,
        **({"mapping": args.mapping} if cam_method else {}),
        **result.settings(),
    }
    report = [f"{'step':<24}{'spearman':>10}{'ssim':>10}{'hog':>10}"]
    for step, r, s, g in zip(result.steps, result.spearman, result.ssim, result.hog):
        report.append(f"{step:<24}{r:>10.3f}{s:>10.3f}{g:>10.3f}")
    report.append(("passed: " if result.passed else "failed: ") + result.verdict)
    figure = sanity_figure(photo, result, h.name, source_name(args.image))
    return Produced(maps_row(result, photo), settings, report, values=np.asarray(result.maps), figure=figure)
