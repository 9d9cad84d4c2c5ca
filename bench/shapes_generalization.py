"""Does builtin:shapes generalize? Accuracy of the shipped model (and of any other model files given)
on two sets of 128x128 images of the four classes, overall and per class:

  held-out     engine.zoo.shapes.generate(n, seed=1234): the training generator's own evaluation seed
  independent  engine.zoo.shapes_independent.render(n, seed=1): a separately written renderer
               (two-colour gradients over the whole RGB cube, radial gradients, photo-like blobs and
               1/f noise, mostly unrotated antialiased shapes, 0-2 lines that may cross the shape,
               blur, pixel noise)

Usage: nice -n 5 python bench/shapes_generalization.py [--n 1000] [--models old.keras,new.keras]
Accuracy does not depend on the machine; the CPU line is printed for the record of the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import machine_line  # noqa: E402


def accuracies(model, images, labels) -> tuple[float, list[float]]:
    """Overall accuracy and one accuracy per class of ``model`` on uint8 ``images``."""
    import numpy as np

    probs = model.predict(images.astype(np.float32) / 255.0, batch_size=250, verbose=0)
    pred = np.argmax(probs, axis=1)
    per_class = [float(np.mean(pred[labels == c] == c)) for c in range(4)]
    return float(np.mean(pred == labels)), per_class


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images per set")
    parser.add_argument("--models", default="", help="comma-separated model files (default: the shipped one)")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from engine import zoo
    from engine.zoo import shapes, shapes_independent

    paths = [Path(p) for p in args.models.split(",") if p] or [zoo.get("shapes").model_path]
    t0 = time.perf_counter()
    held = shapes.generate(args.n, seed=shapes.HOLDOUT_SEED)
    t1 = time.perf_counter()
    ind_images, ind_labels, _ = shapes_independent.render(args.n, seed=1)
    t2 = time.perf_counter()
    sets = {
        f"held-out (generator seed {shapes.HOLDOUT_SEED})": (held.images, held.labels),
        "independent renderer (seed 1)": (ind_images, ind_labels),
    }

    print(f"# shapes_generalization: {args.n} images per set; TF {tf.__version__}, Keras {keras.__version__}")
    print(f"# {machine_line()}")
    print(f"# generating: held-out {t1 - t0:.1f} s, independent {t2 - t1:.1f} s")
    print()
    names = shapes.CLASS_NAMES
    header = f"| {'model':<28} | {'set':<36} | {'all':>6} | " + " | ".join(f"{n:>8}" for n in names) + " |"
    print(header)
    print("".join("|" if ch == "|" else "-" for ch in header))
    for path in paths:
        model = keras.saving.load_model(path, safe_mode=True)
        label = path.name if path.parent.name != "models" else f"shipped {path.name}"
        for set_name, (images, labels) in sets.items():
            acc, per_class = accuracies(model, images, labels)
            cells = " | ".join(f"{100 * a:>7.1f}%" for a in per_class)
            print(f"| {label[:28]:<28} | {set_name:<36} | {100 * acc:>5.1f}% | {cells} |")


if __name__ == "__main__":
    main()
