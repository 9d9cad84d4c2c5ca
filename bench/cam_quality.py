"""How good are the class activation maps? Every method x mapping on fresh builtin:shapes images.

For each image of a seed the shapes model never saw in training, the map of the true class is
scored with engine.attribution.metrics:

- pointing game: hit when the map's maximum (plateau centroid for ties) lies within 15 px of
  the shape's pixels (with `--voc`: of the shape's box, as `evaluate cam` scores); the share of hits.
- energy pointing game: the share of the map's positive mass inside the shape's bounding box.
- deletion AUC (lower is better) and insertion AUC (higher is better), `--steps` steps, the
  true class's softmax probability; on the first `--auc-images` images (they cost steps+1
  forward passes per map each). `--baseline` chooses what deleted pixels become and insertion
  starts from (engine.attribution.metrics.BASELINES; default the engine's, blur); "legacy" is
  the rule before issue 10 (deletion to black, insertion from a blur of sigma H/32), which the
  issue-5 table in bench/RESULTS.md was measured with. The baseline is printed with the table.
- sanity %: the share of checked images whose map passes the cascading model-randomization
  check (engine.attribution.sanity.randomization, Adebayo et al. 2018: layers re-initialized
  from the top down; passing = rank correlation with the original map below 0.5 once every
  layer is random), on every `--sanity-every`-th image (0, N, 2N, ...), once per method (with
  the CAM layer and the engine's default mapping; the verdict counts for each of its mappings,
  as in `evaluate cam`); "final ρ" is the mean rank correlation with every layer random.

The centre-point baseline is a map that peaks at the image centre and falls with distance (it
ignores the model, so it must fail the sanity check). Maps are the signed heatmaps on the image
grid (CamResult.heatmap). The gradient methods and Eigen-CAM compute the coarse map once and
project it per mapping (exactly what engine.cam does per mapping); Score-CAM runs once per
mapping because its masks are projected with it, on the first `--score-images` images. One
table; then the mappings averaged over methods and the recommended default mapping.

`--voc` scores exactly what `python main.py evaluate cam` scores: the images are written with
their VOC box files by engine.dataset.boxes.write_shapes_folder (to `--folder`, else a temporary
folder), read back through the folder source and boxes_for_source, and every image gets every
score (no `--auc-images` / `--score-images` subsets). `--evaluate` (implies `--voc`) then runs
`evaluate cam` on that folder with the same methods, mappings, layer, target, baseline, steps,
tolerance and sanity images, and prints both tables side by side with the max |difference|.

Run:  nice -n 5 python bench/cam_quality.py [--n 500] [--seed 4321] [--sanity-every 25]
      nice -n 5 python bench/cam_quality.py --evaluate --mappings gaussian,roi --sanity-every 25
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

BORDER = 8  # px: a peak this close to the image edge counts as "at the border" (no shape lies there)
CENTRE = ("centre point", "-")
MEASURES = ("point", "energy", "del", "ins")


@dataclass
class ImageSet:
    """The images to score: photos (float32 [0, 1]), true classes, the pointing region and the
    energy region of each (a bool mask or a (top, left, bottom, right) box), and how they came."""

    photos: list[np.ndarray]
    labels: list[int]
    point: list[Any]
    energy: list[Any]
    note: str


def generated_set(n: int, seed: int) -> ImageSet:
    """shapes.generate in memory: pointing at the shape's pixels, energy in its box."""
    from engine.zoo import shapes

    data = shapes.generate(n, seed)
    photos = list(data.images.astype(np.float32) / 255.0)
    boxes = [tuple(int(v) for v in b) for b in data.boxes]
    return ImageSet(photos, [int(v) for v in data.labels], list(data.masks), boxes, "pixels")


