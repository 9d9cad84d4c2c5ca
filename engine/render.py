"""Normalization, colormaps, tiling into grids and overlays: everything the screen shows.

The GUI and the CLI export both call these functions, so an exported figure is the
same pixels the view shows. Pure NumPy + Pillow (no TensorFlow, no matplotlib).
Every image comes back as a C-contiguous uint8 RGB array (H, W, 3).

Conventions:

- Values in [0, 1] index a 256-entry lookup table the way matplotlib does
  (``index = floor(v * 256)`` clipped to 255), so 0.5 lands on index 128, the
  grey zero of the ``"signed"`` map.
- A grid comes with a :class:`GridGeometry` that lists each cell's rectangle, so a
  click on the tiled image maps back to a map, unit or filter index with
  :func:`cell_at` (and :func:`cell_detail` for the input channel of a filter cell).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.errors import EngineError

NORMALIZATIONS: tuple[str, ...] = ("global", "per_map", "standardize", "raw")
COLORMAPS: tuple[str, ...] = ("gray", "viridis", "magma", "turbo", "signed")

# endpoints of the diverging "signed" map: negative, zero (index 128), positive
SIGNED_NEGATIVE = (0, 0, 255)
SIGNED_ZERO = (128, 128, 128)
SIGNED_POSITIVE = (255, 0, 0)

MIN_MAP_CELL_PX = 48  # feature maps smaller than this are upscaled (nearest neighbour)
MIN_FILTER_CELL_PX = 32  # first-layer filters in their own grid
MIN_MATRIX_CELL_PX = 16  # filters x input channels matrix

Rect = tuple[int, int, int, int]  # (top, left, bottom, right), bottom/right exclusive


# --------------------------------------------------------------------------- helpers


def _finite(a: np.ndarray) -> np.ndarray:
    """float32 copy of a with NaN and +-Inf replaced by 0."""
    out = np.array(a, dtype=np.float32, copy=True)
    out[~np.isfinite(out)] = 0.0
    return out


def _rgb(color: Sequence[int] | int, what: str = "colour") -> tuple[int, int, int]:
    """An (r, g, b) tuple of ints in 0..255 from a grey level or a 3-sequence."""
    if isinstance(color, (int, np.integer)):
        c = (int(color),) * 3
    else:
        c = tuple(int(v) for v in color)
    if len(c) != 3 or not all(0 <= v <= 255 for v in c):
        raise EngineError(f"{what} must be a grey level 0..255 or an (r, g, b) triple, got {color!r}")
    return c  # type: ignore[return-value]


def _as_rgb_uint8(img: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 (H, W, 3) from uint8/float (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha dropped)."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise EngineError(f"{what} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype != np.uint8:
        if a.dtype == np.bool_ or not (
            np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
        ):
            raise EngineError(f"{what} must be uint8 or float in [0, 1], got dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.integer):
            a = np.clip(a, 0, 255).astype(np.uint8)
        else:
            a = (np.clip(_finite(a), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


# --------------------------------------------------------------------------- normalization


def normalize(maps: np.ndarray, mode: str, axis_maps: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Scale a stack of maps to [0, 1] for display; returns (values float32, per-map factors (c,)).

    maps has one map per index along ``axis_maps`` (channels last for a conv layer's
    (h, w, c) output). NaN and Inf count as 0. Modes:

    - ``"global"``: min-max over the whole stack, so maps compare directly. Factors are 1.
    - ``"per_map"``: each map divided by its own max |value|, so weak maps stay visible.
      If the whole stack is non-negative (e.g. after ReLU), 0 maps to 0; if any value in
      the stack is negative, every map is shown symmetric about 0.5 (= zero, the grey of
      the ``"signed"`` colormap), so zero looks the same in every tile. The factor is
      ``stack max |value| / map max |value|`` (>= 1): how much the map was amplified,
      for a "x12" label.
    - ``"standardize"``: ``(x - mean) / std * 64 + 128`` per map, then / 255 and clipped
      (the Keras blog / Deep Learning with Python recipe). Factors are 1.
    - ``"raw"``: the values as they are, clipped to [0, 1]. Factors are 1.

    An all-zero or constant map never divides by zero: where the denominator would be
    0 the map shows 0 (the zero level 0.5 for an all-zero map of a signed stack in
    ``per_map``) and its factor is 1.
    """
    if mode not in NORMALIZATIONS:
        raise EngineError(f"unknown normalization {mode!r}; use one of {', '.join(NORMALIZATIONS)}")
    arr = np.asarray(maps)
    if arr.ndim == 0:
        raise EngineError("normalize needs an array of maps, got a scalar")
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise EngineError(f"maps must be numeric, got dtype {arr.dtype}")
    try:
        axis = int(axis_maps) % arr.ndim
    except ZeroDivisionError:  # pragma: no cover - ndim checked above
        raise EngineError("normalize needs an array of maps") from None
    x = np.moveaxis(_finite(arr), axis, -1)  # (..., c)
    c = x.shape[-1]
    flat = x.reshape(-1, c)  # (pixels, c)
    factors = np.ones(c, dtype=np.float32)

    if flat.shape[0] == 0 or c == 0:
        out = np.zeros_like(x)
    elif mode == "global":
        lo, hi = float(flat.min()), float(flat.max())
        out = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    elif mode == "per_map":
        peak = np.abs(flat).max(axis=0)  # (c,)
        top = float(peak.max())
        zero_map = peak == 0
        safe = np.where(zero_map, 1.0, peak).astype(np.float32)
        if float(flat.min()) < 0:  # signed stack: symmetric, zero at 0.5
            out = 0.5 + 0.5 * (x / safe)
        else:
            out = x / safe
        factors = np.where(zero_map, 1.0, top / safe).astype(np.float32)
    elif mode == "standardize":
        mean = flat.mean(axis=0, dtype=np.float64)
        std = flat.std(axis=0, dtype=np.float64)
        flat_map = std == 0
        safe = np.where(flat_map, 1.0, std)
        out = ((x - mean) / safe * 64.0 + 128.0) / 255.0
        out = np.where(flat_map, 0.0, out)
    else:  # raw
        out = x
    out = np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)
    out = np.ascontiguousarray(np.moveaxis(out, -1, axis), dtype=np.float32)
    return out, factors


