"""Write figures (PNG, TIFF, SVG, PDF) reproducibly and atomically, and raw exports beside them.

A figure's bytes depend only on its spec, style and size: no dates in PDF or SVG metadata, a
fixed SVG id salt, a fixed PNG "Software" tag, so running a sidecar's command again gives a
byte-identical file. Files go through engine.export (staged, fsynced, never overwriting
silently) with the JSON sidecar that says how to reproduce them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.plot.draw import compose
from engine.plot.size import FigureSize, parse_size
from engine.plot.spec import FigureSpec
from engine.plot.style import Style, get_style

FIGURE_FORMATS = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".svg": "svg", ".pdf": "pdf"}
SOFTWARE = "Convscope"
_METADATA = {
    "png": {"Software": SOFTWARE},
    "svg": {"Date": None, "Creator": SOFTWARE},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": SOFTWARE, "Creator": SOFTWARE},
}


def render_figure(fig: Any, fmt: str = "png") -> bytes:
    """The bytes of a composed figure in fmt (png, tiff, svg, pdf), at the figure's own size and DPI."""
    import matplotlib

    st: Style = getattr(fig, "_convscope_style", get_style("paper"))
    with matplotlib.rc_context(st.rc()):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        if fmt == "tiff":
            from PIL import Image

            fig.canvas.draw()
            rgba = np.asarray(fig.canvas.buffer_rgba())
            Image.fromarray(rgba[..., :3].copy()).save(buf, format="TIFF", dpi=(fig.dpi, fig.dpi))
        elif fmt in _METADATA:
            fig.savefig(buf, format=fmt, dpi=fig.dpi, metadata=_METADATA[fmt])
        else:
            raise EngineError(f"cannot write a figure as {fmt!r}: use png, tiff, svg or pdf")
    return buf.getvalue()


def figure_bytes(
    spec: FigureSpec, fmt: str = "png", style: str | Style = "paper", size: FigureSize | None = None
) -> bytes:
    """Compose `spec` and return its file bytes (deterministic: the same input, the same bytes)."""
    return render_figure(compose(spec, style, size), fmt)


def figure_rgb(spec: FigureSpec, style: str | Style = "paper", size: FigureSize | None = None) -> np.ndarray:
    """The figure as uint8 RGB pixels (what a PNG of it holds), e.g. for a preview."""
    import matplotlib

    fig = compose(spec, style, size)
    with matplotlib.rc_context(fig._convscope_style.rc()):  # noqa: SLF001
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def figure_settings(
    spec: FigureSpec, style: str | Style, size: FigureSize | None, fmt: str
) -> dict[str, Any]:
    """What a sidecar records about a figure: its kind ("figure"), figure_style, size in inches and
    pixels, figure_dpi, format and colour bar range."""
    st = get_style(style)
    size = size or parse_size(style=st.name)
    out: dict[str, Any] = {
        "figure": spec.kind,
        "figure_style": st.name,  # named apart from a view's own "style" (an attribution map's look)
        "figure_dpi": size.dpi,
        "format": fmt,
        "width_in": round(size.width_in, 4),
    }
    if size.height_in is not None:
        out["height_in"] = round(size.height_in, 4)
        out["pixels"] = list(size.pixels or ())
    if spec.colorbar is not None:
        out["colorbar"] = {"cmap": spec.colorbar.cmap, "min": spec.colorbar.vmin, "max": spec.colorbar.vmax}
    out.update(spec.settings)
    return out


def write_figure(
    path: str | Path,
    spec: FigureSpec,
    settings: dict[str, Any],
    style: str | Style = "paper",
    size: FigureSize | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write the figure (format by suffix: .png .tif .tiff .svg .pdf) and its sidecar, atomically."""
    from engine.export import write_bytes

    suffix = Path(path).suffix.lower()
    if suffix not in FIGURE_FORMATS:
        raise EngineError(f"cannot write a figure to {Path(path).name}: use {', '.join(FIGURE_FORMATS)}")
    fmt = FIGURE_FORMATS[suffix]
    data = figure_bytes(spec, fmt, style, size)
    return write_bytes(path, data, {**settings, **figure_settings(spec, style, size, fmt)}, overwrite)


def raw_export(
    path: str | Path,
    image: np.ndarray,
    values: np.ndarray | None,
    settings: dict[str, Any],
    overwrite: bool = False,
) -> list[Path]:
    """Today's bare image at native resolution (engine.export.write_image, bit for bit) and, when
    there are values, `<stem>.npy` of them beside it (no pickles)."""
    from engine.export import ExportExists, write_image, write_npy

    npy = Path(path).with_suffix(".npy")
    if values is not None and npy.exists() and not overwrite:
        raise ExportExists(npy)  # before the image is written: both files or neither
    written = list(write_image(path, image, {**settings, "raw": True}, overwrite=overwrite))
    if values is not None:
        written += list(write_npy(npy, np.asarray(values), {**settings, "raw": True}, overwrite=overwrite))
    return written