def voc_set(h: Any, folder: Path, n: int, seed: int) -> ImageSet:
    """write_shapes_folder's PNG + VOC files read back as `evaluate cam` reads them: the class of
    the (largest) box, pointing and energy against the union of that class's boxes."""
    from engine.dataset.boxes import boxes_for_source, region, write_shapes_folder
    from engine.dataset.sources import open_source

    write_shapes_folder(folder, n, seed)
    src = open_source(str(folder))
    boxes, problems = boxes_for_source(folder)
    if problems:
        raise SystemExit(f"error: the written VOC files have problems: {problems[0]}")
    names = list(h.class_names)
    out = ImageSet([], [], [], [], "boxes")
    for i, path in enumerate(src.paths):
        photo, _ = src.load(i)
        entry = boxes[path]
        label = names.index(max(entry.boxes, key=lambda b: b.area).label)
        mask = np.zeros(photo.shape[:2], bool)
        for box in entry.boxes:
            if box.label == names[label]:
                top, left, bottom, right = region(box)
                mask[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)] = True
        out.photos.append(photo)
        out.labels.append(label)
        out.point.append(mask)
        out.energy.append(mask)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:shapes")
    parser.add_argument("--n", type=int, default=500, help="images (pointing and energy games)")
    parser.add_argument("--seed", type=int, default=4321, help="data seed (>= 1000: never used in training)")
    parser.add_argument("--layer", default=None, help="CAM layer (default: the model's last spatial layer)")
    parser.add_argument("--methods", default=None, help="comma-separated CAM methods (default: all)")
    parser.add_argument("--mappings", default=None, help="comma-separated mappings (default: all four)")
    parser.add_argument("--auc-images", type=int, default=100, help="images for deletion/insertion AUC")
    parser.add_argument("--score-images", type=int, default=200, help="images for Score-CAM")
    parser.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    parser.add_argument(
        "--baseline",
        default=None,
        help="deletion/insertion baseline: blur | mean | black | noise | legacy (default: the engine's)",
    )
    parser.add_argument(
        "--sanity-every", type=int, default=25, help="sanity check on every N-th image (0: no sanity column)"
    )
    parser.add_argument("--voc", action="store_true", help="score as `evaluate cam` does (see the doc)")
    parser.add_argument(
        "--evaluate", action="store_true", help="also run `evaluate cam` on the VOC folder and compare"
    )
    parser.add_argument("--folder", help="with --voc: write the images here and keep them")
    args = parser.parse_args(argv)
    if args.seed < 1000:
        parser.error("use a seed >= 1000: smaller seeds are training data")
    args.voc = args.voc or args.evaluate
    if args.voc and args.baseline == "legacy":
        parser.error("--voc/--evaluate score as `evaluate cam` does, which has no legacy baseline")
    if args.sanity_every < 0:
        parser.error("--sanity-every must be at least 0")
    with tempfile.TemporaryDirectory(prefix="convscope-cam-quality-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> int:
    from bench._common import machine_line
    from engine.attribution import cam
    from engine.attribution.cam import METHODS
    from engine.attribution.evaluate import _check_mappings, _check_methods
    from engine.attribution.metrics import (
        BASELINES,
        DEFAULT_BASELINE,
        TOLERANCE,
        centre_baseline,
        deletion_auc,
        energy_pointing_game,
        insertion_auc,
        peak,
        pointing_game,
    )
    from engine.attribution.projection import DEFAULT_MAPPING, MAPPINGS, project, projection_matrices
    from engine.attribution.sanity import randomization
    from engine.models import load_model
    from engine.zoo import shapes

    methods = _check_methods(args.methods) if args.methods else METHODS
    mappings = _check_mappings(args.mappings) if args.mappings else MAPPINGS
    baseline = args.baseline or DEFAULT_BASELINE
    if baseline not in (*BASELINES, "legacy"):
        raise SystemExit(f"error: --baseline must be one of {', '.join(BASELINES)}, legacy")
    if baseline == "legacy":  # before issue 10: deletion to black, insertion from a blur of sigma H/32
        del_kw = {"baseline": "black"}
        ins_kw = {"baseline": "blur", "blur_sigma": shapes.SIZE / 32.0}
        baseline_note = "deletion to black, insertion from a blur of sigma H/32 (legacy)"
    else:
        del_kw = ins_kw = {"baseline": baseline}
        baseline_note = f"baseline {baseline} for deletion and insertion"

    print(machine_line())
    t_start = time.perf_counter()
    h = load_model(args.model)
    layer = h.resolve(args.layer) if args.layer else h.default_cam_layer()
    folder = Path(args.folder) if args.folder else tmp / "shapes"
    data = voc_set(h, folder, args.n, args.seed) if args.voc else generated_set(args.n, args.seed)
    n = len(data.photos)
    n_auc = n if args.voc else min(args.auc_images, n)
    n_score = n if args.voc else min(args.score_images, n)
    every = args.sanity_every

    # scores[(method, mapping)] = lists of per-image values; sanity[method] = (passed, final rho) per check
    scores: dict[tuple[str, str], dict[str, list[float]]] = {}
    sanity: dict[str, list[tuple[bool, float]]] = {}
    correct = 0

    def record(key: tuple[str, str], i: int, heat: np.ndarray) -> None:
        entry = scores.setdefault(key, {"point": [], "energy": [], "del": [], "ins": [], "border": []})
        photo, label = data.photos[i], data.labels[i]
        entry["point"].append(float(pointing_game(heat, data.point[i], TOLERANCE)))
        y, x = peak(heat)
        entry["border"].append(float(min(y, x, heat.shape[0] - 1 - y, heat.shape[1] - 1 - x) < BORDER))
        entry["energy"].append(energy_pointing_game(heat, data.energy[i]))
        if i < n_auc:
            entry["del"].append(deletion_auc(h, photo, heat, label, steps=args.steps, **del_kw).auc)
            entry["ins"].append(insertion_auc(h, photo, heat, label, steps=args.steps, **ins_kw).auc)

    def check(key: str, i: int, method: Any) -> None:
        if every and i % every == 0:
            extra = {"layer": layer} if isinstance(method, str) else {}
            res = randomization(h, data.photos[i], method, target=data.labels[i], order="cascade", **extra)
            sanity.setdefault(key, []).append((bool(res.passed), float(res.spearman[-1])))

    base = centre_baseline(data.photos[0].shape[:2])
    timings: dict[str, float] = {}
    mats = None
    field = None
    for method in methods:
        t0 = time.perf_counter()
        count = n_score if method == "scorecam" else n
        for i in range(count):
            photo, label = data.photos[i], data.labels[i]
            check(method, i, method)
            if method == "scorecam":
                for mapping in mappings:
                    res = cam(h, photo, label, layer, method="scorecam", mapping=mapping)
                    record((method, mapping), i, res.heatmap)
                continue
            res = cam(h, photo, label, layer, method=method, mapping="roi")
            if method == methods[0]:
                correct += int(np.argmax(res.probabilities) == label)
                record(CENTRE, i, base)
                check(CENTRE[0], i, lambda *_: base)
            if mats is None:
                mats = {
                    m: projection_matrices(res.field, res.cam.shape, res.model_shape, photo.shape[:2], m)
                    for m in MAPPINGS
                }
            field = field or res.field
            for mapping in mappings:
                heat = res.heatmap if mapping == "roi" else project(res.cam, *mats[mapping])
                record((method, mapping), i, heat)
        timings[method] = time.perf_counter() - t0
        print(f"  {method}: {count} images in {timings[method]:.0f} s", file=sys.stderr, flush=True)

    where = "the shape's VOC box, as evaluate cam" if args.voc else "the shape's pixels"
    print(
        f"# cam_quality: {h.name} ({args.model}), layer {layer}"
        + (
            f" (field {field.size[0]} px, stride {field.stride[0]}, offset {field.offset[0]})"
            if field
            else ""
        )
    )
    print(
        f"# {n} images of seed {args.seed} (unseen in training{'; written as PNG + VOC files' if args.voc else ''}); "
        f"model accuracy on them {100 * correct / max(n, 1):.1f}%; target = the true class"
    )
    print(
        f"# pointing ({TOLERANCE:.0f} px of {where}) and energy (positive mass in the box): all {n} images, "
        f"Score-CAM {n_score}; deletion/insertion AUC: first {n_auc} images ({min(n_auc, n_score)} for "
        f"Score-CAM), {args.steps} steps, {baseline_note}"
    )
    if every:
        print(
            f"# sanity %: share passing the cascading randomization check on every {every}th image "
            f"(images 0, {every}, {2 * every}, ...: {len(range(0, n, every))} images, "
            f"{len(range(0, n_score, every))} for Score-CAM), once per method (mapping {DEFAULT_MAPPING}); "
            "final ρ: mean rank correlation with every layer random (pass: below 0.5)"
        )
    print()
    sanity_head = f" sanity % (every {every}th image) | final ρ |" if every else ""
    print(
        "| method | mapping | pointing % | energy % | deletion AUC (lower better) | insertion AUC (higher better) "
        f"| peak within {BORDER} px of the border % |{sanity_head} images |"
    )
    print("|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if every else "") + "---:|")

    def row(key: tuple[str, str]) -> None:
        e = scores[key]
        cells = ""
        if every:
            checks = sanity.get(key[0], [])
            share = 100 * np.mean([p for p, _ in checks]) if checks else float("nan")
            cells = f" {share:.0f} (of {len(checks)}) | {np.mean([r for _, r in checks]):.2f} |"
        print(
            f"| {key[0]} | {key[1]} | {100 * np.mean(e['point']):.1f} | {100 * np.mean(e['energy']):.1f} | "
            f"{np.mean(e['del']):.3f} | {np.mean(e['ins']):.3f} | {100 * np.mean(e['border']):.1f} |{cells} "
            f"{len(e['point'])} |"
        )

    for method in methods:
        for mapping in mappings:
            row((method, mapping))
    row(CENTRE)
    if len(mappings) > 1:
        mapping_table(scores, methods, mappings, DEFAULT_MAPPING)
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if args.evaluate:
        return compare(args, folder, tmp, scores, sanity, methods, mappings, layer, baseline)
    return 0


def mapping_table(
    scores: dict, methods: tuple[str, ...], mappings: tuple[str, ...], default_mapping: str
) -> None:
    """The mappings averaged over the methods, ranked on the four scores, and the pick."""
    print()
    print(
        f"| mapping (mean over the {len(methods)} methods) | pointing % | energy % | deletion AUC | "
        "insertion AUC | mean rank |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    means = {
        m: {k: np.mean([np.mean(scores[(meth, m)][k]) for meth in methods]) for k in MEASURES}
        for m in mappings
    }
    ranks = {m: 0.0 for m in mappings}
    for k, better_high in (("point", True), ("energy", True), ("del", False), ("ins", True)):
        ordered = sorted(mappings, key=lambda m: -means[m][k] if better_high else means[m][k])
        for r, m in enumerate(ordered, 1):
            ranks[m] += r / 4
    for m in mappings:
        v = means[m]
        print(
            f"| {m} | {100 * v['point']:.1f} | {100 * v['energy']:.1f} | {v['del']:.3f} | {v['ins']:.3f} | "
            f"{ranks[m]:.2f} |"
        )
    best = min(mappings, key=lambda m: (ranks[m], -means[m]["point"]))
    print()
    print(
        f"recommended default mapping: {best} (best mean rank over the four scores, averaged over the methods; "
        f"ties go to the higher pointing score); engine default now: {default_mapping}"
    )


def compare(
    args: argparse.Namespace,
    folder: Path,
    tmp: Path,
    scores: dict,
    sanity: dict,
    methods: tuple[str, ...],
    mappings: tuple[str, ...],
    layer: str,
    baseline: str,
) -> int:
    """Run `python main.py evaluate cam` on the same folder and settings; both tables side by side."""
    from engine.attribution.metrics import TOLERANCE
    from engine.cli import main as cli_main

    out = tmp / "evaluate.csv"
    argv = ["evaluate", "cam", "--model", args.model, "--source", str(folder), "--layer", layer]
    argv += ["--methods", ",".join(methods), "--mappings", ",".join(mappings), "--target", "label"]
    argv += ["--baseline", baseline, "--steps", str(args.steps), "--sanity-every", str(args.sanity_every)]
    argv += ["--out", str(out)]
    print()
    print(f"## python main.py {' '.join(argv[:-2])} --out evaluate.csv  (tolerance {TOLERANCE:.0f} px)")
    print()
    start = time.perf_counter()
    code = cli_main(argv)
    print(f"evaluate cam: {time.perf_counter() - start:.0f} s, exit {code}")
    if code:
        return code
    with out.open(encoding="utf-8") as fh:
        ev = {(r["method"], r["mapping"]): r for r in csv.DictReader(fh)}

    def num(text: str) -> float:
        return float(text) if text else float("nan")

    print()
    print("cam_quality --voc | evaluate cam, per method x mapping (cq | ev):")
    print()
    head = "| method | mapping | images | pointing % | energy % | deletion AUC | insertion AUC |"
    print(head + (" sanity % |" if args.sanity_every else ""))
    print("|---|---|---:|---:|---:|---:|---:|" + ("---:|" if args.sanity_every else ""))
    diffs: dict[str, list[float]] = {k: [] for k in ("pointing", "energy", "deletion", "insertion", "sanity")}
    for method in methods:
        for mapping in mappings:
            e, r = scores[(method, mapping)], ev[(method, mapping)]
            mine = {
                "pointing": 100 * np.mean(e["point"]),
                "energy": 100 * np.mean(e["energy"]),
                "deletion": np.mean(e["del"]),
                "insertion": np.mean(e["ins"]),
            }
            theirs = {
                "pointing": num(r["pointing_pct"]),
                "energy": num(r["energy_pct"]),
                "deletion": num(r["deletion_auc"]),
                "insertion": num(r["insertion_auc"]),
            }
            checks = sanity.get(method, [])
            if args.sanity_every:
                mine["sanity"] = 100 * np.mean([p for p, _ in checks]) if checks else float("nan")
                theirs["sanity"] = num(r["sanity_pct"])
            cells = [method, mapping, f"{len(e['point'])} \\| {r['images']}"]
            for k, v in mine.items():
                fmt = ".4f" if k in ("deletion", "insertion") else ".2f"  # the CSV's precision
                cells.append(f"{v:{fmt}} \\| {theirs[k]:{fmt}}")
                diffs[k].append(abs(v - theirs[k]))
            print("| " + " | ".join(cells) + " |")
    print()
    parts = [
        f"{k} {max(v):.{4 if k in ('deletion', 'insertion') else 2}f}{'' if k in ('deletion', 'insertion') else ' points'}"
        for k, v in diffs.items()
        if v
    ]
    print(
        "max |difference| (cam_quality - evaluate cam; evaluate's CSV has 2 decimals for %, 4 for AUC): "
        + ", ".join(parts)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