# --------------------------------------------------------------------------- colormaps


@lru_cache(maxsize=16)
def _lut(name: str) -> np.ndarray:
    if name == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        lut = np.stack([ramp, ramp, ramp], axis=1)
    elif name == "signed":
        neg, zero, pos = (
            np.array(c, dtype=np.float64) for c in (SIGNED_NEGATIVE, SIGNED_ZERO, SIGNED_POSITIVE)
        )
        i = np.arange(256, dtype=np.float64)[:, None]
        lower = zero + (neg - zero) * ((128 - i) / 128)  # i in 0..128
        upper = zero + (pos - zero) * ((i - 128) / 127)  # i in 128..255
        lut = np.round(np.where(i <= 128, lower, upper)).astype(np.uint8)
    elif name in COLORMAPS:
        from engine.colormap_data import TABLES

        lut = np.frombuffer(bytes.fromhex(TABLES[name]), dtype=np.uint8).reshape(256, 3)
    else:
        raise EngineError(f"unknown colormap {name!r}; use one of {', '.join(COLORMAPS)}")
    lut = np.ascontiguousarray(lut, dtype=np.uint8)
    lut.setflags(write=False)
    return lut


def colormap(name: str) -> np.ndarray:
    """The (256, 3) uint8 lookup table of a colormap in :data:`COLORMAPS`.

    viridis, magma and turbo are the published tables (see engine/colormap_data.py);
    ``"signed"`` runs blue (index 0) - grey (index 128, zero) - red (index 255).
    """
    return _lut(name).copy()


def apply_colormap(values01: np.ndarray, name: str) -> np.ndarray:
    """Colour values in [0, 1] with a colormap -> uint8 (..., 3).

    Values are clipped to [0, 1]; NaN/Inf show as 0 (0.5, i.e. zero, for ``"signed"``,
    where 0.5 means zero). A trailing axis of size 1 (H, W, 1) is dropped first.
    """
    lut = _lut(name)
    v = np.asarray(values01, dtype=np.float32)
    if v.ndim >= 3 and v.shape[-1] == 1:
        v = v[..., 0]
    v = np.where(np.isfinite(v), v, 0.5 if name == "signed" else 0.0)
    idx = np.clip(np.floor(v * 256.0), 0, 255).astype(np.intp)
    return np.ascontiguousarray(lut[idx])


