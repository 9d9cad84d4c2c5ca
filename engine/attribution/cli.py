"""`python main.py export cam ...` and `export saliency ...` (registered with engine.cli.export_kind).

Each runner returns an engine.cli.Produced: the figure (engine.plot.attribution: the photo, the
map over it and the map on a colour bar of its real values, a row per target), the raw image
that --raw writes (engine.attribution.figures, the pixels the Attribution tab shows) with the
map(s) as its values, the settings and the report lines; engine.cli writes the file and its
JSON sidecar and prints the report. How the map is drawn is --map-style (relu | signed):
--style is the figure's style (paper | slide), as for every kind.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from engine import cli
from engine.attribution.cam import METHODS
from engine.attribution.figures import (
    CMAPS,
    DIM,
    STYLES,
    coarse_image,
    compare_overlays,
    map_scale,
    overlay,
    side_by_side,
)
from engine.attribution.gradients import SALIENCY_METHODS
from engine.attribution.methods import FAST_CHANNELS
from engine.attribution.metrics import BASELINES, DEFAULT_BASELINE
from engine.attribution.projection import DEFAULT_MAPPING, MAPPINGS
from engine.models import ModelHandle
from engine.plot.attribution import Look, cam_figure, prob, saliency_figure, source_name
from engine.precision import PRECISIONS


def _look_args(p: argparse.ArgumentParser, style_default: str) -> None:
    p.add_argument(
        "--map-style",
        choices=("auto", *STYLES),
        default=style_default,
        help="relu: the positive map in a colormap; signed: blue-grey-red on a dimmed photo",
    )
    p.add_argument("--cmap", choices=CMAPS, default="viridis", help="colormap of the relu style")
    p.add_argument("--alpha", type=float, default=0.5, help="opacity of the map over the photo, 0..1")
    p.add_argument(
        "--dim", type=float, default=DIM, help="brightness of the photo under the signed style, 0..1"
    )


def _target_arg(text: str | None) -> Any:
    if text is None:
        return None
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _channels_arg(text: str) -> int | float:
    from engine.attribution.methods import check_max_channels
    from engine.errors import EngineError

    try:
        value = float(text)
        out = check_max_channels(int(value) if value >= 1 and value.is_integer() else value)
    except (ValueError, EngineError) as exc:
        raise argparse.ArgumentTypeError(f"a count >= 1 or a share in (0, 1), got {text!r}") from exc
    return value if out is None else out


def _cam_options(p: argparse.ArgumentParser) -> None:
    cli._model_args(p)
    p.add_argument("--image", required=True, help="image path or builtin:NAME")
    p.add_argument(
        "--target", help="class index or name; positive/negative for a sigmoid unit (default: top-1)"
    )
    p.add_argument("--compare", help="a second target shown beside the first on one shared scale")
    p.add_argument("--layer", help="spatial layer (default: the last one with spatial extent)")
    p.add_argument("--method", choices=METHODS, default="gradcam")
    p.add_argument(
        "--mapping", choices=MAPPINGS, default=DEFAULT_MAPPING, help="projection of the cells onto the photo"
    )
    p.add_argument("--sigma", type=float, help="width (px) of the gaussian mapping (default: field size / 4)")
    p.add_argument("--batch-size", type=int, default=32, help="masked images per Score-CAM forward pass")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="Score-CAM's masked passes: auto = bfloat16 where the hardware has it natively (about 2x faster)",
    )
    fast = p.add_mutually_exclusive_group()
    fast.add_argument(
        "--fast",
        action="store_true",
        help=f"Score-CAM's fast mode, as --max-channels {FAST_CHANNELS}: only that share of the channels, "
        "those whose maps vary most (Faster Score-CAM; exact is the default)",
    )
    fast.add_argument(
        "--max-channels",
        type=_channels_arg,
        metavar="N",
        help="Score-CAM: only the N channels whose maps vary most (or a share such as 0.25)",
    )
    p.add_argument("--coarse", action="store_true", help="also show the raw coarse map with its cell grid")
    p.add_argument("--scores", action="store_true", help="print deletion and insertion AUC of the map")
    p.add_argument(
        "--baseline",
        choices=BASELINES,
        default=DEFAULT_BASELINE,
        help="what --scores replaces deleted pixels by and inserts pixels into: a strong blur of the "
        "image, its mean colour, black or seeded noise",
    )
    _look_args(p, "relu")
    cli._out_args(p)


def _describe(h: Any, res: Any) -> str:
    name = f"{res.target_name} ({res.target})" if res.target_name else str(res.target)
    return f"target: {name}  logit {res.score:.4f}  probability {res.probability:.4f}"


@cli.export_kind("cam", _cam_options)
def export_cam(args: argparse.Namespace) -> cli.Produced:
    from engine.attribution.cam import cam
    from engine.images import load_image

    h = cli._load(args)
    photo = load_image(args.image)
    kw = {
        "layer": args.layer,
        "method": args.method,
        "mapping": args.mapping,
        "sigma": args.sigma,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "max_channels": FAST_CHANNELS if args.fast else args.max_channels,
    }
    res = cam(h, photo, _target_arg(args.target), **kw)
    results = [res]
    if args.compare is not None:
        results.append(cam(h, photo, _target_arg(args.compare), **kw))
    style = "relu" if args.map_style == "auto" else args.map_style
    heats = [r.heatmap_relu if style == "relu" else r.heatmap for r in results]
    image = (
        compare_overlays(photo, heats, style, args.cmap, args.alpha, args.dim)
        if len(heats) > 1
        else overlay(photo, heats[0], style, args.cmap, args.alpha, args.dim)
    )
    if args.coarse:
        cell = max(2, photo.shape[0] // max(res.cam.shape[0], 1))
        scale = map_scale([r.cam for r in results], style == "signed")
        image = side_by_side(
            [image, *(coarse_image(r.cam, cell, style, args.cmap, scale=scale) for r in results)]
        )
    report = [_describe(h, r) for r in results]
    rf = res.field
    cells = f"{res.cam.shape[0]}x{res.cam.shape[1]} cells"
    report.append(
        f"layer: {res.layer}  {cells}"
        + (
            f"  field {rf.size[0]}x{rf.size[1]} px  stride {rf.stride[0]}x{rf.stride[1]}  offset {rf.offset[0]},{rf.offset[1]}"
            if rf is not None
            else ""
        )
    )
    settings: dict[str, Any] = {
        "view": "cam",
        "model": h.spec,
        "image": args.image,
        "scaling": h.scaling,
        "layer": res.layer,
        "method": res.method,
        "mapping": res.mapping,
        "sigma": args.sigma,
        **({"precision": res.settings["precision"]} if res.method == "scorecam" else {}),
        **({"max_channels": res.settings["max_channels"]} if "max_channels" in res.settings else {}),
        "map_style": style,
        "cmap": args.cmap,
        "alpha": args.alpha,
        "dim": args.dim,
        "coarse": bool(args.coarse),
        "targets": [
            {"index": r.target, "name": r.target_name, "logit": r.score, "probability": r.probability}
            for r in results
        ],
    }
    if args.scores:
        from engine.attribution.metrics import deletion_auc, insertion_auc

        settings["baseline"] = args.baseline
        for r in results:
            d = deletion_auc(h, photo, r.heatmap, r.target, baseline=args.baseline)
            i = insertion_auc(h, photo, r.heatmap, r.target, baseline=args.baseline)
            report.append(
                f"target {r.target}: deletion AUC {d.auc:.4f} (lower is better)  "
                f"insertion AUC {i.auc:.4f} (higher is better)  baseline {d.baseline}"
            )
            settings.setdefault("scores", []).append(
                {"target": r.target, "deletion_auc": d.auc, "insertion_auc": i.auc, "baseline": d.baseline}
            )
    figure = cam_figure(
        photo,
        results,
        res.method,
        res.layer,
        h.name,
        source_name(args.image),
        style,
        coarse=bool(args.coarse),
        look=Look(args.cmap, args.alpha, args.dim),
    )
    return cli.Produced(image, settings, report, values=np.stack(heats), figure=figure)


def _saliency_options(p: argparse.ArgumentParser) -> None:
    cli._model_args(p)
    p.add_argument("--image", required=True, help="image path or builtin:NAME")
    p.add_argument(
        "--target", help="class index or name (default: top-1); with --layer: the old spelling of --channel"
    )
    p.add_argument("--method", choices=SALIENCY_METHODS, default="gradient")
    p.add_argument(
        "--layer",
        help="explain this layer's output instead of a class: its mean, or one --channel / --unit (* = mean)",
    )
    cli.unit_args(p)
    p.add_argument("--samples", type=int, default=25, help="SmoothGrad samples")
    p.add_argument(
        "--noise", type=float, default=0.15, help="SmoothGrad noise, a fraction of the input range"
    )
    p.add_argument("--steps", type=int, default=32, help="Integrated Gradients steps")
    p.add_argument("--batch-size", type=int, default=16)
    _look_args(p, "auto")
    cli._out_args(p)


def _saliency_target(h: ModelHandle, args: argparse.Namespace) -> Any:
    """The class to explain, or with --layer the one channel (--channel) or unit (--unit) of it
    (--target N stays as the old spelling); None: the top-1 class or the whole layer's mean."""
    if args.channel is None and args.unit is None:
        return _target_arg(args.target)
    return cli.one_unit(h, args, instead="--target")


