"""How good are the class activation maps? Every method x mapping on fresh builtin:shapes images.

For each image of a seed the shapes model never saw in training, the map of the true class is
scored with engine.attribution.metrics:

- pointing game: hit when the map's maximum (plateau centroid for ties) lies within 15 px of
  the shape's pixels; the share of hits.
- energy pointing game: the share of the map's positive mass inside the shape's bounding box.
- deletion AUC (lower is better) and insertion AUC (higher is better), `--steps` steps, the
  true class's softmax probability; on the first `--auc-images` images (they cost steps+1
  forward passes per map each). `--baseline` chooses what deleted pixels become and insertion
  starts from (engine.attribution.metrics.BASELINES; default the engine's, blur); "legacy" is
  the rule before issue 10 (deletion to black, insertion from a blur of sigma H/32), which the
  issue-5 table in bench/RESULTS.md was measured with. The baseline is printed with the table.

The centre-point baseline is a map that peaks at the image centre and falls with distance.
Maps are the signed heatmaps on the image grid (CamResult.heatmap). The gradient methods and
Eigen-CAM compute the coarse map once and project it four ways (exactly what engine.cam does
per mapping); Score-CAM runs once per mapping because its masks are projected with it, on
the first `--score-images` images. One table; then the mappings averaged over methods and
the recommended default mapping by the rule printed with it.

Run:  nice -n 5 python bench/cam_quality.py [--n 500] [--seed 4321] [--model builtin:shapes]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

BORDER = 8  # px: a peak this close to the image edge counts as "at the border" (no shape lies there)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:shapes")
    parser.add_argument("--n", type=int, default=500, help="images (pointing and energy games)")
    parser.add_argument("--seed", type=int, default=4321, help="data seed (>= 1000: never used in training)")
    parser.add_argument("--layer", default=None, help="CAM layer (default: the model's last spatial layer)")
    parser.add_argument("--auc-images", type=int, default=100, help="images for deletion/insertion AUC")
    parser.add_argument("--score-images", type=int, default=200, help="images for Score-CAM")
    parser.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    parser.add_argument(
        "--baseline",
        default=None,
        help="deletion/insertion baseline: blur | mean | black | noise | legacy (default: the engine's)",
    )
    args = parser.parse_args()
    if args.seed < 1000:
        parser.error("use a seed >= 1000: smaller seeds are training data")

    from engine.attribution import cam
    from engine.attribution.cam import METHODS
    from engine.attribution.metrics import (
        BASELINES,
        DEFAULT_BASELINE,
        centre_baseline,
        deletion_auc,
        energy_pointing_game,
        insertion_auc,
        peak,
        pointing_game,
    )
    from engine.attribution.projection import DEFAULT_MAPPING, MAPPINGS, project, projection_matrices
    from engine.models import load_model
    from engine.zoo import shapes

    baseline = args.baseline or DEFAULT_BASELINE
    if baseline not in (*BASELINES, "legacy"):
        parser.error(f"--baseline must be one of {', '.join(BASELINES)}, legacy")
    if baseline == "legacy":  # before issue 10: deletion to black, insertion from a blur of sigma H/32
        del_kw = {"baseline": "black"}
        ins_kw = {"baseline": "blur", "blur_sigma": shapes.SIZE / 32.0}
        baseline_note = "deletion to black, insertion from a blur of sigma H/32 (legacy)"
    else:
        del_kw = ins_kw = {"baseline": baseline}
        baseline_note = f"baseline {baseline} for deletion and insertion"

    t_start = time.perf_counter()
    h = load_model(args.model)
    layer = h.resolve(args.layer) if args.layer else h.default_cam_layer()
    data = shapes.generate(args.n, args.seed)
    photos = data.images.astype(np.float32) / 255.0
    n_auc = min(args.auc_images, args.n)
    n_score = min(args.score_images, args.n)

    # scores[(method, mapping)] = lists of per-image values
    scores: dict[tuple[str, str], dict[str, list[float]]] = {}
    correct = 0

    def record(key: tuple[str, str], i: int, heat: np.ndarray) -> None:
        entry = scores.setdefault(key, {"point": [], "energy": [], "del": [], "ins": [], "border": []})
        label = int(data.labels[i])
        entry["point"].append(float(pointing_game(heat, data.masks[i])))
        y, x = peak(heat)
        entry["border"].append(float(min(y, x, heat.shape[0] - 1 - y, heat.shape[1] - 1 - x) < BORDER))
        entry["energy"].append(energy_pointing_game(heat, data.boxes[i]))
        if i < n_auc:
            entry["del"].append(deletion_auc(h, photos[i], heat, label, steps=args.steps, **del_kw).auc)
            entry["ins"].append(insertion_auc(h, photos[i], heat, label, steps=args.steps, **ins_kw).auc)

    base = centre_baseline((shapes.SIZE, shapes.SIZE))
    timings: dict[str, float] = {}
    mats = None
    field = None
    for method in METHODS:
        t0 = time.perf_counter()
        count = n_score if method == "scorecam" else args.n
        for i in range(count):
            label = int(data.labels[i])
            if method == "scorecam":
                for mapping in MAPPINGS:
                    res = cam(h, photos[i], label, layer, method="scorecam", mapping=mapping)
                    record((method, mapping), i, res.heatmap)
                continue
            res = cam(h, photos[i], label, layer, method=method, mapping="roi")
            if method == METHODS[0]:
                correct += int(np.argmax(res.probabilities) == label)
                record(("centre point", "-"), i, base)
            if mats is None:
                field = res.field
                mats = {
                    m: projection_matrices(res.field, res.cam.shape, res.model_shape, photos[i].shape[:2], m)
                    for m in MAPPINGS
                }
            for mapping in MAPPINGS:
                heat = res.heatmap if mapping == "roi" else project(res.cam, *mats[mapping])
                record((method, mapping), i, heat)
        timings[method] = time.perf_counter() - t0
        print(f"  {method}: {count} images in {timings[method]:.0f} s", file=sys.stderr, flush=True)

    print(
        f"# cam_quality: {h.name} ({args.model}), layer {layer} "
        f"(field {field.size[0]} px, stride {field.stride[0]}, offset {field.offset[0]})"
    )
    print(
        f"# {args.n} images of seed {args.seed} (unseen in training); model accuracy on them "
        f"{100 * correct / args.n:.1f}%; target = the true class"
    )
    print(
        f"# pointing (15 px of the shape's pixels) and energy (positive mass in the box): all {args.n} images, "
        f"Score-CAM {n_score}; deletion/insertion AUC: first {n_auc} images ({min(n_auc, n_score)} for Score-CAM), "
        f"{args.steps} steps, {baseline_note}"
    )
    print()
    print(
        "| method | mapping | pointing % | energy % | deletion AUC (lower better) | insertion AUC (higher better) "
        f"| peak within {BORDER} px of the border % | images |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")

    def row(key: tuple[str, str]) -> None:
        e = scores[key]
        print(
            f"| {key[0]} | {key[1]} | {100 * np.mean(e['point']):.1f} | {100 * np.mean(e['energy']):.1f} | "
            f"{np.mean(e['del']):.3f} | {np.mean(e['ins']):.3f} | {100 * np.mean(e['border']):.1f} | {len(e['point'])} |"
        )

    for method in METHODS:
        for mapping in MAPPINGS:
            row((method, mapping))
    row(("centre point", "-"))

    # the mappings averaged over all methods, and the pick
    print()
    print(
        "| mapping (mean over the 5 methods) | pointing % | energy % | deletion AUC | insertion AUC | mean rank |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    means = {
        m: {
            k: np.mean([np.mean(scores[(meth, m)][k]) for meth in METHODS])
            for k in ("point", "energy", "del", "ins")
        }
        for m in MAPPINGS
    }
    ranks = {m: 0.0 for m in MAPPINGS}
    for k, better_high in (("point", True), ("energy", True), ("del", False), ("ins", True)):
        ordered = sorted(MAPPINGS, key=lambda m: -means[m][k] if better_high else means[m][k])
        for r, m in enumerate(ordered, 1):
            ranks[m] += r / 4
    for m in MAPPINGS:
        v = means[m]
        print(
            f"| {m} | {100 * v['point']:.1f} | {100 * v['energy']:.1f} | {v['del']:.3f} | {v['ins']:.3f} | "
            f"{ranks[m]:.2f} |"
        )
    best = min(MAPPINGS, key=lambda m: (ranks[m], -means[m]["point"]))
    print()
    print(
        f"recommended default mapping: {best} (best mean rank over the four scores, averaged over the methods; "
        f"ties go to the higher pointing score); engine default now: {DEFAULT_MAPPING}"
    )
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
