"""`python main.py export topk`: scan a dataset through a layer and write a Dataset page's figure.

    python main.py export topk --model builtin:digits --source builtin:digits \
        --layer Conv2D_2 --k 9 --out topk.png
    ... --page classes --heatmap zscore --stat mean     # the Classes page's heatmap
    ... --page images --first 0 --count 8                # the Images page: images beside their maps
    ... --raw                                            # the page as the GUI draws it, plus FILE.npy
    ... --ray [ADDRESS] [--workers N]                    # the same scan on Ray (same answer)

--page units (the default): each unit's top-k crops (the input under the receptive field of the
cell where it peaked; whole images for a dense layer). The figure (PNG, TIFF, SVG or PDF) is
engine.plot.dataset's, titled with model, layer, source and images scanned; --raw writes the
page as engine.dataset.figures draws it in the GUI, bit for bit, with FILE.npy of the values it
shows (the top values per unit, the class x unit matrix, or the maps). The GUI's export sidecar
names this command (topk_command). The scan uses the same disk cache as the GUI, so a repeated
export is instant; the report lines say how many images were scanned, how fast, and which files
were skipped. --ray runs the batches on a Ray cluster (engine.dataset.cluster): an embedded
one on this machine, or the one at ADDRESS; the PNG and the sidecar are the local scan's.
Progress shows on stderr when it is a terminal (--progress: also when it is not).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.cli import (
    CliError,
    Produced,
    _load,
    _model_args,
    _out_args,
    _quote,
    check_unit_args,
    export_kind,
    selected_units,
    unit_args,
)

PAGES = ("units", "classes", "images")
HEATMAPS = ("zscore", "raw")
STATS = ("mean", "max")


def topk_command(
    model: str,
    source: str,
    layer: str,
    k: int,
    page: str = "units",
    *,
    cell: int | None = None,
    heatmap: str = "zscore",
    stat: str = "mean",
    first: int = 0,
    count: int = 8,
    out: str = "FILE.png",
    raw: bool = False,
    figure: Sequence[str] = (),
) -> str:
    """The `python main.py export topk ...` line that reproduces a Dataset page (for the GUI's sidecar).

    raw: the page's bare array image as the screen draws it (--raw); else the figure, drawn with
    the figure options in `figure` (e.g. ["--style", "slide", "--size", "1200x675px"]).
    """
    parts = ["python", "main.py", "export", "topk", "--model", model, "--source", source, "--layer", layer]
    parts += ["--k", str(k), "--page", page]
    if page == "units" and cell is not None:
        parts += ["--cell", str(cell)]
    elif page == "classes":
        parts += ["--heatmap", heatmap, "--stat", stat]
    elif page == "images":
        parts += ["--first", str(first), "--count", str(count)]
    parts += ["--raw"] if raw else list(figure)
    return " ".join(_quote(p) for p in [*parts, "--out", out])


def progress_printer(force: bool = False) -> Callable[[Any], None] | None:
    """A Progress callback that keeps one live line on a terminal's stderr (a line every 5 s with
    force on a non-terminal); None when stderr is not a terminal and force is off."""
    tty = sys.stderr.isatty()
    if not (tty or force):
        return None
    last = [0.0]

    def show(event: Any) -> None:
        now = time.monotonic()
        final = event.total and event.step >= event.total
        if not tty and now - last[0] < 5.0 and not final:
            return
        last[0] = now
        text = f"scan: {event.message}"
        line = f"\r{text:<79}" if tty else text
        print(line, end="\n" if final or not tty else "", file=sys.stderr, flush=True)

    return show


def parse_units(text: str | None, units: int) -> list[int] | None:
    """ "0-15,20,31" -> [0..15, 20, 31]; None for all units. Raises CliError on bad input."""
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise CliError(f"--units {text!r}: use indices and ranges like 0-15,20") from None
    bad = [u for u in out if not 0 <= u < units]
    if bad:
        raise CliError(f"--units: unit {bad[0]} out of range; the layer has {units} units (0-{units - 1})")
    return out or None


def _topk_options(p: argparse.ArgumentParser) -> None:
    _model_args(p)
    p.add_argument(
        "--source",
        required=True,
        help="a folder (labels from sub-folders), a .txt list of images, builtin:digits[?n=N] "
        "or builtin:shapes[?n=N&seed=S]",
    )
    p.add_argument("--layer", required=True, help="a conv or dense layer path")
    unit_args(p)
    p.add_argument("--k", type=int, default=9, help="top images kept per unit (default 9)")
    p.add_argument(
        "--page", choices=PAGES, default="units", help="which Dataset page to draw (default units)"
    )
    p.add_argument(
        "--heatmap", choices=HEATMAPS, default=None, help="classes page: z-score per unit or raw means"
    )
    p.add_argument(
        "--stat", choices=STATS, default=None, help="classes page: spatial mean or max (default mean)"
    )
    p.add_argument("--first", type=int, default=None, help="images page: the first image id (default 0)")
    p.add_argument("--count", type=int, default=None, help="images page: how many images (default 8)")
    p.add_argument(
        "--units", help="the old spelling of --channel/--unit: which to draw, e.g. 0-15,20 (default: all)"
    )
    p.add_argument("--cols", type=int, default=None, help="units per row in the figure")
    p.add_argument("--cell", type=int, default=48, help="pixels per crop in the figure (default 48)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="images per batch (default: from the layer size)"
    )
    p.add_argument("--no-cache", action="store_true", help="scan again even if a cached result exists")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run the scan on Ray: alone, an embedded cluster on this machine; with ADDRESS "
        "('auto', 'host:port' or 'ray://host:port') the cluster there (needs the cluster extra)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="with --ray: model replicas (default: one per CPU)"
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="print scan progress on stderr even when it is not a terminal (a terminal always gets it)",
    )
    _out_args(p)


def _page_figure(args: argparse.Namespace, h: Any, result: Any, units: list[int] | None) -> tuple[Any, ...]:
    """(raw image, values, figure, page settings) of args.page: the raw image is the GUI page's
    (engine.dataset.figures), values what it shows (the .npy of --raw), figure its FigureSpec."""
    from engine.dataset import figures
    from engine.plot import dataset as plots

    if args.page == "classes":
        if not result.class_names:
            raise CliError(
                "this dataset has no labels: --page classes needs a folder with one sub-folder per class"
            )
        heatmap, stat = args.heatmap or "zscore", args.stat or "mean"
        image, _ = figures.class_heatmap(result, heatmap, stat)
        figure = plots.classes_figure(result, heatmap, stat)
        values = plots.class_matrix(result, heatmap, stat)
        return image, values, figure, {"heatmap": heatmap, "stat": stat}
    if args.page == "images":
        from engine.dataset.jobs import strongest_maps_of

        first, count = args.first or 0, 8 if args.count is None else args.count
        if first < 0 or count < 1:
            raise CliError("--first must be at least 0 and --count at least 1")
        ids = figures.page_image_ids(result, first, count)
        maps = strongest_maps_of(h, result, ids)
        figure = plots.images_figure(result, maps)
        values = (
            np.stack([np.atleast_2d(np.asarray(sm.map, np.float32)) for sm in maps.maps]) if ids else None
        )
        return figures.maps_figure(maps), values, figure, {"first": first, "count": count}
    image = figures.render_units(result, units, cols=args.cols, cell=args.cell)
    chosen = list(range(result.units)) if units is None else units
    figure = plots.units_figure(result, [result.crops_of(u) for u in chosen], chosen, cols=args.cols)
    values = np.asarray(result.top_values, np.float32)[chosen]
    settings = {"units": units if units is not None else "all", "cols": args.cols, "cell": args.cell}
    return image, values, figure, settings


def _scanned(result: Any) -> int:
    return int(result.done - len(result.skipped))


@export_kind("topk", _topk_options)
def _export_topk(args: argparse.Namespace) -> Produced:
    from engine.dataset.scanner import scan

    if args.k < 1:
        raise CliError("--k must be at least 1")
    if args.cell < 4:
        raise CliError("--cell must be at least 4")
    if args.batch_size is not None and args.batch_size < 1:
        raise CliError("--batch-size must be at least 1")
    check_unit_args(args)
    if args.units and (args.channel is not None or args.unit is not None):
        raise CliError("give --channel/--unit or --units, not both")
    h = _load(args)
    path = h.resolve(args.layer)
    shape = tuple(h.symbolic(path).shape[1:])
    if args.channel is not None or args.unit is not None:
        units = selected_units(h, args)
    else:
        units = parse_units(args.units, int(shape[-1] or 0)) if shape else None
    if args.workers is not None and (args.workers < 1 or args.ray is None):
        raise CliError("--workers needs --ray and must be at least 1")
    runner = (
        {} if args.ray is None else {"runner": "ray", "address": None if args.ray == "local" else args.ray}
    )
    result = scan(
        h,
        args.source,
        path,
        args.k,
        batch_size=args.batch_size,
        cache=not args.no_cache,
        progress=progress_printer(args.progress),
        workers=args.workers,
        **runner,
    )
    image, values, figure, page_settings = _page_figure(args, h, result, units)
    settings = {
        "view": "topk",
        "page": args.page,
        "model": h.spec,
        "scaling": h.scaling,
        "source": result.source,
        "layer": result.layer,
        "k": result.k,
        **page_settings,
        "kind": result.kind,
        "receptive_field": {"size": result.rf[0], "stride": result.rf[1], "offset": result.rf[2]}
        if result.rf
        else None,
        "images": result.total,
        "scanned": _scanned(result),
        "skipped": [{"id": i, "reason": m} for i, m in result.skipped],
        "top": {
            str(c): [
                {"image": hit.name, "id": hit.image_id, "y": hit.y, "x": hit.x, "value": hit.value}
                for hit in result.hits(c)
            ]
            for c in (units if units is not None else range(result.units))
        },
    }
    how = (
        "from cache" if result.from_cache else f"{result.elapsed:.1f} s, {result.images_per_s:,.0f} images/s"
    )
    report = [f"scanned {result.done - len(result.skipped):,} of {result.total:,} images ({how})"]
    for i, message in result.skipped[:10]:
        report.append(f"skipped #{i}: {message}")
    if len(result.skipped) > 10:
        report.append(f"... and {len(result.skipped) - 10} more skipped")
    return Produced(image=image, values=values, figure=figure, settings=settings, report=report)
