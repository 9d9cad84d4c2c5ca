"""Text bands and tiling: images laid out row by row on one canvas, with titles and a caption.

Titles use PIL's built-in bitmap font, so the same pixels come out on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.errors import EngineError
from engine.render.colors import _as_rgb_uint8, _rgb
from engine.render.geometry import GridGeometry, Rect, grid_geometry


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


def tile_with_geometry(
    images: Sequence[np.ndarray] | np.ndarray,
    cols: int | None = None,
    margin: int = 2,
    background: Sequence[int] | int = (255, 255, 255),
    titles: Sequence[str] | None = None,
    title_height: int | None = None,
    scale: int = 1,
    caption: str | None = None,
) -> tuple[np.ndarray, GridGeometry]:
    """Tile images into one uint8 RGB grid, row by row -> (image, the GridGeometry it drew).

    images: a sequence of uint8/float (h, w, 3|1) or (h, w) images, or an (N, h, w, 3|1)
    array; sizes may differ (each cell is the largest size, smaller images centred).
    cols defaults to a near-square grid; scale upscales every image by nearest
    neighbour (for tiny maps); titles are drawn above each cell with PIL's bitmap font
    (title_height defaults to the font's height when titles are given); a caption is drawn
    in a band above the grid. The layout is ``grid_geometry(len(images), cols, (max_h,
    max_w), margin, title_height, scale, top=caption band)``.
    """
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


def tile(images: Sequence[np.ndarray] | np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
    """Tile images into one uint8 RGB grid, row by row: the image of :func:`tile_with_geometry`.

    Takes the same arguments (images, cols=None, margin=2, background=white, titles=None,
    title_height=None, scale=1), documented there.
    """
    return tile_with_geometry(images, *args, **kwargs)[0]