def to_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) from a float image in [0, 1] (H, W), (H, W, 1) or (H, W, 3).

    Values are clipped and rounded; grey is replicated to three channels; uint8 input
    passes through (grey replicated) and a 4th (alpha) channel is dropped.
    """
    return _as_rgb_uint8(img, "image")


# --------------------------------------------------------------------------- grid geometry


@dataclass(frozen=True)
class GridGeometry:
    """Where each cell of a tiled image lies, so a click can be mapped back to an index.

    ``rects[k]`` is the clickable cell (title band included) as (top, left, bottom, right)
    in pixels of the tiled image, bottom/right exclusive; ``image_rects[k]`` the part
    that holds the picture. ``indices[k]`` is the map, unit or filter index that cell
    shows; ``channels[k]`` a second index (the input channel of a filter cell, the
    colour channel 0/1/2 of a first-layer filter section) or -1.
    """

    height: int
    width: int
    rects: tuple[Rect, ...]
    image_rects: tuple[Rect, ...]
    indices: tuple[int, ...]
    channels: tuple[int, ...] = ()
    rows: int = 0
    cols: int = 0
    _arr: np.ndarray = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not self.channels:
            object.__setattr__(self, "channels", (-1,) * len(self.rects))
        arr = np.array(self.rects, dtype=np.int64).reshape(-1, 4)
        object.__setattr__(self, "_arr", arr)

    def __len__(self) -> int:
        return len(self.rects)

    def position_at(self, y: float, x: float) -> int | None:
        """Position in ``rects`` of the cell under pixel (y, x), or None (margin, outside)."""
        if len(self.rects) == 0:
            return None
        yi, xi = math.floor(y), math.floor(x)
        a = self._arr
        hit = (a[:, 0] <= yi) & (yi < a[:, 2]) & (a[:, 1] <= xi) & (xi < a[:, 3])
        found = np.flatnonzero(hit)
        return int(found[0]) if found.size else None


def _near_square_cols(n: int, cell_h: int = 1, cell_w: int = 1) -> int:
    """Columns that make a grid of n cells of size (cell_h, cell_w) roughly square."""
    if n <= 0:
        return 1
    cols = math.ceil(math.sqrt(n * max(cell_h, 1) / max(cell_w, 1)))
    return int(min(max(cols, 1), n))


def grid_geometry(
    n: int,
    cols: int | None,
    cell_hw: tuple[int, int],
    margin: int = 2,
    title_height: int = 0,
    scale: int = 1,
    top: int = 0,
) -> GridGeometry:
    """Layout of n equal cells in rows: cell k at row k // cols, column k % cols.

    cell_hw is the unscaled picture size; each cell is ``scale`` times that plus a title
    band of ``title_height`` above it; ``margin`` pixels surround and separate cells.
    ``top`` shifts everything down (for a caption band). This is the layout
    :func:`tile` draws, so ``cell_at(grid_geometry(...), y, x)`` inverts a click.
    """
    n, margin, title_height, scale, top = int(n), int(margin), int(title_height), int(scale), int(top)
    ch, cw = (int(v) for v in cell_hw)
    if n < 0 or margin < 0 or title_height < 0 or scale < 1 or ch < 1 or cw < 1 or top < 0:
        raise EngineError(
            f"bad grid layout: n={n}, cell={ch}x{cw}, margin={margin}, title_height={title_height}, scale={scale}"
        )
    if cols is None:
        cols = _near_square_cols(n, ch * scale + title_height, cw * scale)
    cols = int(cols)
    if cols < 1:
        raise EngineError(f"cols must be at least 1, got {cols}")
    cols = min(cols, max(n, 1))
    rows = math.ceil(n / cols) if n else 0
    sh, sw = ch * scale, cw * scale
    step_y, step_x = title_height + sh + margin, sw + margin
    rects: list[Rect] = []
    image_rects: list[Rect] = []
    for k in range(n):
        r, c = divmod(k, cols)
        y0 = top + margin + r * step_y
        x0 = margin + c * step_x
        rects.append((y0, x0, y0 + title_height + sh, x0 + sw))
        image_rects.append((y0 + title_height, x0, y0 + title_height + sh, x0 + sw))
    height = top + margin + rows * step_y if n else top + 2 * margin + 1
    width = margin + cols * step_x if n else 2 * margin + 1
    return GridGeometry(
        height=height,
        width=width,
        rects=tuple(rects),
        image_rects=tuple(image_rects),
        indices=tuple(range(n)),
        rows=rows,
        cols=cols,
    )


def cell_at(geometry: GridGeometry, y: float, x: float) -> int | None:
    """Index (map, unit or filter) of the cell under pixel (y, x) of a tiled image, or None."""
    pos = geometry.position_at(y, x)
    return None if pos is None else geometry.indices[pos]


def cell_detail(geometry: GridGeometry, y: float, x: float) -> tuple[int, int] | None:
    """(index, channel) of the cell under pixel (y, x), or None; channel is -1 where it has none."""
    pos = geometry.position_at(y, x)
    return None if pos is None else (geometry.indices[pos], geometry.channels[pos])


# --------------------------------------------------------------------------- layouts that fit a pane


def grid_size(
    n: int,
    cols: int,
    cell_hw: tuple[int, int],
    margin: int = 2,
    title_height: int = 0,
    scale: int = 1,
    top: int = 0,
) -> tuple[int, int]:
    """(height, width) of ``grid_geometry(n, cols, ...)`` in closed form (no rectangles built)."""
    if n <= 0:
        return top + 2 * margin + 1, 2 * margin + 1
    cols = min(max(int(cols), 1), n)
    rows = math.ceil(n / cols)
    ch, cw = cell_hw
    return top + margin + rows * (title_height + ch * scale + margin), margin + cols * (cw * scale + margin)


def _fit_factor(size_hw: tuple[int, int], fit: tuple[int, int]) -> float:
    """How much a figure of size_hw is magnified (or shrunk) to fit a pane of fit = (h, w)."""
    return min(fit[0] / max(size_hw[0], 1), fit[1] / max(size_hw[1], 1))


def best_cols(
    n: int,
    cell_hw: tuple[int, int],
    fit: tuple[int, int],
    margin: int = 2,
    title_height: int = 0,
    scale: int = 1,
    top: int = 0,
) -> int:
    """The column count that shows n cells largest in a pane of fit = (height, width) pixels.

    The figure is scaled to fit the pane with its aspect kept, so a cell is shown
    ``cell * min(pane_h / height, pane_w / width)`` pixels; ties go to fewer columns.
    """
    if n <= 1:
        return 1
    best, best_f = 1, -1.0
    for cols in range(1, n + 1):
        if cols > 1 and math.ceil(n / cols) == math.ceil(n / (cols - 1)):
            continue  # same rows as one column fewer, only wider
        f = _fit_factor(grid_size(n, cols, cell_hw, margin, title_height, scale, top), fit)
        if f > best_f * (1 + 1e-9):
            best, best_f = cols, f
    return best


def _check_fit(fit: Sequence[int] | None) -> tuple[int, int] | None:
    if fit is None:
        return None
    h, w = (int(v) for v in fit)
    if h < 1 or w < 1:
        raise EngineError(f"a pane to fit must be at least 1x1 pixels, got {h}x{w}")
    return h, w


def feature_layout(shape: Sequence[int], fit: Sequence[int] | None, titles: bool = True) -> int:
    """Columns of :func:`feature_grid` for maps of ``shape`` ((h, w, c) or (units,)).

    fit = (height, width) of the pane: the columns that show maps largest there; None:
    the fixed near-square layout exports use.
    """
    pane = _check_fit(fit)
    shape = tuple(int(v) for v in shape)
    while len(shape) > 1 and shape[0] == 1 and len(shape) in (2, 4):
        shape = shape[1:]
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) == 1:
        n = shape[0]
        if pane is None:
            return _near_square_cols(n)
        best, best_f = 1, -1.0
        for cols in range(1, max(n, 1) + 1):
            scale = int(min(max(512 // cols, 4), 32))
            f = _fit_factor(grid_size(n, cols, (1, 1), 1, 0, scale), pane) * scale
            if f > best_f * (1 + 1e-9):
                best, best_f = cols, f
        return best
    h, w, c = shape[-3:]
    scale = _auto_scale(h, w, MIN_MAP_CELL_PX)
    th = text_height() if titles else 0
    if pane is None:
        return _near_square_cols(c, h * scale + th, w * scale)
    return best_cols(c, (h, w), pane, 2, th, scale)


SECTION_GAP = 8  # pixels between side-by-side RGB / R / G / B sections of a first-layer filter figure
SECTION_CHOICES = (1, 2, 4)  # sections per row: stacked, 2 x 2, side by side


def _arranged_size(
    section_hw: tuple[int, int], n_sections: int, per_row: int, caption_band: int
) -> tuple[int, int]:
    rows = math.ceil(n_sections / per_row)
    sh, sw = section_hw
    return caption_band + rows * sh, per_row * sw + (per_row - 1) * SECTION_GAP


def filter_layout(
    shape: Sequence[int], fit: Sequence[int] | None, max_out: int = 256, max_in: int = 32
) -> dict[str, int]:
    """Layout of :func:`filter_grid` for weights of shape (kh, kw, cin, cout): {"cols", "sections_per_row"}.

    fit = (height, width) of the pane: first-layer RGB / R / G / B sections side by side
    (4 or 2 x 2) in a wide pane, stacked (1 or 2 x 2) in a tall one, with the arrangement
    and columns that show the filters largest; None: the fixed layout exports use
    (near-square grids, sections stacked). For the filters x input channels matrix of
    deeper layers, "sections_per_row" is the number of blocks of filter rows side by side
    (1 without fit) and "cols" the input channels shown.
    """
    pane = _check_fit(fit)
    kh, kw, cin, cout = (int(v) for v in shape)
    n = min(cout, int(max_out))
    if cin not in (1, 3):
        n_in = min(cin, int(max_in))
        blocks = _matrix_blocks(kh, kw, n_in, n, n < cout or n_in < cin, pane)
        return {"cols": n_in, "sections_per_row": blocks}
    scale = _auto_scale(kh, kw, MIN_FILTER_CELL_PX)
    th, margin = text_height(), 2
    band = th + margin if n < cout else 0  # the "showing n of m filters" caption
    if cin == 1:
        if pane is None:
            return {"cols": _near_square_cols(n, kh * scale + th, kw * scale), "sections_per_row": 1}
        return {"cols": best_cols(n, (kh, kw), pane, margin, th, scale, band), "sections_per_row": 1}
    if pane is None:
        return {"cols": _near_square_cols(n, kh * scale + th, kw * scale), "sections_per_row": 1}
    # sections side by side in a wide pane, stacked in a tall one (2 x 2 allowed in both)
    choices = (2, 4) if pane[1] >= pane[0] else (1, 2)
    best = {"cols": 1, "sections_per_row": choices[0]}
    best_f = -1.0
    for per_row in choices:
        for cols in range(1, n + 1):
            if cols > 1 and math.ceil(n / cols) == math.ceil(n / (cols - 1)):
                continue
            section = grid_size(n, cols, (kh, kw), margin, th, scale, th + margin)
            f = _fit_factor(_arranged_size(section, 4, per_row, band), pane)
            if f > best_f * (1 + 1e-9):
                best, best_f = {"cols": cols, "sections_per_row": per_row}, f
    return best


# --------------------------------------------------------------------------- text and tiling


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    """PIL's built-in bitmap font (no font files, same pixels everywhere)."""
    loader = getattr(ImageFont, "load_default_imagefont", None)
    return loader() if loader is not None else ImageFont.load_default()  # type: ignore[return-value]


