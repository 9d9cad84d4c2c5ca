"""The dataset jobs' typed contract: params mirror the engine's, results are frozen dataclasses.

ScanParams declares the scan's defaults once: its scan fields must be ScanRequest's, under the
same names with the same defaults, and the handler passes exactly those through. The other kinds'
defaults are checked against the functions they feed. Real tiny Keras model (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest

from engine.dataset import ArraySource, ScanRequest, ScanResult, scan, scan_iter
from engine.dataset import contract as dc
from engine.errors import EngineError
from engine.jobs import Failed, Request, run, run_sync


@pytest.fixture(scope="module")
def source():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(24) % 3
    return ArraySource(images, labels, ["a", "b", "c"], spec="contract-arrays")


@pytest.fixture(scope="module")
def scanned(tiny_cnn_path, source):
    params = dc.ScanParams(
        source=source, layer="conv2", k=3, batch_size=8, cache=False, model=str(tiny_cnn_path)
    )
    return run_sync(params.request())


# ----- params mirror the engine -------------------------------------------------------------------


def test_scan_params_mirror_scan_request():
    request_fields = {f.name: f for f in fields(ScanRequest)}
    assert set(dc.SCAN_REQUEST_FIELDS) == {f.name for f in fields(dc.ScanParams)} - {"model"}
    for name in dc.SCAN_REQUEST_FIELDS:
        assert name in request_fields, f"ScanParams.{name} is not a ScanRequest field"
        want = request_fields[name].default
        if want is not dataclasses.MISSING:
            assert dc.ScanParams.__dataclass_fields__[name].default == want, name
    # what ScanRequest requires, ScanParams carries (the handler checks it is given)
    required = {n for n, f in request_fields.items() if f.default is dataclasses.MISSING}
    assert required <= set(dc.SCAN_REQUEST_FIELDS)
    # scan() and scan_iter() take k with the same default
    for fn in (scan, scan_iter):
        assert inspect.signature(fn).parameters["k"].default == dc.ScanParams.k


def test_compare_and_maps_params_mirror_the_functions_they_feed():
    from engine.dataset.jobs import strongest_maps_of
    from engine.dataset.stats import class_examples

    assert inspect.signature(class_examples).parameters["per_class"].default == dc.ScanCompareParams.per_class
    assert inspect.signature(ScanResult.separating).parameters["stat"].default == dc.ScanCompareParams.stat
    assert inspect.signature(ScanResult.class_stats).parameters["stat"].default == dc.ScanCompareParams.stat
    assert "ids" in inspect.signature(strongest_maps_of).parameters


def test_params_are_frozen_make_requests_and_refuse_unknown_keys(tiny_cnn_path, source):
    p = dc.ScanParams(source="builtin:digits", layer="conv1")
    with pytest.raises(FrozenInstanceError):
        p.k = 3  # type: ignore[misc]
    request = p.request("dataset")
    assert request.kind == "scan" and request.owner == "dataset"
    assert dict(request.params) == {
        "source": "builtin:digits",
        "layer": "conv1",
        "k": 9,
        "batch_size": None,
        "cache": True,
        "resume": True,
        "cache_only": False,
        "runner": "local",
        "address": None,
        "workers": None,
        "model": None,
    }
    kinds = {cls.kind for cls in (dc.ScanParams, dc.ScanCropsParams, dc.ScanCompareParams, dc.ScanMapsParams)}
    assert kinds == {"scan", "scan_crops", "scan_compare", "scan_maps"}
    with pytest.raises(EngineError, match="unknown parameter.*chanels.*scan_crops"):
        dc.ScanCropsParams.parse({"chanels": [1]})
    bad = dict(dc.ScanParams(source=source, layer="conv2", model=str(tiny_cnn_path)).as_dict(), kk=3)
    events = list(run(Request("scan", bad)))
    assert isinstance(events[-1], Failed) and "kk" in events[-1].message and "\n" not in events[-1].message


def test_missing_source_or_layer_fail_with_one_line():
    for params in (dc.ScanParams(layer="conv1"), dc.ScanParams(source="builtin:digits")):
        events = list(run(params.request()))
        assert isinstance(events[-1], Failed) and "choose" in events[-1].message


# ----- results are typed ------------------------------------------------------------------------


def test_scan_returns_a_scan_result(scanned, source):
    assert isinstance(scanned, ScanResult)
    assert scanned.layer == "conv2" and scanned.k == 3 and scanned.done == len(source)
    # a cache-only lookup of a scan that was never cached answers None, without scanning
    assert (
        run_sync(
            dc.ScanParams(source=source, layer="conv2", k=3, cache_only=True, model=scanned.model).request()
        )
        is None
    )


def test_scan_crops_returns_unit_crops(scanned):
    crops = run_sync(dc.ScanCropsParams(result=scanned, channels=(1, 4)).request())
    assert isinstance(crops, dc.UnitCrops) and crops.channels == (1, 4)
    np.testing.assert_array_equal(crops.of(4), scanned.crops_of(4))
    with pytest.raises(KeyError):
        crops.of(0)


def test_scan_compare_returns_compare_output(tiny_cnn_path, scanned):
    from engine.dataset.figures import compare_figure

    out = run_sync(
        dc.ScanCompareParams(result=scanned, a="a", b="c", per_class=2, model=str(tiny_cnn_path)).request()
    )
    assert isinstance(out, dc.CompareOutput) and isinstance(out.examples, dc.ClassExamples)
    assert (out.separation.a, out.separation.b, out.top) == ("a", "c", 8)
    assert out.stats.stat == "mean"
    ex = out.examples
    assert ex.classes == (0, 2) and ex.channels == tuple(int(c) for c in out.separation.channels[:3])
    assert ex.ids.shape == (2, 2) and ex.maps.shape[:3] == (2, 2, 3)
    assert all(scanned.labels[i] == cls for row, cls in zip(ex.ids, ex.classes) for i in row)
    with pytest.raises(FrozenInstanceError):
        out.top = 3  # type: ignore[misc]
    fig = compare_figure(out, scanned.class_names)
    assert fig.dtype == np.uint8 and fig.ndim == 3


def test_scan_maps_returns_strongest_maps_equal_to_strongest_maps_of(tiny_cnn_path, scanned):
    import engine
    from engine.dataset.figures import maps_figure
    from engine.dataset.jobs import strongest_maps_of

    out = run_sync(dc.ScanMapsParams(result=scanned, ids=(0, 5, 7), model=str(tiny_cnn_path)).request())
    assert isinstance(out, dc.StrongestMaps) and out.ids == (0, 5, 7) and len(out) == 3
    assert len(out.images) == len(out.maps) == 3
    assert out.maps[1].channel == int(scanned.strongest_channel[5])
    direct = strongest_maps_of(engine.load_model(tiny_cnn_path), scanned, [0, 5, 7])
    for a, b in zip(out.maps, direct.maps):
        assert a.channel == b.channel
        np.testing.assert_allclose(a.map, b.map, rtol=1e-5, atol=1e-6)
    assert maps_figure(out).dtype == np.uint8


def test_the_contract_imports_without_tensorflow():
    code = (
        "import sys, engine.dataset.contract as c; c.ScanParams(source='x', layer='y').request(); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
