"""`python main.py evaluate cam ...`: CAM methods scored over a folder with boxes.

Prints one markdown table (a row per method x mapping: pointing %, energy %, deletion and
insertion AUC, and sanity % when the randomization check ran), writes it as CSV to --out and
as a bar chart PNG beside it (results.csv -> results.png), each with a JSON sidecar holding the
settings, the problems found and the command that reproduces it. Bad input (an unknown method
or mapping, a folder without images or without any boxes) is one line on stderr, exit 2
(engine.cli.main turns the EngineError into it).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import shlex
from pathlib import Path
from typing import Any

from engine.attribution.evaluate import TARGETS, EvaluationResult
from engine.errors import EngineError

MAX_PROBLEM_LINES = 10  # printed; the sidecar holds them all


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `evaluate` (with its one kind, `cam`) to the CLI's subparsers."""
    from engine.attribution.metrics import BASELINES, DEFAULT_BASELINE
    from engine.cli import _model_args

    p = sub.add_parser("evaluate", help="score CAM methods over a folder of images with VOC/COCO boxes")
    kinds = p.add_subparsers(dest="kind", parser_class=parser_class, metavar="KIND")
    c = kinds.add_parser(
        "cam",
        help="pointing game, energy, deletion/insertion AUC (and sanity check) per method x mapping",
        description="Score CAM methods x mappings over a folder whose images have Pascal VOC .xml "
        "files beside them (same stem) or one COCO .json: prints a table, writes it as CSV to "
        "--out and as a bar chart PNG beside it.",
    )
    _model_args(c)
    c.add_argument("--source", required=True, help="folder of images with VOC .xml files or a COCO .json")
    c.add_argument(
        "--methods", default="gradcam", help="comma-separated CAM methods, e.g. gradcam,gradcampp,scorecam"
    )
    c.add_argument(
        "--mappings", default="gaussian", help="comma-separated mappings: roi,gaussian,center,bilinear"
    )
    c.add_argument("--layer", help="CAM layer (default: the model's last spatial layer)")
    c.add_argument(
        "--target", choices=TARGETS, default="label", help="the boxes' class (label) or the model's top-1"
    )
    c.add_argument(
        "--baseline", choices=BASELINES, default=DEFAULT_BASELINE, help="deletion/insertion baseline"
    )
    c.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    c.add_argument("--limit", type=int, help="score at most N images")
    c.add_argument(
        "--sanity-every", type=int, default=0, help="randomization sanity check on every N-th image"
    )
    c.add_argument("--out", required=True, help="results .csv (the bar chart goes beside it as .png)")
    c.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _check(args: argparse.Namespace) -> tuple[Path, Path]:
    """Cheap checks before the model loads: methods, mappings, numbers, the output files."""
    from engine.attribution.evaluate import _check_mappings, _check_methods

    if args.kind != "cam":
        raise EngineError("main.py evaluate: choose what to evaluate: cam")
    _check_methods(args.methods)
    _check_mappings(args.mappings)
    if args.steps < 1 or (args.limit is not None and args.limit < 1) or args.sanity_every < 0:
        raise EngineError("--steps and --limit must be at least 1, --sanity-every at least 0")
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise EngineError(f"--out {args.out}: write the results as a .csv file")
    if not out.parent.is_dir():
        raise EngineError(f"--out {args.out}: folder {out.parent} does not exist")
    png = out.with_suffix(".png")
    if not args.overwrite:
        for path in (out, png):
            if path.exists():
                raise EngineError(f"{path} exists; pass --overwrite to replace it")
    if not Path(args.source).expanduser().is_dir():
        raise EngineError(f"--source {args.source}: not a folder")
    return out, png


def command_line(args: argparse.Namespace) -> str:
    """The `python main.py evaluate cam ...` line that reproduces a run."""
    parts = ["python", "main.py", "evaluate", "cam"]
    for key, value in sorted(vars(args).items()):
        if key in ("command", "kind", "overwrite") or value in (None, False):
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}"


def _auc(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.3f}"