def text_height() -> int:
    """Height in pixels of a title band that fits the default font."""
    box = _font().getbbox("Ag0")
    return int(box[3] - box[1]) + 3


def _fit_text(text: str, width: int) -> str:
    """text cut to fit width pixels (with ".."); characters the bitmap font lacks become "?"."""
    font = _font()
    text = text.encode("latin-1", "replace").decode("latin-1")
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "..") > width:
        text = text[:-1]
    return text + ".." if text else ""


def _text_colour(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    return (0, 0, 0) if sum(bg) >= 3 * 128 else (255, 255, 255)


def _draw_texts(
    canvas: np.ndarray, texts: Sequence[tuple[int, int, int, str]], bg: tuple[int, int, int]
) -> np.ndarray:
    """Draw (top, left, max_width, text) items onto canvas with the bitmap font."""
    if not texts:
        return canvas
    im = Image.fromarray(canvas)
    draw = ImageDraw.Draw(im)
    font = _font()
    fill = _text_colour(bg)
    for top, left, width, text in texts:
        t = _fit_text(str(text), max(width, 0))
        if t:
            draw.text((left, top + 1), t, font=font, fill=fill)
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _image_list(images: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    if isinstance(images, np.ndarray):
        if images.ndim == 3:  # (N, h, w) grey stack
            images = images[..., None]
        if images.ndim != 4:
            raise EngineError(f"tile needs (N, h, w, 3|1) images, got shape {images.shape}")
        return [_as_rgb_uint8(images[k], f"image {k}") for k in range(images.shape[0])]
    return [_as_rgb_uint8(im, f"image {k}") for k, im in enumerate(images)]


def _upscale(img: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return img
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def _paste(canvas: np.ndarray, img: np.ndarray, rect: Rect) -> None:
    """Centre img in rect (already scaled)."""
    t, left, b, r = rect
    h, w = img.shape[:2]
    y = t + (b - t - h) // 2
    x = left + (r - left - w) // 2
    canvas[y : y + h, x : x + w] = img


def _tile_with_geometry(
    images: Sequence[np.ndarray] | np.ndarray,
    cols: int | None = None,
    margin: int = 2,
    background: Sequence[int] | int = (255, 255, 255),
    titles: Sequence[str] | None = None,
    title_height: int | None = None,
    scale: int = 1,
    caption: str | None = None,
) -> tuple[np.ndarray, GridGeometry]:
    imgs = _image_list(images)
    bg = _rgb(background, "background")
    scale = int(scale)
    if scale < 1:
        raise EngineError(f"scale must be at least 1, got {scale}")
    if titles is not None and len(titles) != len(imgs):
        raise EngineError(f"got {len(titles)} titles for {len(imgs)} images")
    if title_height is None:
        title_height = text_height() if titles is not None else 0
    ch = max((im.shape[0] for im in imgs), default=1)
    cw = max((im.shape[1] for im in imgs), default=1)
    top = text_height() + margin if caption else 0
    geo = grid_geometry(len(imgs), cols, (ch, cw), margin, title_height, scale, top=top)
    canvas = np.empty((geo.height, geo.width, 3), dtype=np.uint8)
    canvas[:] = bg
    for im, rect in zip(imgs, geo.image_rects):
        _paste(canvas, _upscale(im, scale), rect)
    texts: list[tuple[int, int, int, str]] = []
    if caption:
        texts.append((margin, margin, geo.width - 2 * margin, caption))
    if titles is not None and title_height > 0:
        for t, rect in zip(titles, geo.rects):
            texts.append((rect[0], rect[1], rect[3] - rect[1], t))
    return _draw_texts(canvas, texts, bg), geo


def tile(
    images: Sequence[np.ndarray] | np.ndarray,
    cols: int | None = None,
    margin: int = 2,
    background: Sequence[int] | int = (255, 255, 255),
    titles: Sequence[str] | None = None,
    title_height: int | None = None,
    scale: int = 1,
) -> np.ndarray:
    """Tile images into one uint8 RGB grid, row by row.

    images: a sequence of uint8/float (h, w, 3|1) or (h, w) images, or an (N, h, w, 3|1)
    array; sizes may differ (each cell is the largest size, smaller images centred).
    cols defaults to a near-square grid; scale upscales every image by nearest
    neighbour (for tiny maps); titles are drawn above each cell with PIL's bitmap font
    (title_height defaults to the font's height when titles are given). The layout is
    ``grid_geometry(len(images), cols, (max_h, max_w), margin, title_height, scale)``.
    """
    return _tile_with_geometry(images, cols, margin, background, titles, title_height, scale)[0]


# --------------------------------------------------------------------------- grids of maps and filters


@dataclass(frozen=True)
class RenderedGrid:
    """A rendered grid: the uint8 RGB image, a per-cell factor (x amplification) and the layout."""

    image: np.ndarray
    factors: np.ndarray
    geometry: GridGeometry
    caption: str = ""
    layout: dict = field(default_factory=dict)  # {"cols": n[, "sections_per_row": s]} as drawn


def _factor_label(f: float) -> str:
    if f < 10:
        return f"\u00d7{f:.1f}"
    if f < 1000:
        return f"\u00d7{f:.0f}"
    return f"\u00d7{f:.0e}"


def _auto_scale(h: int, w: int, min_px: int) -> int:
    return max(1, math.ceil(min_px / max(h, w, 1)))


def _squeeze_batch(a: np.ndarray) -> np.ndarray:
    while a.ndim > 1 and a.shape[0] == 1 and a.ndim in (2, 4):
        a = a[0]
    return a


def feature_grid(
    maps: np.ndarray,
    norm: str = "per_map",
    cmap: str = "gray",
    cols: int | None = None,
    titles: bool = True,
    scale: int | None = None,
    fit: Sequence[int] | None = None,
) -> RenderedGrid:
    """Render a layer's output: one tile per channel of (h, w, c) maps, or one cell per dense unit.

    (h, w, c): normalized with :func:`normalize` (``norm``), coloured with ``cmap``,
    one tile per channel titled with its index (and "x3.4" for an amplified map in
    ``per_map``). (h, w) is one map. A leading batch axis of size 1 is dropped.
    (units,): one image, each unit a square cell of a near-square grid coloured by its
    value (the vector normalized as one map); ``cell_at`` gives the unit index.
    scale=None upscales tiny maps so cells are at least ~48 px. cols=None picks the columns
    with :func:`feature_layout`: those that show maps largest in a pane of fit = (height,
    width), or near-square without fit (the fixed layout of exports). ``layout["cols"]`` of
    the result says which were drawn.
    """
    a = _squeeze_batch(np.asarray(maps))
    if a.ndim == 2:
        a = a[:, :, None]
    if cols is None and fit is not None and a.ndim in (1, 3) and a.size:
        cols = feature_layout(a.shape, fit, titles=titles)
    if a.ndim == 1:
        return _dense_grid(a, norm, cmap, cols, scale)
    if a.ndim != 3:
        raise EngineError(f"feature maps must be (h, w, c) or (units,), got shape {np.shape(maps)}")
    h, w, c = a.shape
    if h == 0 or w == 0 or c == 0:
        raise EngineError(f"feature maps are empty (shape {a.shape})")
    values, factors = normalize(a, norm, axis_maps=-1)
    colored = apply_colormap(np.moveaxis(values, -1, 0), cmap)  # (c, h, w, 3)
    if scale is None:
        scale = _auto_scale(h, w, MIN_MAP_CELL_PX)
    labels = None
    if titles:
        labels = []
        for k in range(c):
            f = float(factors[k])
            show = norm == "per_map" and round(f, 1) != 1.0
            labels.append(f"{k} {_factor_label(f)}" if show else str(k))
    image, geo = _tile_with_geometry(colored, cols=cols, titles=labels, scale=scale)
    return RenderedGrid(image=image, factors=factors, geometry=geo, layout={"cols": geo.cols})


def _dense_grid(v: np.ndarray, norm: str, cmap: str, cols: int | None, scale: int | None) -> RenderedGrid:
    n = v.shape[0]
    if n == 0:
        raise EngineError("dense activations are empty")
    values, _ = normalize(v[:, None], norm, axis_maps=-1)
    colored = apply_colormap(values[:, 0], cmap)  # (n, 3)
    if cols is None:
        cols = _near_square_cols(n)
    cols = int(min(max(int(cols), 1), n))
    if scale is None:
        scale = int(min(max(512 // cols, 4), 32))
    image, geo = _tile_with_geometry(colored[:, None, None, :], cols=cols, margin=1, scale=scale)
    return RenderedGrid(
        image=image, factors=np.ones(n, dtype=np.float32), geometry=geo, layout={"cols": geo.cols}
    )


def _signed01(w: np.ndarray, peak: np.ndarray | float) -> np.ndarray:
    """Weights -> [0, 1] with 0.5 = zero weight, divided by peak (broadcast), peak 0 -> 0.5."""
    peak = np.asarray(peak, dtype=np.float32)
    safe = np.where(peak > 0, peak, 1.0).astype(np.float32)
    return np.clip(0.5 + 0.5 * (w / safe), 0.0, 1.0).astype(np.float32)


def _arrange_sections(
    sections: Sequence[tuple[str, list[np.ndarray], list[str], int]],
    margin: int,
    background: tuple[int, int, int],
    scale: int,
    caption: str,
    cols: int | None = None,
    per_row: int = 1,
) -> tuple[np.ndarray, GridGeometry]:
    """Titled section grids, per_row to a row (1 = one under another), SECTION_GAP apart side by side.

    Each section is a grid of ``cols`` columns; geometry indices = filter index, channel =
    the section's channel.
    """
    per_row = min(max(int(per_row), 1), max(len(sections), 1))
    tiles: list[tuple[np.ndarray, GridGeometry, int]] = []
    for title, images, titles, channel in sections:
        img, geo = _tile_with_geometry(
            images, cols=cols, margin=margin, background=background, titles=titles, scale=scale, caption=title
        )
        tiles.append((img, geo, channel))
    band = text_height() + margin if caption else 0
    sec_h = max((t[0].shape[0] for t in tiles), default=1)
    sec_w = max((t[0].shape[1] for t in tiles), default=1)
    height, width = _arranged_size((sec_h, sec_w), len(tiles), per_row, band)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    rects: list[Rect] = []
    image_rects: list[Rect] = []
    indices: list[int] = []
    channels: list[int] = []
    cols_used = 0
    for k, (img, geo, channel) in enumerate(tiles):
        r, c = divmod(k, per_row)
        y = band + r * sec_h  # each section's own title band separates the rows
        x = c * (sec_w + SECTION_GAP)
        canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
        for i, (rc, ir) in enumerate(zip(geo.rects, geo.image_rects)):
            rects.append((rc[0] + y, rc[1] + x, rc[2] + y, rc[3] + x))
            image_rects.append((ir[0] + y, ir[1] + x, ir[2] + y, ir[3] + x))
            indices.append(i)
            channels.append(channel)
        cols_used = max(cols_used, geo.cols)
    if caption:
        canvas = _draw_texts(canvas, [(margin, margin, width - 2 * margin, caption)], background)
    geo = GridGeometry(
        height=height,
        width=width,
        rects=tuple(rects),
        image_rects=tuple(image_rects),
        indices=tuple(indices),
        channels=tuple(channels),
        rows=0,
        cols=cols_used,
    )
    return np.ascontiguousarray(canvas), geo


def filter_grid(
    weights: np.ndarray,
    shared_scale: bool = True,
    max_in: int = 32,
    max_out: int = 256,
    cols: int | None = None,
    sections_per_row: int | None = None,
    fit: Sequence[int] | None = None,
) -> RenderedGrid:
    """Render conv filters (kh, kw, cin, cout) with zero weight as mid-grey.

    cin == 3 (first-layer colour filters): a section with each filter as an RGB image
    (0.5 = zero weight), then sections with its R, G and B slices as grey maps;
    ``cell_at`` gives the filter index, ``cell_detail`` the channel (-1 for RGB).
    cin == 1: the filters in a near-square grid, signed colormap.
    Otherwise one row per filter, one column per input channel (signed colormap),
    capped at max_out filters and max_in input channels with a caption saying so;
    ``cell_detail`` gives (filter, input channel).
    shared_scale divides by the largest |weight| of the whole layer (filters compare);
    otherwise each filter by its own (factors = layer peak / filter peak).
    cols (filters per row of a grid) and sections_per_row (1 stacked, 2, or 4 side by side;
    for the matrix: blocks of filter rows side by side) set the layout; left None they come from :func:`filter_layout`: the layout that shows
    filters largest in a pane of fit = (height, width), or the fixed one without fit.
    ``layout`` of the result says what was drawn.
    """
    w = np.asarray(weights)
    if w.ndim != 4:
        raise EngineError(f"filter weights must be (kh, kw, cin, cout), got shape {w.shape}")
    kh, kw, cin, cout = w.shape
    if min(kh, kw, cin, cout) == 0:
        raise EngineError(f"filter weights are empty (shape {w.shape})")
    max_in, max_out = int(max_in), int(max_out)
    if max_in < 1 or max_out < 1:
        raise EngineError("max_in and max_out must be at least 1")
    n_out = min(cout, max_out)
    n_in = cin if cin == 3 else min(cin, max_in)
    w = _finite(w[:, :, :n_in, :n_out])
    filter_peak = np.abs(w).reshape(-1, n_out).max(axis=0)  # (n_out,)
    layer_peak = float(filter_peak.max())
    if shared_scale:
        peak: np.ndarray | float = layer_peak
        factors = np.ones(n_out, dtype=np.float32)
    else:
        peak = filter_peak  # broadcasts over the last axis
        factors = np.where(filter_peak > 0, layer_peak / np.where(filter_peak > 0, filter_peak, 1), 1.0)
        factors = factors.astype(np.float32)
    v = _signed01(w, peak)  # (kh, kw, n_in, n_out) in [0, 1]
    notes = []
    if n_out < cout:
        notes.append(f"{n_out} of {cout} filters")
    if n_in < cin:
        notes.append(f"{n_in} of {cin} input channels")
    caption = ("showing " + " and ".join(notes)) if notes else ""
    bg = (255, 255, 255)
    if cin not in (1, 3):
        if sections_per_row is None:
            sections_per_row = filter_layout((kh, kw, cin, cout), fit, max_out, max_in)["sections_per_row"]
        if int(sections_per_row) < 1:
            raise EngineError(f"sections_per_row must be at least 1, got {sections_per_row}")
        return _filter_matrix(v, factors, caption, bg, int(sections_per_row))
    if cols is None or sections_per_row is None:
        chosen = filter_layout((kh, kw, cin, cout), fit, max_out, max_in)
        cols = chosen["cols"] if cols is None else cols
        sections_per_row = chosen["sections_per_row"] if sections_per_row is None else sections_per_row
    if cols is not None and int(cols) < 1:
        raise EngineError(f"cols must be at least 1, got {cols}")
    if sections_per_row is not None and int(sections_per_row) not in SECTION_CHOICES:
        raise EngineError(f"sections_per_row must be one of {SECTION_CHOICES}, got {sections_per_row}")

    if cin == 3:
        scale = _auto_scale(kh, kw, MIN_FILTER_CELL_PX)
        names = [str(k) for k in range(n_out)]
        rgb = [to_uint8(v[:, :, :, k]) for k in range(n_out)]
        sections = [("RGB (grey = 0)", rgb, names, -1)]  # short titles: a section may be narrow
        for ch, cname in enumerate(("red", "green", "blue")):
            grey = [apply_colormap(v[:, :, ch, k], "gray") for k in range(n_out)]
            sections.append((f"{cname} (grey = 0)", grey, names, ch))
        per_row = int(sections_per_row or 1)
        image, geo = _arrange_sections(sections, 2, bg, scale, caption, cols, per_row)
        layout = {"cols": geo.cols, "sections_per_row": per_row}
        return RenderedGrid(image=image, factors=factors, geometry=geo, caption=caption, layout=layout)

    if cin == 1:
        scale = _auto_scale(kh, kw, MIN_FILTER_CELL_PX)
        tiles = [apply_colormap(v[:, :, 0, k], "signed") for k in range(n_out)]
        image, geo = _tile_with_geometry(
            tiles,
            cols=cols,
            titles=[str(k) for k in range(n_out)],
            scale=scale,
            background=bg,
            caption=caption or None,
        )
        geo = GridGeometry(
            geo.height,
            geo.width,
            geo.rects,
            geo.image_rects,
            geo.indices,
            (0,) * len(geo),
            geo.rows,
            geo.cols,
        )
        layout = {"cols": geo.cols, "sections_per_row": 1}
        return RenderedGrid(image=image, factors=factors, geometry=geo, caption=caption, layout=layout)


def _matrix_geometry(kh: int, kw: int, n_in: int, n_out: int, caption: bool, blocks: int) -> dict[str, int]:
    """Sizes of the filters x input channels matrix split into `blocks` blocks of filter rows side by side."""
    scale = _auto_scale(kh, kw, MIN_MATRIX_CELL_PX)
    margin, th = 1, text_height()
    label_w = int(_font().getlength(str(n_out - 1))) + 4
    ch, cw = kh * scale, kw * scale
    per_block = math.ceil(n_out / blocks)
    top = (th + margin if caption else 0) + th  # caption band, then column header band
    block_w = label_w + margin + n_in * (cw + margin)
    return {
        "scale": scale,
        "margin": margin,
        "th": th,
        "label_w": label_w,
        "ch": ch,
        "cw": cw,
        "per_block": per_block,
        "top": top,
        "block_w": block_w,
        "height": top + margin + per_block * (ch + margin),
        "width": blocks * block_w + (blocks - 1) * SECTION_GAP,
    }


def _matrix_blocks(
    kh: int, kw: int, n_in: int, n_out: int, caption: bool, fit: tuple[int, int] | None
) -> int:
    """Blocks of filter rows side by side that show the matrix largest in a pane of fit (1 without fit)."""
    if fit is None:
        return 1
    best, best_f = 1, -1.0
    for blocks in range(1, min(n_out, 8) + 1):
        if blocks > 1 and math.ceil(n_out / blocks) == math.ceil(n_out / (blocks - 1)):
            continue
        g = _matrix_geometry(kh, kw, n_in, n_out, caption, blocks)
        f = _fit_factor((g["height"], g["width"]), fit)
        if f > best_f * (1 + 1e-9):
            best, best_f = blocks, f
    return best


def _filter_matrix(
    v: np.ndarray, factors: np.ndarray, caption: str, bg: tuple[int, int, int], blocks: int = 1
) -> RenderedGrid:
    """Rows = filters, columns = input channels, with index labels on the left and on top.

    blocks > 1 splits the filter rows into that many blocks side by side (for a wide pane),
    each with its own column header and row labels.
    """
    kh, kw, n_in, n_out = v.shape
    blocks = min(max(int(blocks), 1), n_out)
    g = _matrix_geometry(kh, kw, n_in, n_out, bool(caption), blocks)
    scale, margin, th, label_w = g["scale"], g["margin"], g["th"], g["label_w"]
    ch, cw, per_block, top = g["ch"], g["cw"], g["per_block"], g["top"]
    height, width = g["height"], g["width"]
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = bg
    colored = apply_colormap(v, "signed")  # (kh, kw, n_in, n_out, 3)
    rects: list[Rect] = []
    indices: list[int] = []
    channels: list[int] = []
    texts: list[tuple[int, int, int, str]] = []
    if caption:
        texts.append((margin, margin, width - 2 * margin, caption))
    label_offset = max((ch - th) // 2, 0)
    every = max(1, math.ceil(th / (ch + margin)))  # label every row where labels fit
    for b in range(math.ceil(n_out / per_block)):
        left = b * (g["block_w"] + SECTION_GAP) + label_w
        rows = range(b * per_block, min((b + 1) * per_block, n_out))
        for r, o in enumerate(rows):
            y0 = top + margin + r * (ch + margin)
            for i in range(n_in):
                x0 = left + margin + i * (cw + margin)
                canvas[y0 : y0 + ch, x0 : x0 + cw] = _upscale(colored[:, :, i, o], scale)
                rects.append((y0, x0, y0 + ch, x0 + cw))
                indices.append(o)
                channels.append(i)
            if r % every == 0:
                texts.append((y0 + label_offset - 1, left - label_w + 1, label_w - 2, str(o)))
        for i in range(n_in):
            x0 = left + margin + i * (cw + margin)
            texts.append((top - th, x0, cw + margin, str(i)))
    image = _draw_texts(canvas, texts, bg)
    geo = GridGeometry(
        height=height,
        width=width,
        rects=tuple(rects),
        image_rects=tuple(rects),
        indices=tuple(indices),
        channels=tuple(channels),
        rows=n_out,
        cols=n_in,
    )
    layout = {"cols": n_in, "sections_per_row": blocks}
    return RenderedGrid(image=image, factors=factors, geometry=geo, caption=caption, layout=layout)


# --------------------------------------------------------------------------- overlays and boxes


def overlay(
    photo: np.ndarray,
    heat: np.ndarray,
    cmap: str = "turbo",
    alpha: float = 0.5,
    signed: bool = False,
    dim: float = 0.6,
    vmax: float | None = None,
) -> np.ndarray:
    """Lay a heatmap over the photo it was computed on -> uint8 RGB (H, W, 3).

    photo: float (H, W, C) in [0, 1] or uint8, C in 1/3/4 (or (H, W)); heat: (H, W) on
    the same grid (else EngineError). Unsigned: negative heat is dropped (as in
    Grad-CAM), the rest divided by ``vmax`` (default: its own max), coloured with cmap
    and alpha-blended: ``(1 - alpha) * photo + alpha * colour``. Signed: heat / max|heat|
    on the blue-grey-red ``"signed"`` map, mixed into the photo dimmed by ``dim`` with
    a weight ``alpha * |heat| / max|heat|``, so zero leaves the dimmed photo and strong
    evidence for / against shows red / blue.
    """
    p = np.asarray(photo)
    if np.issubdtype(p.dtype, np.floating):  # keep float precision; only the shape is normalized
        p2 = p[:, :, None] if p.ndim == 2 else p
        if p2.ndim != 3 or p2.shape[2] not in (1, 3, 4):
            raise EngineError(f"photo must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {p.shape}")
        base = np.clip(_finite(p2[:, :, :3]), 0.0, 1.0)
        if base.shape[2] == 1:
            base = np.repeat(base, 3, axis=2)
    else:
        base = _as_rgb_uint8(p, "photo").astype(np.float32) / 255.0
    h = np.asarray(heat)
    if h.ndim == 3 and h.shape[2] == 1:
        h = h[:, :, 0]
    if h.ndim != 2:
        raise EngineError(f"heatmap must be (H, W), got shape {h.shape}")
    if h.shape != base.shape[:2]:
        raise EngineError(
            f"heatmap is {h.shape[0]}x{h.shape[1]} but the photo is {base.shape[0]}x{base.shape[1]}; "
            "map it onto the photo's grid first"
        )
    if not 0.0 <= float(alpha) <= 1.0 or not 0.0 <= float(dim) <= 1.0:
        raise EngineError(f"alpha and dim must lie in [0, 1], got alpha={alpha}, dim={dim}")
    if cmap not in COLORMAPS:
        raise EngineError(f"unknown colormap {cmap!r}; use one of {', '.join(COLORMAPS)}")
    h = _finite(h)
    if signed:
        peak = float(vmax) if vmax is not None else float(np.abs(h).max())
        rel = np.clip(h / peak, -1.0, 1.0) if peak > 0 else np.zeros_like(h)
        colour = apply_colormap(0.5 + 0.5 * rel, "signed").astype(np.float32) / 255.0
        weight = (float(alpha) * np.abs(rel))[:, :, None]
        out = (1.0 - weight) * (base * float(dim)) + weight * colour
    else:
        pos = np.maximum(h, 0.0)
        peak = float(vmax) if vmax is not None else float(pos.max())
        rel = np.clip(pos / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(pos)
        colour = apply_colormap(rel, cmap).astype(np.float32) / 255.0
        out = (1.0 - float(alpha)) * base + float(alpha) * colour
    return np.ascontiguousarray((np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def draw_box(
    rgb: np.ndarray,
    box: tuple[float, float, float, float],
    color: Sequence[int] | int = (255, 0, 0),
    width: int = 2,
) -> np.ndarray:
    """A copy of rgb with a rectangle outline, e.g. a receptive field, clipped to the image.

    box is (top, left, bottom, right) in pixels, bottom/right exclusive (rounded to
    ints); the outline is ``width`` pixels drawn inside the box. Parts outside the
    image are not drawn, so a receptive field that extends past the border shows only
    its visible edges.
    """
    img = _as_rgb_uint8(rgb, "image").copy()
    c = np.array(_rgb(color, "box colour"), dtype=np.uint8)
    width = int(width)
    if width < 1:
        raise EngineError(f"box width must be at least 1, got {width}")
    if len(box) != 4:
        raise EngineError(f"box must be (top, left, bottom, right), got {box!r}")
    t, left, b, r = (int(round(float(v))) for v in box)
    if b <= t or r <= left:
        raise EngineError(f"box {box!r} is empty: bottom must exceed top and right exceed left")
    H, W = img.shape[:2]

    def fill(y0: int, y1: int, x0: int, x1: int) -> None:
        y0, y1 = max(y0, 0), min(y1, H)
        x0, x1 = max(x0, 0), min(x1, W)
        if y0 < y1 and x0 < x1:
            img[y0:y1, x0:x1] = c

    wy, wx = min(width, b - t), min(width, r - left)
    fill(t, t + wy, left, r)  # top edge
    fill(b - wy, b, left, r)  # bottom edge
    fill(t, b, left, left + wx)  # left edge
    fill(t, b, r - wx, r)  # right edge
    return img
