"""Dataset scans: running top-k vs brute force, crops vs receptive fields, class statistics,
corrupt files, cancel + resume, the disk cache, sources and the scan jobs.

Real tiny Keras models (tests/conftest.py) and real image files in tmp folders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine
from engine.dataset import (
    ArraySource,
    FileListSource,
    FolderSource,
    RunningTopK,
    ScanResult,
    ShapesSource,
    open_source,
    scan,
    scan_iter,
)
from engine.dataset import cache as scan_cache
from engine.dataset.contract import ScanParams
from engine.dataset.sources import fit_for_model
from engine.dataset.topk import PAD_VALUE, extract_crop
from engine.errors import Cancelled, EngineError, LayerNotFound
from engine.jobs import CancelToken, Finished, Progress, run
from engine.scaling import to_model_range

BATCH = 32


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test gets its own scan cache folder."""
    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (150, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, 150)
    return images, labels


@pytest.fixture
def array_source(arrays):
    images, labels = arrays
    return ArraySource(images, labels, ["a", "b", "c"], spec="test-arrays")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An ImageFolder layout: two classes of PNG/JPEG of various sizes, one unlabelled image at the root."""
    root = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(1)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir()
        for i in range(7):
            size = (int(rng.integers(12, 30)), int(rng.integers(12, 30)))
            arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            suffix = ".png" if i % 2 else ".jpg"
            Image.fromarray(arr).save(root / cls / f"{cls}_{i}{suffix}")
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "loose.png")
    (root / ".hidden.png").write_bytes(b"not scanned")
    (root / "notes.txt").write_text("not an image")
    return root


def _outputs(h, layer: str, x01: np.ndarray) -> np.ndarray:
    """The layer's outputs for model-fitted images in [0, 1], in batches of BATCH (the scan's batching)."""
    from engine.activations import run_model

    sub = h.submodel([layer])
    parts = [
        run_model(sub, to_model_range(x01[i : i + BATCH], h.scaling))[0] for i in range(0, len(x01), BATCH)
    ]
    return np.concatenate(parts).astype(np.float32)


def _brute_topk(out: np.ndarray, k: int, ids: np.ndarray | None = None):
    """Per channel the k best images by spatial max (ties: lower id), and the peak's flat position."""
    n = len(out)
    flat = out.reshape(n, -1, out.shape[-1])
    mx, pos = flat.max(axis=1), flat.argmax(axis=1)
    ids = np.arange(n) if ids is None else ids
    top_ids, top_vals, top_pos = [], [], []
    for c in range(out.shape[-1]):
        order = np.lexsort((ids, -mx[:, c].astype(np.float64)))[:k]
        top_ids.append(ids[order])
        top_vals.append(mx[order, c])
        top_pos.append(pos[order, c])
    return np.array(top_ids), np.array(top_vals), np.array(top_pos)


# ----- running top-k ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_running_topk_equals_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n, c, k = 97, 5, 7
    values = rng.integers(0, 6, (n, c)).astype(np.float32)  # many ties
    values[rng.random((n, c)) < 0.05] = np.nan
    pos = rng.integers(0, 50, (n, c))
    ids = rng.permutation(n)  # arrival order does not matter
    top = RunningTopK(c, k)
    start = 0
    while start < n:
        stop = min(n, start + int(rng.integers(1, 20)))
        top.update(ids[start:stop], values[start:stop], pos[start:stop])
        start = stop
    clean = np.nan_to_num(values, nan=-np.inf)
    for ch in range(c):
        order = np.lexsort((ids, -clean[:, ch].astype(np.float64)))[:k]
        assert top.ids[ch].tolist() == ids[order].tolist()
        np.testing.assert_array_equal(top.values[ch], clean[order, ch])
        np.testing.assert_array_equal(top.pos[ch], pos[order, ch])


def test_running_topk_fewer_images_than_k():
    top = RunningTopK(2, 5)
    top.update(np.array([3, 1]), np.array([[1.0, 2.0], [1.0, 0.5]]), np.zeros((2, 2), int))
    assert top.ids.tolist() == [[1, 3, -1, -1, -1], [3, 1, -1, -1, -1]]
    assert np.isneginf(top.values[:, 2:]).all()


