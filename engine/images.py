"""Image loading and conversion to a model's input.

load_image returns float32 (H, W, C) in [0, 1] at the file's own size, C = 1 for
grey and 3 for colour, with EXIF orientation applied. Conversion to a model's
input (antialiased resize, grey <-> RGB, the model's scaling) happens later in
to_model_input, so maps meant for overlay can come back on the photo's own grid.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import ImageLoadError
from engine.models import ModelHandle
from engine.scaling import to_model_range

MAX_PIXELS = 100_000_000  # larger images are refused as possible decompression bombs
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")
RESOURCES = Path(__file__).resolve().parent.parent / "resources"
SAMPLES = RESOURCES / "images"

ImageSource = str | os.PathLike | np.ndarray | bytes


def sample_images(fit: Mapping[str, Any] | ModelHandle | None = None) -> list[str]:
    """The "builtin:NAME" specs of the images shipped in resources/images, by name.

    fit: a model summary dict (input_shape, spec, class_names) or a ModelHandle; when
    given, the samples come in :func:`rank_samples` order (those that fit the model first).
    """
    if fit is not None:
        get = fit.get if isinstance(fit, Mapping) else lambda key: getattr(fit, key, None)
        return rank_samples(get("input_shape"), get("spec"), get("class_names"))
    if not SAMPLES.is_dir():
        return []
    return [f"builtin:{p.stem}" for p in sorted(SAMPLES.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


# ----- which samples fit a model ------------------------------------------------
@dataclass(frozen=True)
class _Sample:
    spec: str
    stem: str
    channels: int  # 1 grey, 3 colour (from the file header)
    side: int  # longer side in pixels
    dataset: str  # the built-in model whose training data it shows ("digits" for digit_7), or ""
    label: str  # its class ("7"), or ""


@lru_cache(maxsize=4)
def _samples_info(listing: tuple[tuple[str, int], ...]) -> tuple[_Sample, ...]:
    """Header facts of each sample (PIL reads only the header: cheap enough for the GUI thread)."""
    from engine import zoo

    builtins = zoo.builtin_models()
    out = []
    for name, _mtime in listing:
        path = SAMPLES / name
        stem = path.stem
        try:
            with Image.open(path) as im:
                channels = 1 if im.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
                side = max(im.size)
        except (OSError, ValueError):
            continue
        dataset, label = "", ""
        prefix, _, suffix = stem.rpartition("_")
        if prefix:
            owner = next((b for b in builtins if b.startswith(prefix)), "")
            if owner and suffix.lower() in {c.lower() for c in zoo.get(owner).class_names}:
                dataset, label = owner, suffix
        out.append(_Sample(f"builtin:{stem}", stem, channels, side, dataset, label))
    return tuple(out)


def _samples() -> tuple[_Sample, ...]:
    if not SAMPLES.is_dir():
        return ()
    listing = tuple(
        (p.name, p.stat().st_mtime_ns)
        for p in sorted(SAMPLES.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES
    )
    return _samples_info(listing)


def _sample_scores(
    input_shape: Sequence[int | None] | None, model_spec: str | None, class_names: Sequence[str] | None
) -> list[tuple[tuple[int, int, float, int], _Sample]]:
    """(score, sample) pairs, lower scores fitting better: (class tier, kind tier, size distance, name order).

    Class tier 0: the sample shows one of the model's classes (digit_7 for class names "0".."9").
    Kind tier 0: a grey sample for a one-channel model; a photo (no built-in model's data) for a
    colour model. Then, for a one-channel model, the size distance (digits first for a 28x28
    model, the grey photo first for a large one); for a colour model, colour before grey.
    """
    spec = str(model_spec or "")
    builtin = spec[8:].split("?", 1)[0] if spec.startswith("builtin:") else ""
    if class_names is None and builtin:
        from engine import zoo
        from engine.errors import ModelLoadError

        try:
            class_names = zoo.get(builtin).class_names
        except ModelLoadError:
            class_names = None
    classes = {str(c).lower() for c in class_names or ()}
    shape = tuple(input_shape or ())
    channels = int(shape[-1]) if len(shape) == 3 and shape[-1] else None
    if channels is None and spec.startswith("keras:"):
        channels = 3  # keras.applications: ImageNet colour photos
    side = max((int(s) for s in shape[:2] if s), default=0)
    scored = []
    for order, s in enumerate(_samples()):
        shows_class = bool(s.label) and s.label.lower() in classes and (not builtin or s.dataset == builtin)
        if channels == 1:
            kind_fits = s.channels == 1
        elif channels is not None:
            kind_fits = not s.dataset
        else:
            kind_fits = False
        if channels == 1:  # small samples first for a small model, large ones for a large model
            fine = round(abs(math.log(s.side / side)), 1) if side and s.side else 0.0
        elif channels is not None:  # colour photos before grey ones
            fine = 0.0 if s.channels == 3 else 1.0
        else:  # nothing known: name order
            fine = 0.0
        score = (0 if shows_class else 1, 0 if kind_fits else 1, fine, order)
        scored.append((score, s))
    scored.sort(key=lambda pair: pair[0])
    return scored


def rank_samples(
    input_shape: Sequence[int | None] | None = None,
    model_spec: str | None = None,
    class_names: Sequence[str] | None = None,
) -> list[str]:
    """All sample specs, those that fit the model first (see :func:`fitting_samples`).

    Pure Python and file headers only (no TensorFlow, no decoding), so the GUI calls it on
    its main thread. Knowing only the spec is enough for builtin: and keras: models; a model
    file needs its input_shape (and, if it has them, class_names) from the loaded summary.
    """
    return [s.spec for _, s in _sample_scores(input_shape, model_spec, class_names)]


def fitting_samples(
    input_shape: Sequence[int | None] | None = None,
    model_spec: str | None = None,
    class_names: Sequence[str] | None = None,
) -> list[str]:
    """The samples that fit the model, best first; empty when nothing is known about it.

    A sample showing one of the model's classes fits best (a digit for builtin:digits, a shape
    for builtin:shapes); without such samples, grey samples fit a one-channel model (digits
    first for a small one) and photos a colour model (keras: applications included).
    """
    scored = _sample_scores(input_shape, model_spec, class_names)
    if not scored:
        return []
    best = scored[0][0][:2]
    if best[0] != 0 and best[1] != 0:
        return []
    return [s.spec for score, s in scored if score[:2] == best]


def sample_path(name: str) -> Path:
    for p in sorted(SAMPLES.glob(f"{name}.*")):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return p
    raise ImageLoadError(
        f"no built-in image {name!r}; choose from: {', '.join(s[8:] for s in sample_images())}"
    )


def _from_pil(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        return np.clip(arr / top, 0, 1).astype(np.float32)[..., None]
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        arr = np.nan_to_num(arr)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        if lo < 0 or hi > 1:
            arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
        return arr[..., None]
    if mode == "1":
        img = img.convert("L")
        mode = "L"
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    elif mode == "L":
        return (np.asarray(img, dtype=np.float32) / 255.0)[..., None]
    elif mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return np.asarray(img, dtype=np.float32) / 255.0


def _decode(data: Any, name: str) -> np.ndarray:
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(data) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageLoadError(
                        f"{name}: {img.width}x{img.height} is too large (limit {MAX_PIXELS:,} pixels)"
                    )
                img.load()
                return _from_pil(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(
            f"{name}: refused as a possible decompression bomb (over {MAX_PIXELS:,} pixels)"
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image (or a format Convscope cannot read)") from None
    except FileNotFoundError:
        raise ImageLoadError(f"image file not found: {name}") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{name} is a folder, not an image") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, KeyError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "truncated" in text:
            raise ImageLoadError(f"{name}: truncated or damaged image file") from None
        raise ImageLoadError(f"{name}: cannot decode image ({text[:120]})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Encoded image bytes (read from anywhere: a cluster filesystem, an archive) as load_image
    returns them; messages name the image `name`."""
    return _decode(io.BytesIO(bytes(data)), name)


