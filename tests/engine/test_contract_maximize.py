"""The maximization contract (engine.maximize.contract) cannot drift from the engine functions it feeds.

MaximizeParams / DreamParams pass their fields through to engine.maximize.run.maximize and
engine.maximize.deepdream.dream as keyword arguments: names and defaults must match the
functions' signatures. The result dataclasses must name every key the last Step's info holds.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import MISSING, fields

import numpy as np
import pytest

from engine.errors import EngineError
from engine.maximize.contract import (
    DreamOutput,
    DreamParams,
    MaximizeOutput,
    MaximizeParams,
    UnitActivityParams,
)

# arguments the handlers supply themselves: the model, the objective or photo, and the job's token
# (also the live control: pause, resume, lr_scale)
_SUPPLIED = {"h", "token", "control"}


def _defaults(cls: type, skip: set[str]) -> dict[str, object]:
    return {f.name: f.default for f in fields(cls) if f.name not in skip}


def _signature(fn, skip: set[str]) -> dict[str, object]:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if n not in skip}


def test_maximize_params_mirror_the_signature_of_maximize():
    from engine.maximize.run import maximize

    params = _defaults(MaximizeParams, set(MaximizeParams.job_fields))
    assert params == _signature(maximize, _SUPPLIED | {"objective"})
    assert "objective" in inspect.signature(maximize).parameters
    assert set(MaximizeParams().run_kwargs()) == set(params)


def test_dream_params_mirror_the_signature_of_dream():
    from engine.maximize.deepdream import dream

    params = _defaults(DreamParams, set(DreamParams.job_fields))
    assert params == _signature(dream, _SUPPLIED | {"img", "layers"})
    assert {"img", "layers"} <= set(inspect.signature(dream).parameters)
    assert set(DreamParams().run_kwargs()) == set(params)


def test_unit_activity_defaults_match_the_engine():
    from engine.maximize.units import iter_unit_activity, natural_source

    p = UnitActivityParams()
    assert p.batch == inspect.signature(iter_unit_activity).parameters["batch"].default
    assert p.n == inspect.signature(natural_source).parameters["n"].default
    assert all(f.default is not MISSING for f in fields(UnitActivityParams))


def test_parse_refuses_unknown_keys_and_the_old_control_param():
    with pytest.raises(EngineError, match="unknown parameter.*control"):
        MaximizeParams.parse({"objective": "conv1:0", "control": object()})
    with pytest.raises(EngineError, match="unknown parameter.*octave\\b"):
        DreamParams.parse({"layers": "c2", "octave": 3})
    p = MaximizeParams.parse({"objective": "conv1:0", "steps": 5})
    assert p.steps == 5 and p.request("maximize").kind == "maximize"


def test_params_and_objectives_are_free_of_tensorflow():
    code = (
        "import sys, engine.maximize.contract, engine.maximize.objective_terms, engine.maximize.optimizers;"
        "print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_outputs_refuse_keys_they_do_not_name():
    with pytest.raises(TypeError, match="no field"):
        MaximizeOutput.of(images=np.zeros((1, 8, 8, 3)), brand_new=1)
    out = DreamOutput.of(images=np.zeros((1, 8, 8, 3)), losses=[1.0, 2.0])
    assert out.losses == (1.0, 2.0)


def test_maximize_output_names_every_key_of_the_last_step(tiny_cnn_path):
    """A neuron run (changed boxes, crops, receptive fields), a class run (predictions) and a
    first-layer channel run (analytic) through the job: each typed result holds its extras."""
    import engine.maximize.jobs  # noqa: F401 - registers the kinds
    from engine.jobs import run_sync
    from engine.maximize.objective_terms import channel, class_logit, neuron

    model = str(tiny_cnn_path)
    common = {"model": model, "steps": 3, "every": None}
    cls = run_sync(MaximizeParams(objective=class_logit(1), **common).request())
    assert isinstance(cls, MaximizeOutput) and len(cls.predictions) == 1 and cls.report
    cell = run_sync(MaximizeParams(objective=neuron("conv2", 0, 2, 2), **common).request())
    assert len(cell.changed_boxes) == 1 and len(cell.crops) == 1
    first = run_sync(MaximizeParams(objective=channel("conv1", [0, 1]), **common).request())
    assert first.analytic is not None and len(first.analytic) == 2
    assert first.objectives == ("conv1:0", "conv1:1") and len(first.rose) == 2