def table_lines(result: EvaluationResult) -> list[str]:
    """The result as a markdown table: a row per method x mapping (sanity % only when it ran)."""
    head = ["method", "mapping", "images", "pointing %", "energy %", "deletion AUC ↓", "insertion AUC ↑"]
    sanity = result.has_sanity
    if sanity:
        head.append("sanity %")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    for r in result.rows:
        cells = [r.method, r.mapping, str(r.images), _pct(r.pointing), _pct(r.energy)]
        cells += [_auc(r.deletion), _auc(r.insertion)]
        if sanity:
            cells.append(f"{_pct(r.sanity)} (of {r.sanity_images})" if r.sanity is not None else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def csv_bytes(result: EvaluationResult) -> bytes:
    """The table as CSV: shares as percentages, AUCs as they are, empty cells for n/a."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["method", "mapping", "images", "pointing_pct", "energy_pct", "deletion_auc", "insertion_auc"]
        + ["sanity_pct", "sanity_images"]
    )

    def num(v: float | None, scale: float = 1.0, digits: int = 4) -> str:
        return "" if v is None or not math.isfinite(v) else f"{v * scale:.{digits}f}"

    for r in result.rows:
        w.writerow(
            [r.method, r.mapping, r.images, num(r.pointing, 100, 2), num(r.energy, 100, 2)]
            + [num(r.deletion), num(r.insertion), num(r.sanity, 100, 2), r.sanity_images]
        )
    return buf.getvalue().encode("utf-8")


def chart_bytes(result: EvaluationResult, title: str = "") -> bytes:
    """The table as a bar chart PNG: a panel per measure, a group per method, a bar per mapping."""
    from engine.attribution.methods import CAM_METHODS
    from engine.plot.bars import BarPanel, bar_chart

    methods = list(dict.fromkeys(r.method for r in result.rows))
    mappings = list(dict.fromkeys(r.mapping for r in result.rows))

    def values(attr: str, scale: float = 1.0) -> tuple[tuple[float | None, ...], ...]:
        out = []
        for mapping in mappings:
            row = []
            for method in methods:
                v = getattr(result.row(method, mapping), attr)
                row.append(None if v is None else v * scale)
            out.append(tuple(row))
        return tuple(out)

    panels = [
        BarPanel("pointing %", values("pointing", 100), (0, 100), "higher", "{:.0f}"),
        BarPanel("energy %", values("energy", 100), (0, 100), "higher", "{:.0f}"),
        BarPanel("deletion AUC", values("deletion"), (0, 1), "lower"),
        BarPanel("insertion AUC", values("insertion"), (0, 1), "higher"),
    ]
    if result.has_sanity:
        panels.append(BarPanel("sanity pass %", values("sanity", 100), (0, 100), "higher", "{:.0f}"))
    labels = [CAM_METHODS[m].label if m in CAM_METHODS else m for m in methods]
    return bar_chart(panels, labels, mappings, title, width_in=7.0, cols=min(len(panels), 3))


def chart_title(model_name: str, source: str, result: EvaluationResult) -> str:
    """The bar chart's title: the model, the folder and how many images were scored."""
    return f"{model_name} on {Path(source).name}: {result.evaluated} images"


def write_results(
    out: str | Path, result: EvaluationResult, command: str, title: str = "", overwrite: bool = False
) -> list[Path]:
    """Write `result` as CSV at `out` (.csv) and as the bar chart PNG beside it, each with a JSON
    sidecar (the settings, the counts, every problem and `command`); the paths written. The CLI
    and the GUI's evaluation dialog both write through this."""
    from engine.export import write_bytes

    out = Path(out)
    settings: dict[str, Any] = dict(result.settings)
    settings |= {
        "view": "evaluate_cam",
        "evaluated": result.evaluated,
        "skipped": result.skipped,
        "problems": list(result.problems),
        "command": command,
    }
    written = list(write_bytes(out, csv_bytes(result), settings, overwrite=overwrite))
    written += write_bytes(out.with_suffix(".png"), chart_bytes(result, title), settings, overwrite=overwrite)
    return written


def run(args: argparse.Namespace) -> int:
    """Run `evaluate cam`: score, print the table, write the CSV and the chart with sidecars."""
    from engine.attribution.evaluate import iter_evaluate
    from engine.cli import _load, display_name
    from engine.common import drain

    out, _png = _check(args)
    h = _load(args)
    gen = iter_evaluate(
        h,
        args.source,
        args.methods,
        args.mappings,
        layer=args.layer,
        target=args.target,
        baseline=args.baseline,
        steps=args.steps,
        limit=args.limit,
        sanity_every=args.sanity_every,
    )
    result = drain(gen)
    title = chart_title(display_name(h.spec), args.source, result)
    written = write_results(out, result, command_line(args), title, overwrite=args.overwrite)
    for line in table_lines(result):
        print(line)
    print(f"{result.evaluated} images scored, {result.skipped} not scored")
    for path in written:
        print(path)
    for line in result.problems[:MAX_PROBLEM_LINES]:
        print(f"note: {line}")
    if len(result.problems) > MAX_PROBLEM_LINES:
        print(f"note: … {len(result.problems) - MAX_PROBLEM_LINES} more in {out}.json")
    return 0
