"""engine.export: atomic writes, refusing overwrite, sidecars, PNG/TIFF/GIF/NPY writers."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
from PIL import Image

from engine import export
from engine.errors import EngineError


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _rgb(h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- atomic_write


def test_atomic_write_bytes_and_function(tmp_path: Path) -> None:
    p = export.atomic_write(tmp_path / "a.bin", b"hello")
    assert p == tmp_path / "a.bin" and p.read_bytes() == b"hello"

    def writer(f: BinaryIO) -> None:
        f.write(b"one ")
        f.write(b"two")

    export.atomic_write(tmp_path / "b.bin", writer)
    assert (tmp_path / "b.bin").read_bytes() == b"one two"
    assert _listing(tmp_path) == ["a.bin", "b.bin"]


def test_atomic_write_leaves_nothing_when_the_writer_raises_midway(tmp_path: Path) -> None:
    def writer(f: BinaryIO) -> None:
        f.write(b"x" * 100_000)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        export.atomic_write(tmp_path / "out.png", writer)
    assert _listing(tmp_path) == []


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def writer(f: BinaryIO) -> None:
        f.write(b"new, partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export.atomic_write(target, writer, overwrite=True)
    assert target.read_bytes() == b"old"
    assert _listing(tmp_path) == ["out.bin"]


def test_atomic_write_refuses_overwrite_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / "fig.png"
    target.write_bytes(b"keep me")
    with pytest.raises(export.ExportExists) as info:
        export.atomic_write(target, b"new")
    msg = str(info.value)
    assert msg == f"{target} exists; pass overwrite=True (CLI: --overwrite)"
    assert isinstance(info.value, EngineError) and "\n" not in msg
    assert target.read_bytes() == b"keep me"
    export.atomic_write(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert _listing(tmp_path) == ["fig.png"]


def test_atomic_write_refuses_a_target_that_appears_while_writing(tmp_path: Path) -> None:
    target = tmp_path / "race.bin"

    def writer(f: BinaryIO) -> None:
        f.write(b"mine")
        target.write_bytes(b"someone else's")  # another process wins the race

    with pytest.raises(export.ExportExists):
        export.atomic_write(target, writer)
    assert target.read_bytes() == b"someone else's"
    assert _listing(tmp_path) == ["race.bin"]


def test_concurrent_writers_one_wins(tmp_path: Path) -> None:
    target = tmp_path / "once.bin"
    barrier = threading.Barrier(4)
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(k: int) -> None:
        def writer(f: BinaryIO) -> None:
            f.write(str(k).encode())
            barrier.wait(timeout=10)

        try:
            export.atomic_write(target, writer)
            result = "ok"
        except export.ExportExists:
            result = "exists"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["exists", "exists", "exists", "ok"]
    assert _listing(tmp_path) == ["once.bin"]


def test_atomic_write_missing_folder_and_permissions(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="does not exist"):
        export.atomic_write(tmp_path / "nope" / "a.bin", b"x")
    p = export.atomic_write(tmp_path / "perm.bin", b"x")
    if os.name == "posix":  # not the private 0o600 of a temp file: the umask applies
        assert p.stat().st_mode & 0o777 == 0o666 & ~export._umask()


def test_sidecar_path() -> None:
    assert export.sidecar_path("fig.png") == Path("fig.png.json")
    assert export.sidecar_path(Path("/x/y/run.npy")) == Path("/x/y/run.npy.json")


# --------------------------------------------------------------------------- write_image and sidecars


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".PNG"])
def test_write_image_round_trip(tmp_path: Path, suffix: str) -> None:
    img = _rgb()
    image_path, side = export.write_image(tmp_path / f"fig{suffix}", img, {"layer": "conv1"})
    assert image_path == tmp_path / f"fig{suffix}" and side == tmp_path / f"fig{suffix}.json"
    with Image.open(image_path) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), img)
    assert _listing(tmp_path) == sorted([f"fig{suffix}", f"fig{suffix}.json"])


def test_write_image_float_and_grey(tmp_path: Path) -> None:
    img = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4, 1)
    path, _ = export.write_image(tmp_path / "g.png", img, {})
    with Image.open(path) as im:
        assert im.mode == "L"
        got = np.asarray(im)
    np.testing.assert_array_equal(got, np.round(img[..., 0] * 255).astype(np.uint8))


def test_sidecar_round_trip_with_numpy_and_paths(tmp_path: Path) -> None:
    settings = {
        "command": "python main.py export cam --model builtin:digits --out fig.png",
        "model": Path("/models/m.keras"),
        "layer": "conv2",
        "channel": np.int64(5),
        "alpha": np.float32(0.5),
        "size": (28, 28),
        "levels": np.array([0.0, 1.5]),
        "flag": np.bool_(True),
        "nested": {"steps": np.arange(3), 7: "int key"},
        "bad": float("nan"),
        "big": np.zeros((100, 100), np.float32),
    }
    path, side = export.write_image(tmp_path / "fig.png", _rgb(), settings)
    doc = export.read_sidecar(path)
    assert doc == export.read_sidecar(side) == json.loads(side.read_text(encoding="utf-8"))
    assert set(doc) == {"convscope", "created", "file", "settings", "command"}
    assert doc["file"] == "fig.png" and doc["command"] == settings["command"]
    assert isinstance(doc["convscope"], str) and doc["convscope"]
    s = doc["settings"]
    assert s["model"] == "/models/m.keras" and s["channel"] == 5 and s["alpha"] == 0.5
    assert s["size"] == [28, 28] and s["levels"] == [0.0, 1.5] and s["flag"] is True
    assert s["nested"] == {"steps": [0, 1, 2], "7": "int key"} and s["bad"] == "nan"
    assert s["big"]["array_shape"] == [100, 100]


def test_sidecar_without_command(tmp_path: Path) -> None:
    path, _ = export.write_image(tmp_path / "fig.png", _rgb(), {"layer": "x"})
    assert export.read_sidecar(path)["command"] is None


def test_write_image_refuses_existing_image_or_sidecar(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"old")
    with pytest.raises(export.ExportExists, match="a.png exists"):
        export.write_image(tmp_path / "a.png", _rgb(), {})
    assert (tmp_path / "a.png").read_bytes() == b"old"
    (tmp_path / "b.png.json").write_text("{}")
    with pytest.raises(export.ExportExists, match="b.png.json exists"):
        export.write_image(tmp_path / "b.png", _rgb(), {})
    assert _listing(tmp_path) == ["a.png", "b.png.json"]


def test_write_image_overwrite_replaces_both(tmp_path: Path) -> None:
    export.write_image(tmp_path / "a.png", _rgb(seed=1), {"v": 1})
    export.write_image(tmp_path / "a.png", _rgb(seed=2), {"v": 2}, overwrite=True)
    with Image.open(tmp_path / "a.png") as im:
        np.testing.assert_array_equal(np.asarray(im), _rgb(seed=2))
    assert export.read_sidecar(tmp_path / "a.png")["settings"] == {"v": 2}
    assert _listing(tmp_path) == ["a.png", "a.png.json"]


def test_bad_settings_leave_no_image(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="sidecar"):
        export.write_image(tmp_path / "a.png", _rgb(), {"model": object()})
    assert _listing(tmp_path) == []


def test_sidecar_failure_removes_the_image(tmp_path: Path) -> None:
    """The sidecar name is taken while the image is being written: neither file of ours stays."""
    target = tmp_path / "a.png"
    real_stage = export._stage

    def stage(path: Path, data: export.Writer) -> Path:
        tmp = real_stage(path, data)
        if path.suffix == ".json":
            export.sidecar_path(target).write_text("{}")  # appears after the existence check
        return tmp

    export._stage = stage  # type: ignore[assignment]
    try:
        with pytest.raises(export.ExportExists):
            export.write_image(target, _rgb(), {})
    finally:
        export._stage = real_stage  # type: ignore[assignment]
    assert _listing(tmp_path) == ["a.png.json"]
    assert (tmp_path / "a.png.json").read_text() == "{}"


def test_image_writer_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(EngineError):
        export.write_image(tmp_path / "a.png", np.zeros((4, 4, 2), np.uint8), {})
    with pytest.raises(EngineError):
        export.write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.int32), {})
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("name", ["fig.jpg", "fig", "fig.gif", "fig.npy"])
def test_write_image_rejects_other_suffixes(tmp_path: Path, name: str) -> None:
    with pytest.raises(EngineError, match=r"\.png, \.tif, \.tiff"):
        export.write_image(tmp_path / name, _rgb(), {})
    assert _listing(tmp_path) == []


def test_read_sidecar_errors(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="no sidecar"):
        export.read_sidecar(tmp_path / "missing.png")
    (tmp_path / "x.png.json").write_text("{not json")
    with pytest.raises(EngineError, match="not valid JSON"):
        export.read_sidecar(tmp_path / "x.png")


def test_export_formats() -> None:
    assert export.EXPORT_FORMATS == {".png", ".tif", ".tiff", ".gif", ".npy"}


# --------------------------------------------------------------------------- GIF and NPY


def test_write_gif_frames_duration_loop(tmp_path: Path) -> None:
    frames = [np.full((8, 10, 3), 30 * k, np.uint8) for k in range(5)]
    path, side = export.write_gif(tmp_path / "run.gif", frames, {"steps": 5}, duration_ms=120, loop=0)
    with Image.open(path) as im:
        assert im.n_frames == 5 and im.size == (10, 8)
        assert im.info.get("duration") == 120 and im.info.get("loop") == 0
        im.seek(3)
        assert abs(int(np.asarray(im.convert("RGB"))[0, 0, 0]) - 90) <= 2
    assert export.read_sidecar(side)["settings"] == {"steps": 5}


def test_write_gif_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="at least one frame"):
        export.write_gif(tmp_path / "a.gif", [], {})
    with pytest.raises(EngineError, match="one size"):
        export.write_gif(tmp_path / "a.gif", [_rgb(4, 4), _rgb(5, 4)], {})
    with pytest.raises(EngineError, match=r"\.gif"):
        export.write_gif(tmp_path / "a.png", [_rgb()], {})
    assert _listing(tmp_path) == []


def test_write_npy_round_trip_without_pickle(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    path, side = export.write_npy(tmp_path / "maps.npy", arr, {"layer": "conv1"})
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), arr)
    assert export.read_sidecar(path)["settings"]["layer"] == "conv1"
    assert side.exists()


def test_write_npy_refuses_object_arrays(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="object array"):
        export.write_npy(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), {})
    with pytest.raises(EngineError, match=r"\.npy"):
        export.write_npy(tmp_path / "o.txt", np.zeros(3), {})
    assert _listing(tmp_path) == []


def test_write_npy_refuses_overwrite(tmp_path: Path) -> None:
    export.write_npy(tmp_path / "a.npy", np.zeros(3), {})
    with pytest.raises(export.ExportExists):
        export.write_npy(tmp_path / "a.npy", np.ones(3), {})
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.zeros(3))
    export.write_npy(tmp_path / "a.npy", np.ones(3), {}, overwrite=True)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.ones(3))
