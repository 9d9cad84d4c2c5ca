"""Dataset scans on Ray (engine.dataset.cluster) give the local scan's answer.

A local Ray cluster started by the test (2 CPUs, no dashboard); the tiny .keras model of
tests/conftest.py, which the workers load from its bytes; a 300-image folder with one corrupt
file. Equality is exact: the same hits, values, class statistics and crops.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine
from engine.dataset import cache as scan_cache
from engine.dataset import scan
from engine.dataset.cluster import shard_batches
from engine.errors import Cancelled
from engine.jobs import CancelToken

LAYER = "conv2"
K = 4
BATCH = 10


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from engine.dataset import cluster

    cluster.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    cluster.shutdown()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVSCOPE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def folder300(tmp_path_factory) -> Path:
    """300 images in three class folders (sizes vary, some grey) plus one corrupt file."""
    root = tmp_path_factory.mktemp("set300")
    rng = np.random.default_rng(3)
    for i in range(300):
        cls = ("red", "green", "blue")[i % 3]
        (root / cls).mkdir(exist_ok=True)
        size = (16, 16) if i % 5 else (20, 24)
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        img[..., i % 3] = 255 - (i % 7) * 20  # a class-dependent channel, so classes differ
        Image.fromarray(img if i % 11 else img[..., 0]).save(root / cls / f"img{i:03d}.png")
    (root / "green" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


@pytest.fixture(scope="module")
def model(tiny_cnn_path):
    return engine.load_model(tiny_cnn_path)


@pytest.fixture(scope="module")
def local(model, folder300):
    return scan(model, str(folder300), LAYER, K, batch_size=BATCH, cache=False)


def assert_same(a, b) -> None:
    """Two scan results hold the same answer (hits, values, statistics, crops, skipped files)."""
    for name in ("top_values", "top_ids", "top_y", "top_x", "top_names", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.strongest_channel, b.strongest_channel)
    np.testing.assert_allclose(a.strongest_value, b.strongest_value, rtol=1e-6, equal_nan=True)
    for stat in a.moments:
        ma, mb = a.moments[stat], b.moments[stat]
        np.testing.assert_array_equal(ma.count, mb.count)
        np.testing.assert_allclose(ma.mean, mb.mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ma.std(), mb.std(), rtol=1e-9, atol=1e-12)
    assert a.skipped == b.skipped
    assert a.crops is not None and b.crops is not None
    np.testing.assert_array_equal(a.crops, b.crops)
    assert (a.done, a.total) == (b.done, b.total)


def _map_workers() -> list[int]:
    """PIDs of the Ray Data actor processes (their process title names the map operator)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "MapWorker" in cmd and "_ScanWorker" in cmd:
            pids.append(int(entry.name))
    return pids


def test_ray_scan_of_a_folder_equals_the_local_scan(ray_cluster, model, folder300, local):
    assert local.total == 301
    assert [msg for _, msg in local.skipped] == [
        "green/broken.png: not an image (or a format Convscope cannot read)"
    ]
    messages = []
    result = scan(
        model,
        str(folder300),
        LAYER,
        K,
        batch_size=BATCH,
        cache=False,
        runner="ray",
        workers=2,
        progress=lambda p: messages.append((p.step, p.message)),
    )
    assert_same(local, result)
    assert np.isfinite(result.top_values).all() and len(set(result.top_ids.ravel())) > K  # real hits
    # progress came from completed batches, in order, and said what Ray was doing meanwhile
    done = [d for d, _ in messages]
    shards = -(-31 // shard_batches(31, 2, BATCH, 4))  # 31 batches of 10 images, 3 classes + all, 2 workers
    assert done == sorted(done) and done[-1] == 301 and len({d for d in done if d}) == shards >= 6
    assert any("Ray worker" in m for _, m in messages) and any("images/s" in m for _, m in messages)


def test_ray_scan_survives_a_killed_worker(ray_cluster, model, folder300, local):
    killed: list[int] = []

    def progress(p) -> None:
        if not killed and 0 < p.step < p.total:
            pids = _map_workers()
            if pids:  # one actor dies mid-scan; Ray restarts it and retries its shard
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

    result = scan(
        model, str(folder300), LAYER, K, batch_size=5, cache=False, runner="ray", workers=2, progress=progress
    )
    assert killed, "no Ray worker process was found to kill"
    assert_same(local, result)


def test_ray_cancel_then_resume_equals_one_run(ray_cluster, model, folder300, local):
    token = CancelToken()
    seen = []

    def progress(p) -> None:
        if p.step and p.step not in seen:
            seen.append(p.step)
            if len(seen) == 3:
                token.cancel()

    with pytest.raises(Cancelled):
        scan(model, str(folder300), LAYER, K, batch_size=BATCH, runner="ray", token=token, progress=progress)
    partial = list(Path(scan_cache.scans_dir()).glob("*.partial.npz"))
    assert len(partial) == 1
    resumed_from = []
    result = scan(
        model,
        str(folder300),
        LAYER,
        K,
        batch_size=BATCH,
        runner="ray",
        progress=lambda p: resumed_from.append(p.step),
    )
    assert 0 < resumed_from[0] < 301  # it started from the checkpoint, not from image 0
    assert not list(Path(scan_cache.scans_dir()).glob("*.partial.npz"))
    assert_same(local, result)


def test_ray_scan_of_a_builtin_source_and_a_uri(ray_cluster, model, folder300):
    """Built-in sources are generated on the workers; file:// goes through pyarrow's filesystems."""
    spec = "builtin:shapes?n=40&seed=9&size=64"
    a = scan(model, spec, LAYER, K, batch_size=16, cache=False)
    b = scan(model, spec, LAYER, K, batch_size=16, cache=False, runner="ray", workers=1)
    assert_same(a, b)
    uri = folder300.as_uri()
    c = scan(model, uri, LAYER, K, batch_size=BATCH, cache=False, runner="ray", workers=2)
    d = scan(model, str(folder300), LAYER, K, batch_size=BATCH, cache=False)
    assert c.source == uri and c.total == d.total
    for name in ("top_values", "top_ids", "top_names"):
        np.testing.assert_array_equal(getattr(c, name), getattr(d, name))
    assert [m for _, m in c.skipped] == [m for _, m in d.skipped]


def test_cli_ray_writes_the_local_png_and_sidecar(ray_cluster, tiny_cnn_path, folder300, tmp_path):
    from engine.cli import main

    outs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "--workers", "2"])):
        out = tmp_path / f"{name}.png"
        args = ["export", "topk", "--model", str(tiny_cnn_path), "--source", str(folder300)]
        args += ["--layer", LAYER, "--k", str(K), "--batch-size", str(BATCH), "--no-cache", "--out", str(out)]
        assert main(args + extra) == 0
        outs[name] = out
    assert outs["local"].read_bytes() == outs["ray"].read_bytes()
    from engine.export import sidecar_path

    local, ray = (json.loads(sidecar_path(outs[n]).read_text()) for n in ("local", "ray"))
    for meta in (local, ray):  # when and where it was written, and how it was run
        meta.pop("created"), meta.pop("file")
    commands = [(meta.pop("command", None), meta["settings"].pop("command", None)) for meta in (local, ray)]
    assert local == ray  # every setting and every hit
    assert "--ray" in str(commands[1]) and "--ray" not in str(commands[0])
    assert local["settings"]["top"] and local["settings"]["skipped"]


