"""`python main.py evaluate cam` on generated builtin:shapes images with their boxes written as VOC files.

Writes `--n` images of a seed the shapes model never saw in training (engine.dataset.boxes.
write_shapes_folder: PNG + VOC XML with the shape's box and class) to a temporary folder (or
`--folder`), runs the CLI's `evaluate cam` on them and prints the machine line and its table
(pointing %, energy %, deletion/insertion AUC, sanity % with `--sanity-every`).

`--compare` instead runs bench/cam_quality.py's side-by-side mode (`cam_quality.py --evaluate`):
the same folder scored by cam_quality's own loop (pointing against the VOC box, every score on
every image) and by `evaluate cam` with the same methods, mappings, steps and sanity images,
both tables side by side with a "max |difference|" line. (cam_quality without `--voc` scores
pointing against the shape's pixels and AUCs on a subset, so its default table differs.)

Run:  nice -n 5 python bench/evaluate_shapes.py [--n 500] [--seed 4321] [--sanity-every 25] [--compare]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:shapes")
    parser.add_argument("--n", type=int, default=500, help="generated images")
    parser.add_argument("--seed", type=int, default=4321, help="data seed (>= 1000: never used in training)")
    parser.add_argument("--methods", default="gradcam,gradcampp,scorecam")
    parser.add_argument("--mappings", default="gaussian,roi")
    parser.add_argument(
        "--sanity-every", type=int, default=0, help="sanity check on every N-th image (0: none)"
    )
    parser.add_argument("--steps", type=int, default=16, help="deletion/insertion steps")
    parser.add_argument("--folder", help="write the images here and keep them (default: a temporary folder)")
    parser.add_argument(
        "--compare", action="store_true", help="cam_quality's table and evaluate cam's side by side"
    )
    args = parser.parse_args()
    if args.seed < 1000:
        parser.error("use a seed >= 1000: smaller seeds are training data")
    if args.compare:
        from bench import cam_quality

        argv = ["--evaluate", "--model", args.model, "--n", str(args.n), "--seed", str(args.seed)]
        argv += ["--methods", args.methods, "--mappings", args.mappings, "--steps", str(args.steps)]
        argv += ["--sanity-every", str(args.sanity_every)] + (
            ["--folder", args.folder] if args.folder else []
        )
        return cam_quality.main(argv)

    from bench._common import machine_line
    from engine.cli import main as cli_main
    from engine.dataset.boxes import write_shapes_folder

    with tempfile.TemporaryDirectory(prefix="convscope-evaluate-") as tmp:
        folder = Path(args.folder or Path(tmp) / "shapes")
        start = time.perf_counter()
        write_shapes_folder(folder, args.n, args.seed)
        wrote = time.perf_counter() - start
        print(machine_line())
        print(f"{args.n} builtin:shapes images of seed {args.seed} with VOC boxes ({wrote:.1f} s to write)")
        argv = ["evaluate", "cam", "--model", args.model, "--source", str(folder)]
        argv += ["--methods", args.methods, "--mappings", args.mappings, "--steps", str(args.steps)]
        argv += ["--sanity-every", str(args.sanity_every), "--out", str(Path(tmp) / "results.csv")]
        start = time.perf_counter()
        code = cli_main(argv)
        print(f"evaluate cam: {time.perf_counter() - start:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