# ----- the scan vs a brute-force sort -------------------------------------------------------


@pytest.mark.parametrize("layer", ["conv1", "conv2", "fc"])
def test_scan_topk_equals_brute_force_sort(tiny, array_source, arrays, layer):
    images, _ = arrays
    result = scan(tiny, array_source, layer, k=6, batch_size=BATCH, cache=False)
    out = _outputs(tiny, layer, images.astype(np.float32) / 255.0)
    ids, vals, pos = _brute_topk(out, 6)
    np.testing.assert_array_equal(result.top_ids, ids)
    np.testing.assert_allclose(result.top_values, vals, rtol=1e-6, atol=1e-6)
    width = out.shape[2] if out.ndim == 4 else 1
    np.testing.assert_array_equal(result.top_y, pos // width)
    np.testing.assert_array_equal(result.top_x, pos % width)
    assert result.done == result.total == len(images) and not result.skipped
    assert result.kind == ("dense" if layer == "fc" else "spatial")
    # per-image strongest channel (by spatial max)
    peaks = out.reshape(len(out), -1, out.shape[-1]).max(axis=1)
    np.testing.assert_array_equal(result.strongest_channel, peaks.argmax(axis=1))
    np.testing.assert_allclose(result.strongest_value, peaks.max(axis=1), rtol=1e-6)


def test_scan_folder_equals_brute_force_and_labels_from_subfolders(tiny, folder):
    src = FolderSource(folder)
    assert src.class_names == ["cats", "dogs"]
    assert len(src) == 15 and src.name(0) == "cats/cats_0.jpg" and src.name(14) == "loose.png"
    assert src.labels.tolist() == [0] * 7 + [1] * 7 + [-1]
    result = scan(tiny, str(folder), "conv2", k=4, batch_size=4, cache=False)
    fitted = np.stack([fit_for_model(engine.load_image(p), tiny.input_shape) for p in src.paths])
    out = np.concatenate([_outputs(tiny, "conv2", fitted[i : i + 4]) for i in range(0, 15, 4)])
    ids, vals, _ = _brute_topk(out, 4)
    np.testing.assert_array_equal(result.top_ids, ids)
    np.testing.assert_allclose(result.top_values, vals, rtol=1e-5, atol=1e-6)
    assert result.labels.tolist() == src.labels.tolist()
    assert result.top_names[0, 0] == src.name(int(ids[0, 0]))


# ----- crops --------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["conv1", "pool1", "conv2"])
def test_crops_equal_the_receptive_field_box(tiny, array_source, arrays, layer):
    images, _ = arrays
    result = scan(tiny, array_source, layer, k=3, batch_size=BATCH, cache=False)
    rf = engine.receptive_field(tiny, layer)
    assert result.rf == (rf.size, rf.stride, rf.offset)
    assert result.crops is not None and result.crops.shape == (result.units, 3, *rf.size, 3)
    out = _outputs(tiny, layer, images.astype(np.float32) / 255.0)
    for c in range(result.units):
        for rank, hit in enumerate(result.hits(c)):
            # the hit is the cell where the unit peaked in that image
            assert out[hit.image_id, hit.y, hit.x, c] == pytest.approx(hit.value, rel=1e-6, abs=1e-6)
            top, left, bottom, right = rf.box(hit.y, hit.x)
            t, lft, b, r = rf.box_clipped(hit.y, hit.x, (16, 16))
            assert hit.box == (t, lft, b, r)
            crop = result.crops[c, rank]
            inside = crop[t - top : b - top, lft - left : r - left]
            np.testing.assert_array_equal(inside, images[hit.image_id, t:b, lft:r])
            mask = np.ones(rf.size, bool)
            mask[t - top : b - top, lft - left : r - left] = False
            assert (crop[mask] == PAD_VALUE).all()
            # crops loaded back from the source are the same
        np.testing.assert_array_equal(result.crops_of(c), result.crops[c])
    # a result too large to keep its crops loads them from the source: the same pixels
    import dataclasses

    without = dataclasses.replace(result, crops=None)
    np.testing.assert_array_equal(without.crops_of(1), result.crops[1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.crops = None  # results are immutable
    with pytest.raises(ValueError):
        result.top_values[0, 0] = 1.0  # and so are their arrays


def test_extract_crop_pads_outside_the_image():
    from engine.receptive_field import ReceptiveField

    rf = ReceptiveField(size=(5, 5), stride=(2, 2), offset=(-2, -2))
    img = np.arange(36, dtype=np.uint8).reshape(6, 6, 1)
    crop = extract_crop(img, rf, 0, 0)
    assert crop.shape == (5, 5, 1)
    assert (crop[:2] == PAD_VALUE).all() and (crop[:, :2] == PAD_VALUE).all()
    np.testing.assert_array_equal(crop[2:, 2:], img[:3, :3])


def test_dense_layer_hits_are_whole_images_and_class_grids(tiny, array_source, arrays):
    images, labels = arrays
    result = scan(tiny, array_source, "fc", k=2, batch_size=BATCH, cache=False)
    assert result.rf is None and result.map_shape == ()
    hit = result.hits(0)[0]
    assert hit.box == (0, 0, 16, 16) and (hit.y, hit.x) == (0, 0)
    np.testing.assert_array_equal(result.crops[0, 0], images[hit.image_id])
    grids = result.class_grids()
    assert grids.shape == (3, 2, 3)  # 5 units in a 2x3 grid
    out = _outputs(tiny, "fc", images.astype(np.float32) / 255.0)
    np.testing.assert_allclose(grids[1].reshape(-1)[:5], out[labels == 1].mean(axis=0), rtol=1e-5, atol=1e-7)
    assert np.isnan(grids[:, -1, -1]).all()


# ----- class statistics ---------------------------------------------------------------------


def test_class_statistics_match_numpy(tiny, array_source, arrays):
    images, labels = arrays
    result = scan(tiny, array_source, "conv2", k=3, batch_size=BATCH, cache=False)
    out = _outputs(tiny, "conv2", images.astype(np.float32) / 255.0).astype(np.float64)
    flat = out.reshape(len(out), -1, out.shape[-1])
    per_image = {"mean": flat.mean(axis=1), "max": flat.max(axis=1)}
    for stat, values in per_image.items():
        stats = result.class_stats(stat)
        assert stats.class_names == ("a", "b", "c")
        for cls in range(3):
            rows = values[labels == cls]
            assert stats.count[cls] == len(rows)
            np.testing.assert_allclose(stats.mean[cls], rows.mean(axis=0), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(stats.std[cls], rows.std(axis=0), rtol=1e-5, atol=1e-9)
        overall = result.overall_stats(stat)
        np.testing.assert_allclose(overall.mean[0], values.mean(axis=0), rtol=1e-6, atol=1e-9)
    # the most separating channels of two classes: standardized mean difference, sorted by |d|
    va, vb = per_image["mean"][labels == 0], per_image["mean"][labels == 2]
    d = (va.mean(0) - vb.mean(0)) / np.sqrt((va.std(0) ** 2 + vb.std(0) ** 2) / 2)
    sep = result.separating("a", "c")
    np.testing.assert_allclose(sep.d, d[sep.channels], rtol=1e-5)
    assert list(sep.channels) == list(np.argsort(-np.abs(d), kind="stable"))
    assert result.separating(0, 2, n=2).channels.tolist() == sep.channels[:2].tolist()
    with pytest.raises(EngineError):
        result.separating("a", "a")
    with pytest.raises(EngineError):
        result.separating("a", "zebra")


def test_class_examples_and_strongest_maps(tiny, array_source, arrays):
    from engine.dataset import class_examples, strongest_maps

    images, labels = arrays
    result = scan(tiny, array_source, "conv2", k=3, batch_size=BATCH, cache=False)
    ex = class_examples(tiny, array_source, "conv2", result.labels, [0, 2], [4, 1], per_class=3)
    assert ex["ids"].tolist() == [
        np.flatnonzero(labels == 0)[:3].tolist(),
        np.flatnonzero(labels == 2)[:3].tolist(),
    ]
    assert ex["maps"].shape == (2, 3, 2, 7, 7) and ex["images"].shape == (2, 3, 16, 16, 3)
    i = int(ex["ids"][1, 2])
    fm = engine.feature_maps(tiny, images[i].astype(np.float32) / 255.0, ["conv2"])["conv2"]
    np.testing.assert_allclose(ex["maps"][1, 2, 0], fm[..., 4], rtol=1e-5, atol=1e-6)
    got = strongest_maps(tiny, [images[i].astype(np.float32) / 255.0], "conv2")[0]
    assert got.channel == int(fm.reshape(-1, 6).max(0).argmax()) == result.strongest_channel[i]
    np.testing.assert_allclose(got.map, fm[..., got.channel], rtol=1e-5, atol=1e-6)


# ----- corrupt files ------------------------------------------------------------------------


def test_corrupt_image_is_skipped_and_reported(tiny, folder, tmp_path):
    import shutil

    root = tmp_path / "set"
    shutil.copytree(folder, root)
    (root / "cats" / "cats_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = (root / "dogs" / "dogs_0.jpg").read_bytes()
    (root / "dogs" / "dogs_truncated.jpg").write_bytes(good[: len(good) // 3])
    src = FolderSource(root)
    broken = src.name(src.paths.index(root / "cats" / "cats_broken.png"))
    events: list[Progress] = []
    result = scan(tiny, src, "conv2", k=3, batch_size=4, progress=events.append)
    assert result.done == result.total == 17
    skipped = dict(result.skipped)
    broken_id = [i for i in range(len(src)) if src.name(i) == broken][0]
    assert broken_id in skipped and "cats_broken.png" in skipped[broken_id]
    assert all("\n" not in m for m in skipped.values())
    assert broken_id not in result.top_ids
    assert result.labels[broken_id] == -1 and result.strongest_channel[broken_id] == -1
    # the remaining images were all scanned and counted in the class statistics
    scanned = result.total - len(result.skipped)
    assert result.overall_stats().count[0] == scanned
    assert events[-1].step == 17 and "images/s" in events[-1].message


# ----- cancel and resume --------------------------------------------------------------------


def _assert_same_result(a: ScanResult, b: ScanResult) -> None:
    for name in (
        "top_ids",
        "top_values",
        "top_y",
        "top_x",
        "top_names",
        "labels",
        "strongest_channel",
        "crops",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.strongest_value, b.strongest_value)
    for stat in ("mean", "max"):
        sa, sb = a.class_stats(stat), b.class_stats(stat)
        np.testing.assert_array_equal(sa.count, sb.count)
        np.testing.assert_allclose(sa.mean, sb.mean, rtol=1e-12)
        np.testing.assert_allclose(sa.std, sb.std, rtol=1e-9, atol=1e-12)
    assert a.skipped == b.skipped and a.done == b.done


def test_cancel_and_resume_give_the_same_result_as_one_run(tiny, folder, arrays, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "set"
    shutil.copytree(folder, root)
    (root / "dogs" / "dogs_broken.png").write_bytes(b"nope")
    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "one"))
    one = scan(tiny, root, "conv2", k=4, batch_size=3)

    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "two"))
    token = CancelToken()
    steps: list[int] = []

    def cancel_after_two(event: Progress) -> None:
        steps.append(event.step)
        if event.step >= 6:
            token.cancel()

    with pytest.raises(Cancelled):
        scan(tiny, root, "conv2", k=4, batch_size=3, token=token, progress=cancel_after_two)
    partial = list((tmp_path / "two" / "scans").glob("*.partial.npz"))
    assert len(partial) == 1 and max(steps) < 16
    resumed_steps: list[int] = []
    again = scan(tiny, root, "conv2", k=4, batch_size=8, progress=lambda e: resumed_steps.append(e.step))
    assert resumed_steps[0] == max(steps) > 0  # it resumed (with the checkpoint's batch size), not restarted
    assert not list((tmp_path / "two" / "scans").glob("*.partial.npz"))
    _assert_same_result(one, again)


def test_cancel_through_the_job_runner_then_resume(tiny_cnn_path, arrays, tmp_path):
    images, labels = arrays
    src = ArraySource(images, labels, ["a", "b", "c"], spec="job-arrays")
    one = scan(engine.load_model(tiny_cnn_path), src, "conv1", k=3, batch_size=16, cache=False)
    params = ScanParams(model=str(tiny_cnn_path), source=src, layer="conv1", k=3, batch_size=16)
    token = CancelToken()
    events = []
    for event in run(params.request(), token):
        events.append(event)
        if isinstance(event, Progress) and event.step >= 48:
            token.cancel()
    assert isinstance(events[-1], Finished) and events[-1].reason == "cancelled"
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].total == 150 and "images/s" in progress[-1].message
    events = list(run(params.request()))
    assert isinstance(events[-1], Finished) and events[-1].reason == "done"
    first = next(e for e in events if isinstance(e, Progress))
    assert first.step == 48
    _assert_same_result(one, events[-1].result)


# ----- the disk cache -----------------------------------------------------------------------


def test_results_are_cached_on_disk_and_reopen_instantly(tiny, folder, tmp_path):
    assert scan(tiny, folder, "conv2", k=3, cache_only=True) is None  # a lookup never scans
    assert not scan_cache.scans_dir().exists() or not list(scan_cache.scans_dir().glob("*.npz"))
    first = scan(tiny, folder, "conv2", k=3)
    files = list(scan_cache.scans_dir().glob("*.npz"))
    assert len(files) == 1 and not first.from_cache
    with np.load(files[0], allow_pickle=False) as npz:  # plain arrays only
        meta = json.loads(str(npz["__meta__"]))
    assert meta["layer"] == "conv2" and meta["source"] == str(folder)
    events = []
    second = scan(tiny, folder, "conv2", k=3, progress=events.append)
    assert second.from_cache and len(events) == 1 and "cache" in events[0].message
    assert scan(tiny, folder, "conv2", k=3, cache_only=True).from_cache
    _assert_same_result(first, second)
    # another layer, another k, or a changed dataset are different entries
    scan(tiny, folder, "conv1", k=3)
    scan(tiny, folder, "conv2", k=2)
    assert len(list(scan_cache.scans_dir().glob("*.npz"))) == 3
    loaded = ScanResult.load(files[0])
    assert loaded.hits(0)[0] == first.hits(0)[0]


def test_cache_key_follows_model_file_and_dataset(tiny, tiny_cnn_path, folder, tmp_path):
    import os
    import shutil

    root = tmp_path / "set"
    shutil.copytree(folder, root)
    key = scan_cache.scan_key(tiny, "conv2", 9, open_source(root).identity())
    assert key == scan_cache.scan_key(tiny, "conv2", 9, open_source(root).identity())
    target = root / "cats" / "cats_1.png"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert key != scan_cache.scan_key(tiny, "conv2", 9, open_source(root).identity())
    (root / "dogs" / "dogs_0.jpg").unlink()
    assert len(open_source(root)) == 14
    assert scan_cache.model_identity(tiny)["file"][0] == str(Path(tiny_cnn_path).resolve())


def test_in_memory_model_is_keyed_by_its_weights(tiny_cnn_path):
    import keras

    from engine.models import ModelHandle

    a = ModelHandle(keras.saving.load_model(tiny_cnn_path), name="m", spec="keras:none")
    b = ModelHandle(keras.saving.load_model(tiny_cnn_path), name="m", spec="keras:none")
    assert scan_cache.model_identity(a, "conv2") == scan_cache.model_identity(b, "conv2")
    w = b.model.get_layer("conv1").get_weights()
    b.model.get_layer("conv1").set_weights([w[0] + 1, w[1]])
    assert scan_cache.model_identity(a, "conv2") != scan_cache.model_identity(b, "conv2")


# ----- sources ------------------------------------------------------------------------------


def test_sources_from_specs(folder, tmp_path):
    files = sorted(str(p) for p in (folder / "cats").glob("*"))
    listing = tmp_path / "list.txt"
    listing.write_text("# two cats\n" + "\n".join(files[:2]) + "\n")
    src = open_source(str(listing))
    assert isinstance(src, FileListSource) and len(src) == 2 and src.class_names == []
    assert len(open_source(files)) == len(files)
    assert len(open_source(files[0])) == 1
    shapes = open_source("builtin:shapes?n=6&seed=3")
    assert isinstance(shapes, ShapesSource) and len(shapes) == 6 and shapes.class_names[0] == "circle"
    img, label = shapes.load(4)
    from engine.zoo import shapes as gen

    ref = gen.generate(6, 3)
    np.testing.assert_array_equal((img * 255).round().astype(np.uint8), ref.images[4])
    assert label == ref.labels[4]
    assert shapes.identity() != open_source("builtin:shapes?n=6&seed=4").identity()
    for bad in ("builtin:nope", str(tmp_path / "missing"), "builtin:shapes?n=x", "builtin:digits?size=3"):
        with pytest.raises(EngineError):
            open_source(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EngineError, match="no images"):
        open_source(empty)


def test_scan_generated_shapes_source(tiny):
    result = scan(tiny, "builtin:shapes?n=10&seed=5", "conv2", k=2, batch_size=4, cache=False)
    assert result.done == 10 and result.class_names == ("circle", "square", "triangle", "star")
    assert set(result.labels.tolist()) <= {0, 1, 2, 3}
    assert result.class_stats().count.sum() == 10


def test_builtin_digits_source():
    try:
        src = open_source("builtin:digits?n=50")
    except EngineError as exc:
        pytest.skip(f"digit data not available yet: {exc}")
    assert len(src) == 50 and src.class_names == [str(i) for i in range(10)]
    img, label = src.load(0)
    assert img.shape == (28, 28, 1) and 0 <= label <= 9


def test_bad_requests_raise_one_line_errors(tiny, array_source):
    with pytest.raises(LayerNotFound):
        scan(tiny, array_source, "nope", cache=False)
    with pytest.raises(EngineError, match="k must"):
        scan(tiny, array_source, "conv2", k=0, cache=False)
    with pytest.raises(EngineError):
        scan(tiny, "/no/such/folder", "conv2", cache=False)
    events = list(run(ScanParams(model="builtin:nothing", source=array_source, layer="conv2").request()))
    assert events[-1].__class__.__name__ == "Failed" and "\n" not in events[-1].message


def test_scan_iter_yields_progress_with_rate(tiny, array_source):
    gen = scan_iter(tiny, array_source, "conv2", k=2, batch_size=50, cache=False)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert [e.step for e in events] == [0, 50, 100, 150]
    assert all(e.total == 150 for e in events)
    assert "images/s" in events[-1].message and result.done == 150


def test_unit_grid_figure(tiny, array_source):
    result = scan(tiny, array_source, "conv2", k=4, batch_size=BATCH, cache=False)
    fig = result.unit_grid([0, 1, 2], cols=3, cell=20)
    assert fig.dtype == np.uint8 and fig.ndim == 3 and fig.shape[2] == 3
    assert fig.shape[1] > 3 * 2 * 20
    with pytest.raises(EngineError):
        result.unit_grid([99])


def test_unit_grid_columns_follow_the_pane(tiny, array_source):
    from engine.dataset.topk import render_units_layout

    result = scan(tiny, array_source, "conv2", k=4, batch_size=BATCH, cache=False)
    _, square = render_units_layout(result, cell=20)
    _, wide = render_units_layout(result, cell=20, fit=(200, 2000))
    _, tall = render_units_layout(result, cell=20, fit=(2000, 200))
    assert tall.geometry.cols < square.geometry.cols < wide.geometry.cols
    # the chosen columns show a tile at least as large as the near-square default does in that pane
    for fit, layout in (((200, 2000), wide), ((2000, 200), tall)):
        shown = min(fit[0] / layout.geometry.height, fit[1] / layout.geometry.width)
        default = min(fit[0] / square.geometry.height, fit[1] / square.geometry.width)
        assert shown >= default
