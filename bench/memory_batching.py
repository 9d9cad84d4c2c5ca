"""Memory-aware batching (issue 14): big batches split themselves to fit the memory there is.

Each case runs in its own process (so its peak RSS is its own) and prints one table row:

  maximize   engine.maximize of `--channels` channels of VGG16 (weights=None) `--layer` at
             `--size` px, `--steps` steps, under the memory budget given (CONVSCOPE_MEMORY_BUDGET;
             "auto" = what engine.memory measures: half the available RAM, or a GPU's free memory)
  scorecam   engine.cam(method="scorecam", batch_size=32) on VGG16 224 px block5_conv3, with
             `--score-channels` channels (max_channels, to keep it short) under the budget

The row gives the per-image estimate (engine.memory.activation_bytes), the chunk / batch that
ran, the wall time and the process's peak RSS (resource.getrusage), so the estimate can be
checked against what the process took; and, for maximize, the largest difference of the
images against the unsplit run (the lockstep chunks give the same images).

Run:  python bench/memory_batching.py [--channels 64] [--size 224] [--steps 2] [--budgets auto,2G,1G]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import apply_isa, isa_line, peak_rss_mb  # noqa: E402


def child(args: argparse.Namespace) -> int:
    """One case in this process; prints one JSON line."""
    apply_isa(args.isa)
    import keras
    import numpy as np

    import engine

    keras.utils.set_random_seed(0)  # the same random VGG16 weights in every process
    from engine.memory import activation_bytes, budget_bytes

    out: dict[str, object] = {"case": args.case, "budget": args.budget}
    if args.budget != "auto":
        os.environ["CONVSCOPE_MEMORY_BUDGET"] = args.budget
    out["budget_bytes"] = budget_bytes()
    if args.case == "maximize":
        from engine.maximize import run as run_mod
        from engine.maximize.chunked import chunk_size
        from engine.maximize.graphs import tap_model
        from engine.maximize.objectives import LossPlan

        h = engine.load_model(f"keras:VGG16?weights=none&input={args.size}")
        taps = tap_model(h, (h.resolve(args.layer),), False, (args.size, args.size), pre=True)
        out["per_image"] = activation_bytes(taps, training=True)
        plan = LossPlan({}, {}, {}, {}, None, np.zeros(args.channels, np.int32))
        out["chunk"] = chunk_size(taps, args.channels, plan, False)
        t0 = time.perf_counter()
        steps = list(
            engine.maximize(h, f"{args.layer}:0..{args.channels - 1}", steps=args.steps, every=args.steps)
        )
        out["seconds"] = time.perf_counter() - t0
        if args.save:
            np.save(args.save, steps[-1].images)
        out["loops"] = len(run_mod._LOOPS)
    else:
        from engine.attribution import cam
        from engine.attribution.methods import forward_bytes_per_image
        from engine.memory import fit_batch

        h = engine.load_model("keras:VGG16?weights=none")
        out["per_image"] = forward_bytes_per_image(h)
        out["chunk"] = fit_batch(32, int(out["per_image"]))
        img = np.random.default_rng(0).random((224, 224, 3)).astype(np.float32)
        t0 = time.perf_counter()
        res = cam(
            h,
            img,
            0,
            "block5_conv3",
            method="scorecam",
            precision="float32",
            max_channels=args.score_channels,
        )
        out["seconds"] = time.perf_counter() - t0
        if args.save:
            np.save(args.save, res.cam)
    out["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--layer", default="block3_conv1")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--score-channels", type=int, default=64)
    parser.add_argument("--budgets", default="auto,2G,1G")
    parser.add_argument("--isa", default="full", choices=("full", "avx2"))
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--budget", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return child(args)
    import tempfile

    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("maximize", "scorecam"):
            ref = None
            for budget in [b.strip() for b in args.budgets.split(",") if b.strip()]:
                save = os.path.join(tmp, f"{case}-{budget}.npy")
                cmd = [sys.executable, __file__, "--case", case, "--budget", budget, "--save", save]
                cmd += ["--channels", str(args.channels), "--size", str(args.size), "--layer", args.layer]
                cmd += [
                    "--steps",
                    str(args.steps),
                    "--score-channels",
                    str(args.score_channels),
                    "--isa",
                    args.isa,
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
                if line is None:
                    rows.append(
                        {
                            "case": case,
                            "budget": budget,
                            "error": (proc.stderr.strip().splitlines() or ["?"])[-1],
                        }
                    )
                    continue
                res = json.loads(line[7:])
                arr = np.load(save)
                if ref is None:
                    ref = arr
                res["diff"] = float(np.abs(arr - ref).max())
                rows.append(res)
    print(
        f"# memory_batching: {args.channels} channels of VGG16 {args.layer} at {args.size} px, {args.steps} steps; "
        f"Score-CAM VGG16 224 px block5_conv3, {args.score_channels} channels, batch 32"
    )
    print(f"# {isa_line()}")
    print()
    print("| case | budget | est. MB/image | chunk (of batch) | s | peak RSS MB | max diff vs first row |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | {r['budget']} | | | | | failed: {r['error'][:80]} |")
            continue
        total = args.channels if r["case"] == "maximize" else 32
        budget = (
            r["budget"] if r["budget"] != "auto" else f"auto ({(r['budget_bytes'] or 0) / 2**30:.1f} GiB)"
        )
        print(
            f"| {r['case']} | {budget} | {r['per_image'] / 2**20:.0f} | {r['chunk']} of {total} | {r['seconds']:.1f} | "
            f"{r['peak_rss_mb']:.0f} | {r['diff']:.2g} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