def test_untrusted_model_stays_in_safe_mode_on_workers(tiny, tmp_path):
    """The package says trust=False, and unpacking loads the file in safe mode (engine.models)."""
    from engine.model_package import pack, unpack

    pkg = pack(tiny)
    assert pkg.trust is False and pkg.filename == "tiny.keras" and not pkg.folder
    h = unpack(pkg, tmp_path / "w")
    assert h.trusted is False and h.spec == tiny.spec and h.input_shape == tiny.input_shape
    x = np.random.default_rng(0).random((2, *tiny.input_shape), np.float32)
    np.testing.assert_allclose(h.model.predict(x, verbose=0), tiny.model.predict(x, verbose=0), rtol=1e-6)


def test_engine_import_does_not_import_ray():
    import subprocess
    import sys

    code = "import sys, engine, engine.dataset, engine.dataset.cluster; print('ray' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr[-500:]


def test_trust_travels_explicitly(tmp_path):
    """A file with code in it unpacks on a worker only when the package says the user trusted it."""
    import dataclasses

    import keras

    from engine.errors import UnsafeModel
    from engine.model_package import pack, unpack

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inp)
    out = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    trusted = engine.load_model(path, trust=True)
    pkg = pack(trusted)
    assert pkg.trust is True
    assert unpack(pkg, tmp_path / "ok").trusted is True
    with pytest.raises(UnsafeModel):
        unpack(dataclasses.replace(pkg, trust=False), tmp_path / "refused")


def test_the_scan_job_runs_on_ray(ray_cluster, tiny_cnn_path, folder300, local):
    """What the Dataset tab submits: ScanParams(runner="ray") through the engine's job runner."""
    from engine.dataset.contract import ScanParams
    from engine.jobs import Failed, Finished, Progress, run

    params = ScanParams(
        source=str(folder300),
        layer=LAYER,
        k=K,
        batch_size=BATCH,
        cache=False,
        runner="ray",
        workers=2,
        model=str(tiny_cnn_path),
    )
    events = list(run(params.request("dataset")))
    assert isinstance(events[-1], Finished), events[-1]
    assert any(isinstance(e, Progress) and "Ray" in e.message for e in events)
    assert_same(local, events[-1].result)
    bad = ScanParams(source=str(folder300), layer=LAYER, runner="spark", model=str(tiny_cnn_path))
    failed = list(run(bad.request("dataset")))[-1]
    assert isinstance(failed, Failed) and "unknown scan runner 'spark'" in failed.message


def test_cancel_while_workers_start_answers_at_once(ray_cluster, model, folder300):
    """Cancel does not wait for Ray's next shard: nothing was merged, so nothing is checkpointed."""
    token = CancelToken()

    def progress(p) -> None:
        if "Ray worker" in p.message:
            token.cancel()

    with pytest.raises(Cancelled):
        scan(model, str(folder300), LAYER, K, batch_size=BATCH, runner="ray", token=token, progress=progress)
    assert not list(Path(scan_cache.scans_dir()).glob("*.partial.npz"))
    again = scan(model, str(folder300), LAYER, K, batch_size=BATCH, runner="ray", workers=2)
    assert again.done == 301  # the cancelled run's actors do not block the next scan
