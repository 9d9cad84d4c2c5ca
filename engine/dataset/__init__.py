"""Dataset scans: what a layer's units respond to across a whole set of images.

    result = engine.scan(h, "builtin:digits", "Conv2D_2", k=9)
    result.hits(5)               # unit 5's top-9 images with the peak cell and value
    result.crops_of(5)           # their crops under the cell's receptive field
    result.class_stats("mean")   # per class mean / std of each channel
    result.separating("4", "9")  # channels that tell 4 from 9 best

Sources live in sources.py; the running top-k in running.py, ScanResult in result.py,
the tf.data pipeline in pipeline.py and the scan driver (ScanRequest, scan) in
scanner.py (topk.py re-exports them); the figures in figures.py, class statistics in
stats.py, the disk cache in cache.py, the "scan" jobs in jobs.py and
`python main.py export topk` in cli.py. Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from engine.dataset.figures import render_units
from engine.dataset.result import Hit, ScanResult
from engine.dataset.running import RunningTopK, crop_box, extract_crop
from engine.dataset.scanner import ScanRequest, scan, scan_iter
from engine.dataset.sources import (
    ArraySource,
    DigitsSource,
    FileListSource,
    FolderSource,
    ShapesSource,
    Source,
    open_source,
)
from engine.dataset.stats import (
    ClassStats,
    Separation,
    StrongestMap,
    class_examples,
    class_grids,
    separating_channels,
    strongest_maps,
)

# the job kinds engine.dataset.jobs registers, so engine.jobs imports it on first use
JOB_KINDS = ("scan", "scan_crops", "scan_compare", "scan_maps")


def _register_job_kinds() -> None:
    from engine import jobs

    for kind in JOB_KINDS:
        jobs.register_module(kind, "engine.dataset.jobs")


_register_job_kinds()

__all__ = [
    "JOB_KINDS",
    "ArraySource",
    "ClassStats",
    "DigitsSource",
    "FileListSource",
    "FolderSource",
    "Hit",
    "RunningTopK",
    "ScanRequest",
    "ScanResult",
    "Separation",
    "ShapesSource",
    "Source",
    "StrongestMap",
    "class_examples",
    "class_grids",
    "crop_box",
    "extract_crop",
    "open_source",
    "render_units",
    "scan",
    "scan_iter",
    "separating_channels",
    "strongest_maps",
]