@cli.export_kind("saliency", _saliency_options)
def export_saliency(args: argparse.Namespace) -> cli.Produced:
    from engine.attribution.gradients import saliency
    from engine.images import load_image

    cli.check_unit_args(args)
    h = cli._load(args)
    photo = load_image(args.image)
    target = _saliency_target(h, args)
    options = {k: getattr(args, k) for k in ("samples", "noise", "steps", "batch_size")}
    smap = saliency(h, photo, target, args.method, args.layer, **options)
    signed_method = args.method in ("integrated", "grad_x_input")
    style = ("signed" if signed_method else "relu") if args.map_style == "auto" else args.map_style
    image = overlay(photo, smap, style, args.cmap, args.alpha, args.dim)
    settings = {
        "view": "saliency",
        "model": h.spec,
        "image": args.image,
        "scaling": h.scaling,
        "method": args.method,
        "target": target,
        "layer": h.resolve(args.layer) if args.layer else None,
        "samples": args.samples,
        "noise": args.noise,
        "steps": args.steps,
        "map_style": style,
        "cmap": args.cmap,
        "alpha": args.alpha,
        "dim": args.dim,
    }
    report = [
        f"{args.method}: map {smap.shape[0]}x{smap.shape[1]}, min {float(smap.min()):.4g}, "
        f"max {float(smap.max()):.4g}, sum {float(smap.sum()):.4g}"
    ]
    figure = saliency_figure(
        photo,
        smap,
        args.method,
        _saliency_what(h, args, target, photo),
        style == "signed",
        h.name,
        source_name(args.image),
        Look(args.cmap, args.alpha, args.dim),
    )
    return cli.Produced(image, settings, report, values=np.asarray(smap, np.float32), figure=figure)


def _saliency_what(h: ModelHandle, args: argparse.Namespace, target: Any, photo: np.ndarray) -> str:
    """What a saliency map explains, for the figure's title: a layer's unit or mean, or the class
    with its probability on the photo."""
    if args.layer:
        layer = h.resolve(args.layer)
        return f"{layer}:{target}" if target is not None else f"{layer} (mean)"
    from engine.activations import predict
    from engine.attribution.target import target_index, target_name

    probs = predict(h, photo)
    index = target_index(h, target)
    index = int(np.argmax(probs)) if index < 0 else index
    name = target_name(h, index)
    return f"{name + ' (' + str(index) + ')' if name else index}: p {prob(float(probs[index]))}"
