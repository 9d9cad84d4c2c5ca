"""Image loading: formats, modes, EXIF, bombs, truncation, random bytes, conversion to model input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import engine
from engine.errors import ImageLoadError
from engine.images import fit_image, load_image, to_model_input


def _rgb(h=20, w=30):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "fmt, suffix", [("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif"), ("WEBP", ".webp")]
)
def test_lossless_formats_roundtrip(tmp_path, fmt, suffix):
    arr = _rgb()
    path = tmp_path / f"img{suffix}"
    Image.fromarray(arr).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    img = load_image(path)
    assert img.dtype == np.float32 and img.shape == (20, 30, 3)
    np.testing.assert_allclose(img, arr / 255.0, atol=1e-6)


def test_jpeg_is_close(tmp_path):
    arr = np.full((16, 16, 3), (200, 40, 90), np.uint8)
    path = tmp_path / "a.jpg"
    Image.fromarray(arr).save(path, quality=95)
    assert np.abs(load_image(path) - arr / 255.0).max() < 0.03


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5] = 255  # white band on the left
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=100)
    out = load_image(path)
    assert out.shape == (20, 10, 3)
    assert out[:5].mean() > 0.9 and out[-5:].mean() < 0.1  # the band is now on top


def test_modes(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    assert load_image(tmp_path / "l.png").shape == (16, 16, 1)
    g16 = np.arange(256, dtype=np.uint16).reshape(16, 16) * 257
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert out.shape == (16, 16, 1)
    np.testing.assert_allclose(out[..., 0], g16 / 65535.0, atol=1e-6)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, ..., 3] = 255  # top half opaque red, bottom transparent -> white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    np.testing.assert_allclose(out[0, 0], [1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out[3, 3], [1, 1, 1], atol=1e-6)
    pal = Image.fromarray(_rgb()).convert("P")
    pal.save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (20, 30, 3)
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red
    cmyk.save(tmp_path / "c.jpg", quality=100)
    out = load_image(tmp_path / "c.jpg")
    assert out.shape == (8, 8, 3) and out[..., 0].mean() > 0.9 and out[..., 1].mean() < 0.1
    Image.new("1", (8, 8), 1).save(tmp_path / "b.png")
    assert load_image(tmp_path / "b.png").min() == 1.0


def test_arrays_and_bytes():
    arr = _rgb()
    np.testing.assert_allclose(load_image(arr), arr / 255.0, atol=1e-6)
    assert load_image(np.zeros((5, 6))).shape == (5, 6, 1)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    assert load_image(buf.getvalue()).shape == (20, 30, 3)
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(np.zeros((3, 4, 5, 6)))


def test_builtin_samples():
    specs = engine.sample_images()
    if not specs:
        pytest.skip("no sample images yet")
    for spec in specs:
        img = load_image(spec)
        assert img.ndim == 3 and img.shape[-1] in (1, 3) and 0 <= img.min() and img.max() <= 1
    with pytest.raises(ImageLoadError, match="no built-in image"):
        load_image("builtin:does_not_exist")


def test_not_an_image_and_missing(tmp_path):
    (tmp_path / "x.png").write_text("this is text")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(tmp_path / "x.png")
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


def test_truncated_file(tmp_path):
    path = tmp_path / "t.jpg"
    Image.fromarray(_rgb(64, 64)).save(path, quality=90)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageLoadError, match="truncated|damaged|decode"):
        load_image(path)


def test_decompression_bomb(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.images.MAX_PIXELS", 10_000)
    Image.new("L", (200, 200)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="too large|decompression bomb"):
        load_image(tmp_path / "big.png")


def test_huge_dimensions_header_is_refused_fast():
    # a PNG header claiming 100000 x 100000 pixels
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")
    with pytest.raises(ImageLoadError, match="too large|decompression bomb"):
        load_image(png)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048))
def test_random_bytes_give_a_clear_error(data):
    try:
        img = load_image(data)
    except ImageLoadError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:  # a few byte strings are valid tiny images
        assert img.ndim == 3


@settings(max_examples=30, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=400), fmt=st.sampled_from(["PNG", "JPEG", "BMP", "TIFF", "WEBP"])
)
def test_truncated_prefixes_never_crash(cut, fmt):
    buf = io.BytesIO()
    Image.fromarray(_rgb(24, 24)).save(buf, format=fmt)
    data = buf.getvalue()[:cut]
    try:
        load_image(data)
    except ImageLoadError as exc:
        assert "\n" not in str(exc)


def test_fit_and_model_input(tiny):
    img = np.random.default_rng(0).random((50, 70, 1), dtype=np.float32)
    fitted = fit_image(img, (16, 16, 3))
    assert fitted.shape == (16, 16, 3) and np.allclose(fitted[..., 0], fitted[..., 1])
    x = to_model_input(img, tiny)
    assert x.shape == (1, 16, 16, 3) and x.dtype == np.float32
    rgb = np.zeros((8, 8, 3), np.float32)
    rgb[..., 1] = 1.0
    grey = fit_image(rgb, (8, 8, 1))
    np.testing.assert_allclose(grey, 0.587, atol=1e-6)


def test_antialiased_downscale_keeps_mean():
    stripes = np.zeros((256, 256, 1), np.float32)
    stripes[:, ::2] = 1.0  # one-pixel stripes alias badly without a low-pass filter
    small = fit_image(stripes, (28, 28, 1))
    assert abs(float(small.mean()) - 0.5) < 0.03 and small.std() < 0.05
