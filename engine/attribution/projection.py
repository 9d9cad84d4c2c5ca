"""Projection of a coarse layer map onto input pixels through each cell's receptive field.

A layer map has one value per cell; cell (i, j) sees the input box of its receptive
field (engine.receptive_field). Every mapping here is separable and linear, so it is
a pair of matrices ``Py`` (H, h) and ``Px`` (W, w) and the projected map is
``Py @ cam @ Px.T``. The matrices are built once per (field, sizes, mapping) and
cached; Score-CAM applies the same matrices to every channel in one einsum.

Mappings (coordinates are continuous: pixel p spans [p, p + 1)):

- ``roi``: each cell's value is spread uniformly over its exact receptive field
  and every pixel takes the mean of the cells whose fields cover it. Edge pixels
  are covered by fewer cells; pixels no cell sees (a strided layer can leave a
  strip at the bottom/right) get 0, because the network never looks at them.
- ``gaussian``: the same, with each cell's weight a Gaussian centred on its
  field (sigma = field size / 4 per axis unless given), since the effective
  receptive field is roughly Gaussian and much smaller than the theoretical one.
- ``center``: linear interpolation between cells placed at their fields' true
  centres; beyond the outermost centres the edge value is held.
- ``bilinear``: the plain resize notebooks use (cell i at (i + 0.5) * H / h,
  half-pixel centres, edges held), kept for comparison.

A layer computed from a global branch alone (a Dense result reshaped to a map)
has a whole-image field with stride 0: every cell covers every pixel, so each
mapping but ``bilinear`` gives every pixel the mean of the cells.

When the model's input is a resized photo, the maps are built directly on the
photo's grid: photo pixel P spans [P * Hm / Hp, (P + 1) * Hm / Hp) in model-input
coordinates, and ``roi``/``gaussian`` weight each cell by the overlap of that span
with the cell's field (a weight of 0 or 1 when the photo is the model's size).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from engine.errors import EngineError

MAPPINGS: tuple[str, ...] = ("roi", "gaussian", "center", "bilinear")
# The default of engine.cam, the CLI and the GUI, chosen by bench/cam_quality.py (best mean rank
# over pointing, energy, deletion and insertion, averaged over the five CAM methods, on the shipped
# builtin:shapes model; see bench/RESULTS.md).
DEFAULT_MAPPING = "gaussian"


def check_mapping(mapping: str) -> str:
    """Canonical mapping name, or EngineError listing the choices."""
    key = str(mapping).lower()
    if key not in MAPPINGS:
        raise EngineError(f"unknown mapping {mapping!r}; choose from: {', '.join(MAPPINGS)}")
    return key


def _pixel_spans(n_out: int, n_model: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (model-input coordinates) of each of n_out output pixels."""
    scale = n_model / n_out
    edges = np.arange(n_out + 1, dtype=np.float64) * scale
    return edges[:-1], edges[1:]


def _axis_roi(
    n_cells: int, size: int, stride: int, offset: int, n_model: int, n_out: int, sigma: float | None
) -> np.ndarray:
    """(n_out, n_cells) weights of the roi (sigma None) or gaussian mapping along one axis."""
    lo, hi = _pixel_spans(n_out, n_model)
    start = offset + stride * np.arange(n_cells, dtype=np.float64)
    end = start + size
    overlap = np.minimum(hi[:, None], end[None, :]) - np.maximum(lo[:, None], start[None, :])
    weight = np.clip(overlap, 0.0, None) / (hi - lo)[:, None]
    if sigma is not None:
        centre = (start + end) / 2.0
        mid = (lo + hi) / 2.0
        weight = weight * np.exp(-0.5 * ((mid[:, None] - centre[None, :]) / sigma) ** 2)
    return weight


