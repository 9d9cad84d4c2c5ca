"""How much does Score-CAM's fast mode (max_channels) change the map? Exact vs fast on builtin:shapes.

For `--n` fresh builtin:shapes images (the generator of bench/cam_quality.py, a seed the model
never saw), the map of the true class by exact Score-CAM (every live channel) and by the fast
mode at each share/count of `--fast` (only the channels whose maps vary most; the others weigh
0). Printed per setting: the Pearson r of the heatmaps and of the coarse maps against exact
(mean, min), the pointing game (bench/cam_quality.py's rule: the peak within 15 px of the
shape's pixels) of each and how many images changed their verdict, the forward passes per image
and the time. float32 throughout, so only the channel choice differs.

Run:  python bench/scorecam_fast.py [--n 100] [--fast 0.125,0.25,0.5] [--isa full|avx2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench._common import apply_isa, isa_line, peak_rss_mb  # noqa: E402


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return float("nan") if a.std() != b.std() else 1.0
    return float(np.corrcoef(a, b)[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=4321)
    parser.add_argument("--model", default="builtin:shapes")
    parser.add_argument("--layer", default=None)
    parser.add_argument("--fast", default="0.125,0.25,0.5", help="shares (<1) or counts to compare")
    parser.add_argument("--isa", default="full", choices=("full", "avx2"))
    args = parser.parse_args()
    apply_isa(args.isa)

    from bench.cam_quality import generated_set
    from engine.attribution import cam
    from engine.attribution.methods import FAST_CHANNELS, top_variance_channels
    from engine.attribution.metrics import TOLERANCE, pointing_game
    from engine.models import load_model

    h = load_model(args.model)
    layer = h.resolve(args.layer) if args.layer else h.default_cam_layer()
    channels = int(h.symbolic(layer).shape[-1])
    data = generated_set(args.n, args.seed)
    settings: list[float | int | None] = [None] + [
        float(v) if float(v) < 1 else int(float(v)) for v in args.fast.split(",") if v.strip()
    ]
    kw = {"layer": layer, "method": "scorecam", "precision": "float32"}
    cam(h, data.photos[0], data.labels[0], **kw)  # trace once
    heat: dict[object, list[np.ndarray]] = {s: [] for s in settings}
    coarse: dict[object, list[np.ndarray]] = {s: [] for s in settings}
    hits: dict[object, list[bool]] = {s: [] for s in settings}
    passes: dict[object, list[int]] = {s: [] for s in settings}
    secs: dict[object, float] = dict.fromkeys(settings, 0.0)
    for i, (img, label) in enumerate(zip(data.photos, data.labels)):
        acts = np.asarray(h.submodel([layer])(img[None]))[0]
        live = np.flatnonzero(np.ptp(acts, axis=(0, 1)) > 0)
        for s in settings if i % 2 == 0 else reversed(settings):
            t0 = time.perf_counter()
            res = cam(h, img, label, max_channels=s, **kw)
            secs[s] += time.perf_counter() - t0
            heat[s].append(res.heatmap)
            coarse[s].append(res.cam)
            hits[s].append(bool(pointing_game(res.heatmap, data.point[i], TOLERANCE)))
            passes[s].append(len(top_variance_channels(acts, live, s)))

    print(
        f"# scorecam_fast: {args.model} layer {layer} ({channels} channels), {args.n} images (seed {args.seed}), float32"
    )
    print(f"# {isa_line()}")
    print(f"# load {' '.join(f'{v:.1f}' for v in os.getloadavg())}; peak RSS {peak_rss_mb():.0f} MB")
    print()
    print(
        "| Score-CAM | channels run | r heatmap vs exact (mean / min) | r coarse (mean / min) | pointing | verdicts changed | s/image |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    exact_hits = hits[None]
    for s in settings:
        r_h = [pearson(a, b) for a, b in zip(heat[s], heat[None])]
        r_c = [pearson(a, b) for a, b in zip(coarse[s], coarse[None])]
        changed = sum(a != b for a, b in zip(hits[s], exact_hits))
        name = (
            "exact"
            if s is None
            else (f"fast, max_channels={s}" + (" (--fast)" if s == FAST_CHANNELS else ""))
        )
        print(
            f"| {name} | {statistics.mean(passes[s]):.1f} | {statistics.mean(r_h):.4f} / {min(r_h):.4f} | "
            f"{statistics.mean(r_c):.4f} / {min(r_c):.4f} | {100 * statistics.mean(hits[s]):.0f}% | {changed} | "
            f"{secs[s] / args.n:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