def load_image(source: ImageSource) -> np.ndarray:
    """Load an image as float32 (H, W, C) in [0, 1]; C is 1 (grey) or 3 (colour).

    source: a path, "builtin:NAME", encoded bytes, or an array (uint8 0..255,
    uint16, bool or float in [0, 1]; (H, W), (H, W, 1|3|4)).
    """
    if isinstance(source, np.ndarray):
        return array_to_image(source)
    if isinstance(source, bytes | bytearray):
        return decode_image(source, "image data")
    text = os.fspath(source)
    if text.startswith("builtin:"):
        path = sample_path(text.split(":", 1)[1])
    else:
        path = Path(text).expanduser()
    if path.is_dir():
        raise ImageLoadError(f"{path} is a folder, not an image")
    return _decode(path, path.name)


def array_to_image(arr: np.ndarray) -> np.ndarray:
    """Normalize an array to float32 (H, W, 1|3) in [0, 1]."""
    a = np.asarray(arr)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ImageLoadError(f"array of shape {a.shape} is not an image (expected (H, W) or (H, W, 1|3|4))")
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / (255.0 if a.max(initial=0) <= 255 else float(a.max()))
    else:
        a = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        if a.max(initial=0) > 1.0 + 1e-6:
            a = a / 255.0
    if a.shape[-1] == 2:
        a = a[..., :1]
    if a.shape[-1] == 4:
        alpha = a[..., 3:4]
        a = a[..., :3] * alpha + (1.0 - alpha)
    return np.ascontiguousarray(np.clip(a, 0.0, 1.0), dtype=np.float32)


def resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased resize of float (H, W, C) to (h, w) per channel (Lanczos, on float data)."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img.astype(np.float32, copy=False)
    shrinking = img.shape[0] > h or img.shape[1] > w
    method = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(img[..., c], np.float32), mode="F").resize((w, h), method)
        )
        for c in range(img.shape[-1])
    ]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """Grey <-> RGB: replicate a grey channel, or take ITU-R 601 luma of colour."""
    c = img.shape[-1]
    if c == channels:
        return img
    if channels == 3 and c == 1:
        return np.repeat(img, 3, axis=-1)
    if channels == 1 and c == 3:
        luma = img @ np.array([0.299, 0.587, 0.114], np.float32)
        return luma[..., None].astype(np.float32)
    raise ImageLoadError(f"cannot convert a {c}-channel image to {channels} channels")


def fit_image(img: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """An image in [0, 1] resized and channel-converted to shape (H, W, C)."""
    return to_channels(resize(img, shape[:2]), shape[2])


def to_model_input(img: ImageSource, h: ModelHandle) -> np.ndarray:
    """float32 (1, H, W, C) ready for the model behind handle h."""
    arr = (
        load_image(img) if not isinstance(img, np.ndarray) or img.dtype != np.float32 else array_to_image(img)
    )
    fitted = fit_image(arr, h.input_shape)
    return to_model_range(fitted, h.scaling)[None].astype(np.float32)


def upsample_to(map2d: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float (h, w) map to (H, W) without clipping (bicubic up / Lanczos down)."""
    m = np.ascontiguousarray(map2d, np.float32)
    h, w = size
    if m.shape == (h, w):
        return m
    method = Image.Resampling.BICUBIC if m.shape[0] <= h else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(m, mode="F").resize((w, h), method), dtype=np.float32)