def _axis_interp(positions: np.ndarray, n_model: int, n_out: int) -> np.ndarray:
    """(n_out, n_cells) linear interpolation weights of cells placed at `positions` (model coordinates)."""
    lo, hi = _pixel_spans(n_out, n_model)
    mid = (lo + hi) / 2.0
    n = len(positions)
    weight = np.zeros((n_out, n), np.float64)
    if n == 1:
        weight[:, 0] = 1.0
        return weight
    step = positions[1] - positions[0]
    if step == 0:  # every cell at the same place (a whole-image field, stride 0): their mean
        weight[:] = 1.0 / n
        return weight
    t = np.clip((mid - positions[0]) / step, 0.0, n - 1)
    i0 = np.minimum(np.floor(t).astype(int), n - 2)
    frac = t - i0
    rows = np.arange(n_out)
    weight[rows, i0] = 1.0 - frac
    weight[rows, i0 + 1] += frac
    return weight


def _normalize(weight: np.ndarray) -> np.ndarray:
    total = weight.sum(axis=1, keepdims=True)
    return np.where(total > 0, weight / np.where(total > 0, total, 1.0), 0.0)


@lru_cache(maxsize=64)
def axis_matrix(
    mapping: str,
    n_cells: int,
    size: int,
    stride: int,
    offset: int,
    n_model: int,
    n_out: int,
    sigma: float | None = None,
) -> np.ndarray:
    """(n_out, n_cells) float32 projection along one axis; rows sum to 1 (0 where no cell sees the pixel)."""
    mapping = check_mapping(mapping)
    if n_cells < 1 or n_out < 1 or n_model < 1:
        raise EngineError("cannot project an empty map")
    if mapping == "roi":
        weight = _axis_roi(n_cells, size, stride, offset, n_model, n_out, None)
    elif mapping == "gaussian":
        s = float(sigma) if sigma else max(size / 4.0, 0.5)
        weight = _axis_roi(n_cells, size, stride, offset, n_model, n_out, s)
    elif mapping == "center":
        centres = offset + stride * np.arange(n_cells, dtype=np.float64) + size / 2.0
        weight = _axis_interp(centres, n_model, n_out)
    else:  # bilinear: the plain resize, cells spread evenly over the model input
        positions = (np.arange(n_cells, dtype=np.float64) + 0.5) * n_model / n_cells
        weight = _axis_interp(positions, n_model, n_out)
    out = _normalize(weight).astype(np.float32)
    out.setflags(write=False)
    return out


def projection_matrices(
    field: object,
    cam_shape: tuple[int, int],
    model_shape: tuple[int, int],
    out_shape: tuple[int, int] | None = None,
    mapping: str = DEFAULT_MAPPING,
    sigma: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(Py, Px) that project an (h, w) map of a layer with receptive field `field` onto (H, W) pixels.

    model_shape is the model input's (H, W); out_shape the grid to project onto
    (the photo's, default the model input's). `field` is an engine.receptive_field.ReceptiveField.
    """
    out_shape = tuple(model_shape) if out_shape is None else tuple(out_shape)
    sig = (None, None) if sigma is None else (float(sigma), float(sigma))
    mats = []
    for axis in range(2):
        mats.append(
            axis_matrix(
                mapping,
                int(cam_shape[axis]),
                int(field.size[axis]),
                int(field.stride[axis]),
                int(field.offset[axis]),
                int(model_shape[axis]),
                int(out_shape[axis]),
                sig[axis],
            )
        )
    return mats[0], mats[1]


def project(cam: np.ndarray, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Apply projection matrices to an (h, w) map, or to a batch (..., h, w); float32."""
    cam = np.asarray(cam, np.float32)
    return np.ascontiguousarray(np.einsum("Hh,...hw,Ww->...HW", py, cam, px, optimize=True), np.float32)


def identity_field() -> object:
    """The field of the input itself (1x1, stride 1): projecting with it maps model pixels to the photo."""
    from engine.receptive_field import ReceptiveField

    return ReceptiveField(size=(1, 1), stride=(1, 1), offset=(0, 0))


def to_photo_grid(pixel_map: np.ndarray, photo_shape: tuple[int, int]) -> np.ndarray:
    """Area-weighted map of a model-input-grid (H, W) map onto the photo's (Hp, Wp) grid."""
    pixel_map = np.asarray(pixel_map, np.float32)
    if pixel_map.shape[:2] == tuple(photo_shape[:2]):
        return pixel_map
    py, px = projection_matrices(
        identity_field(), pixel_map.shape[:2], pixel_map.shape[:2], tuple(photo_shape[:2]), "roi"
    )
    return project(pixel_map, py, px)
