"""The typed job contract: params dataclasses, ModelSummary, and the job handle's pause and step size."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import time
from dataclasses import FrozenInstanceError, fields

import numpy as np
import pytest

from engine import contract
from engine.errors import Cancelled, EngineError
from engine.jobs import CancelToken, Failed, Finished, Request, run, run_sync


def test_params_are_frozen_and_make_requests():
    p = contract.LoadModelParams("builtin:shapes")
    with pytest.raises(FrozenInstanceError):
        p.spec = "x"  # type: ignore[misc]
    request = p.request("model")
    assert request.kind == "load_model" and request.owner == "model"
    assert dict(request.params) == {"spec": "builtin:shapes", "trust": False, "scaling": None}
    assert contract.ReceptiveFieldParams(layer="conv1").request().kind == "receptive_field"
    assert contract.LayerParams(layer="conv1").request().kind == "filters"


def test_a_misspelt_name_fails_where_it_is_written():
    with pytest.raises(TypeError):
        contract.FeatureMapsParams(layer="conv1", imgae=None)  # type: ignore[call-arg]
    with pytest.raises(EngineError, match="unknown parameter.*layres.*feature_maps"):
        contract.FeatureMapsParams.parse({"layres": ["conv1"]})


def test_a_misspelt_key_in_a_plain_request_fails_with_one_message(tiny_cnn_path):
    image = np.zeros((8, 8, 3), np.float32)
    events = list(
        run(Request("feature_maps", {"model": str(tiny_cnn_path), "image": image, "layres": ["c"]}))
    )
    assert isinstance(events[-1], Failed) and events[-1].kind == "invalid_request"
    assert "layres" in events[-1].message and "\n" not in events[-1].message


def test_load_model_params_mirror_load_model():
    from engine.models import load_model

    sig = inspect.signature(load_model).parameters
    for f in fields(contract.LoadModelParams):
        assert f.name in sig, f.name
        if sig[f.name].default is not inspect.Parameter.empty:
            assert f.default == sig[f.name].default, f.name


def test_load_model_returns_a_model_summary(tiny_cnn_path):
    summary = run_sync(contract.LoadModelParams(str(tiny_cnn_path)).request())
    assert isinstance(summary, contract.ModelSummary)
    assert summary.spec == str(tiny_cnn_path) and summary.input_shape[-1] in (1, 3)
    assert summary.layers and summary.params > 0 and summary.device
    assert summary.default_cam_layer in {info.path for info in summary.layers}
    assert summary.class_name(0) == (summary.class_names[0] if summary.class_names else "0")
    maps = run_sync(
        contract.FeatureMapsParams(
            image=np.zeros((8, 8, 3), np.float32), layer=summary.layers[0].path
        ).request()
    )
    assert set(maps) == {summary.layers[0].path}
    probs = run_sync(contract.ImageParams(image=np.zeros((8, 8, 3), np.float32)).request())
    assert np.isclose(float(np.sum(probs)), 1.0, atol=1e-4)


def test_pause_holds_a_job_and_resume_lets_it_go():
    token = CancelToken()
    token.pause()
    done = threading.Event()

    def loop():
        token.wait()
        done.set()

    threading.Thread(target=loop, daemon=True).start()
    time.sleep(0.15)
    assert token.paused and not done.is_set()
    token.resume()
    assert done.wait(2)


def test_cancel_wakes_a_paused_job():
    token = CancelToken()
    token.pause()
    threading.Timer(0.05, token.cancel).start()
    with pytest.raises(Cancelled):
        token.wait()
    assert token.lr_scale == 1.0


def test_contract_imports_no_tensorflow():
    code = "import engine.contract, engine.jobs, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cancelled_job_is_finished_not_failed():
    token = CancelToken()
    token.cancel()
    events = list(run(Request("sleep", {"steps": 3}), token))
    assert isinstance(events[-1], Finished) and events[-1].reason == "cancelled"


def test_model_summary_still_answers_dict_style_scripts(tiny_cnn_path):
    summary = run_sync(contract.LoadModelParams(str(tiny_cnn_path)).request())
    assert summary.get("name") == summary.name and summary.get("nope", 3) == 3
