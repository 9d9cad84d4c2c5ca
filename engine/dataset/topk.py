"""The names callers import from engine.dataset.topk, re-exported from the modules that own them.

A scan of a dataset through one layer is split by concern:

    running.py   the running top-k (RunningTopK) and the crops under a hit's receptive field
    result.py    ScanResult (immutable, one save/load path) and Hit
    pipeline.py  the tf.data pipeline that decodes and fits the images
    scanner.py   the scan driver: ScanRequest, run_scan / scan_iter / scan, checkpoints, cache
    figures.py   the figures of the Dataset tab and `python main.py export topk`
"""

from __future__ import annotations

from engine.dataset.figures import (
    FigureLayout,
    render_units,
    render_units_layout,
    tile_figure,
    unit_tiles,
)
from engine.dataset.pipeline import make_dataset
from engine.dataset.result import Hit, ScanResult
from engine.dataset.running import PAD_VALUE, RunningTopK, crop_box, extract_crop
from engine.dataset.scanner import (
    ACTIVATION_BUDGET,
    CROP_BUDGET,
    MAX_BATCH,
    ScanRequest,
    auto_batch_size,
    run_scan,
    scan,
    scan_iter,
)

__all__ = [
    "ACTIVATION_BUDGET",
    "CROP_BUDGET",
    "MAX_BATCH",
    "PAD_VALUE",
    "FigureLayout",
    "Hit",
    "RunningTopK",
    "ScanRequest",
    "ScanResult",
    "auto_batch_size",
    "crop_box",
    "extract_crop",
    "make_dataset",
    "render_units",
    "render_units_layout",
    "run_scan",
    "scan",
    "scan_iter",
    "tile_figure",
    "unit_tiles",
]
