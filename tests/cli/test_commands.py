"""The commands that reproduce an export (engine.commands and the kinds' commands modules).

Each command is parsed by the CLI's own parser: its options land where the settings say, and
engine.cli.command_line (what the CLI writes in its own sidecar) of the parsed arguments
parses back to the same arguments, so the GUI's command and the CLI's agree. No TensorFlow:
parsing builds the parser only. That running a command writes the GUI's file byte for byte is
tests/gui/test_export_dialog.py's part.
"""

from __future__ import annotations

import shlex

import pytest

from engine.attribution.commands import cam_command, saliency_command, saliency_subject
from engine.cli import build_parser, command_line
from engine.commands import export_command, featuremaps_command, filters_command, number
from engine.errors import EngineError
from engine.maximize.commands import dream_command, maximize_command

MAXIMIZE = {
    "kind": "maximize",
    "model": "models/my model.keras",
    "scaling": "unit",
    "objective": "conv1:3",
    "objective_layer": "conv1",
    "layer_rank": 3,
    "steps": 200,
    "init": "noise",
    "seed": 7,
    "transforms": [["jitter", 4.0], ["rotate", 10.0], ["scale", 0.15]],
    "regularizers": [["blur", 0.5, 4], ["decay", 0.01]],
    "optimizer": "adam",
    "lr": 0.05,
    "schedule": "cosine",
    "param": "fourier",
    "pre_activation": None,
    "size": None,
}
DREAM = {
    "kind": "dream",
    "model": "builtin:shapes",
    "image": "builtin:shape_star",
    "layers": "conv2 + 0.5*conv3",
    "octaves": 3,
    "octave_scale": 1.3,
    "steps": 12,
    "lr": 0.02,
    "seed": 3,
    "size": 96,
}
CAM = {
    "kind": "cam",
    "model": "builtin:shapes",
    "image": "/photos/a b.png",
    "target": 2,
    "compare": 4,
    "layer": "conv4",
    "method": "scorecam",
    "mapping": "gaussian",
    "sigma": None,
    "batch_size": 32,
    "precision": "float32",
    "map_style": "signed",
    "cmap": "magma",
    "alpha": 0.37,
    "dim": 0.55,
}
SALIENCY = {
    "kind": "saliency",
    "model": "builtin:shapes",
    "image": "builtin:shape_star",
    "target": None,
    "layer": None,
    "method": "smoothgrad",
    "samples": 25,
    "noise": 0.15,
    "steps": 32,
    "batch_size": 16,
    "map_style": "relu",
    "cmap": "viridis",
    "alpha": 0.5,
    "dim": 0.55,
}


def parse(command: str):
    words = shlex.split(command)
    assert words[:3] == ["python", "main.py", "export"]
    return build_parser().parse_args(words[2:])


def agrees(command: str):
    """The parsed arguments; command_line() of them parses back to the same arguments."""
    args = parse(command)
    again = parse(command_line(args.kind, args))
    assert vars(again) == vars(args)
    return args


def test_numbers_come_back_exactly():
    for value in (4, 4.0, 0.37, 0.1 + 0.2, 1e-05, 1.4, 2**31 - 1):
        assert float(number(value)) == value
    assert number(4.0) == "4" and number(0.5) == "0.5" and number(7) == "7"


def test_maximize_of_a_channel_names_layer_and_channel():
    command = maximize_command(MAXIMIZE)
    args = agrees(command)
    assert (args.layer, args.channel, args.unit, args.objective) == ("conv1", "3", None, None)
    assert args.model == "models/my model.keras" and args.scaling == "unit"
    assert (args.steps, args.seed, args.init, args.lr) == (200, 7, "noise", 0.05)
    assert args.transforms == ["jitter:4", "rotate:10", "scale:0.15"]
    assert args.regularizers == ["blur:0.5:4", "decay:0.01"]
    assert (args.optimizer, args.schedule, args.param) == ("adam", "cosine", "fourier")
    assert not args.pre_activation and not args.post_activation and args.canvas is None
    assert args.out == "FILE.png" and not args.raw


@pytest.mark.parametrize(
    ("settings", "expect"),
    [
        ({"objective": "conv1:3@10,12"}, {"layer": "conv1", "channel": "3", "position": "10,12"}),
        ({"objective": "conv1:*"}, {"layer": "conv1", "channel": "*"}),
        ({"objective": "conv1"}, {"layer": "conv1", "channel": None}),
        (
            {"objective": "dense1:7", "objective_layer": "dense1", "layer_rank": 1},
            {"layer": "dense1", "unit": "7"},
        ),
        ({"objective": "class:3", "objective_layer": None}, {"objective": ["class:3"], "layer": None}),
        ({"objective": "conv1:5 - 0.1*conv1"}, {"objective": ["conv1:5 - 0.1*conv1"]}),
        ({"objective": "-conv1:5"}, {"objective": ["-conv1:5"]}),  # not taken for an option
        ({"objective": "conv1:2", "layer_rank": None}, {"objective": ["conv1:2"]}),  # rank unknown
        ({"objective": ["conv1:1", "conv1:2"]}, {"objective": ["conv1:1", "conv1:2"]}),
    ],
)
def test_maximize_objectives(settings, expect):
    args = parse(maximize_command({**MAXIMIZE, **settings}))
    for key, value in expect.items():
        assert getattr(args, key) == value, key
    if not str(settings["objective"]).startswith("-"):
        agrees(maximize_command({**MAXIMIZE, **settings}))


def test_maximize_start_activation_canvas_and_no_transforms():
    settings = {**MAXIMIZE, "init": "photo", "image": "builtin:shape_star", "pre_activation": False}
    args = agrees(maximize_command({**settings, "transforms": [], "size": 64}))
    assert args.init == "photo" and args.image == "builtin:shape_star" and args.post_activation
    assert args.transforms == [] and args.canvas == 64
    assert parse(maximize_command({**MAXIMIZE, "pre_activation": True})).pre_activation
    with pytest.raises(EngineError, match="image"):
        maximize_command({**settings, "image": None})
    with pytest.raises(EngineError, match="objective"):
        maximize_command({**MAXIMIZE, "objective": None})


def test_dream():
    args = agrees(dream_command(DREAM))
    assert args.layer == ["conv2 + 0.5*conv3"] and args.image == "builtin:shape_star"
    assert (args.octaves, args.octave_scale, args.steps, args.lr, args.seed, args.photo_size) == (
        3,
        1.3,
        12,
        0.02,
        3,
        96,
    )
    assert parse(dream_command({**DREAM, "size": None})).photo_size is None
    assert parse(dream_command({**DREAM, "layers": ["conv2", "conv3"]})).layer == ["conv2", "conv3"]


def test_cam_with_compare_and_scorecam():
    args = agrees(cam_command(CAM, figure=["--style", "slide", "--dpi", "192"]))
    assert (args.image, args.target, args.compare, args.layer) == ("/photos/a b.png", "2", "4", "conv4")
    assert (args.method, args.mapping, args.precision, args.batch_size) == (
        "scorecam",
        "gaussian",
        "float32",
        32,
    )
    assert (args.map_style, args.cmap, args.alpha, args.dim) == ("signed", "magma", 0.37, 0.55)
    assert (args.style, args.dpi, args.raw) == ("slide", 192.0, False)
    top1 = parse(cam_command({**CAM, "target": None, "compare": None, "method": "gradcam"}, raw=True))
    assert top1.target is None and top1.compare is None and top1.raw and top1.precision == "auto"


def test_saliency_writes_the_options_its_method_uses():
    args = agrees(saliency_command(SALIENCY))
    assert (args.method, args.target, args.samples, args.noise) == ("smoothgrad", None, 25, 0.15)
    assert "--steps" not in saliency_command(SALIENCY)
    integrated = saliency_command({**SALIENCY, "method": "integrated", "steps": 8, "target": 3})
    assert "--samples" not in integrated and parse(integrated).steps == 8 and parse(integrated).target == "3"
    layer = parse(saliency_command({**SALIENCY, "layer": "conv2", "layer_rank": 3, "target": 5}))
    assert (layer.layer, layer.channel, layer.target) == ("conv2", "5", None)


def test_featuremaps_filters_and_the_kind_dispatch():
    fm = {"kind": "featuremaps", "model": "m.keras", "image": "a.png", "layer": "conv1", "norm": "per_map"}
    args = agrees(featuremaps_command({**fm, "cmap": "gray", "cols": 4}))
    assert (args.layer, args.norm, args.cmap, args.cols) == ("conv1", "per_map", "gray", 4)
    filters = {
        "kind": "filters",
        "model": "m.keras",
        "layer": "conv1",
        "shared_scale": False,
        "max_filters": 64,
    }
    assert agrees(filters_command(filters)).scale == "per-filter"
    layout = {**filters, "cols": 4, "sections_per_row": 2}
    raw = agrees(filters_command(layout, raw=True))  # the raw grid keeps the tab's fixed layout
    assert (raw.cols, raw.sections_per_row, raw.raw) == (4, 2, True)
    assert parse(filters_command(layout)).cols is None  # the figure lays itself out, as the tab's does
    for settings in (fm, filters, MAXIMIZE, DREAM, CAM, SALIENCY):
        assert parse(export_command(settings, out="x.tif")).kind == settings["kind"]
    with pytest.raises(EngineError, match="no command"):
        export_command({"kind": "topk", "model": "m"})
    with pytest.raises(EngineError, match="no model"):
        export_command({**CAM, "model": None})


def test_saliency_subject_is_the_clis_title_text():
    probs = [0.1, 0.85, 0.05]
    assert saliency_subject(None, probs, ("circle", "star", "square")) == "star (1): p 0.85"
    assert saliency_subject(2, probs, ("circle", "star", "square")) == "square (2): p 0.05"
    assert saliency_subject(2, [0.5, 0.4999, 0.0001], ()) == "2: p <0.001"
    assert saliency_subject("circle", probs, ("circle", "star", "square")) == "circle (0): p 0.1"
    assert saliency_subject(None, None, (), layer="conv2") == "conv2 (mean)"
    assert saliency_subject(3, None, (), layer="conv2") == "conv2:3"


def test_command_line_writes_values_that_start_with_a_dash_so_they_parse_back():
    args = build_parser().parse_args(
        ["export", "maximize", "--model", "m.keras", "--objective=-conv1:5", "--lr", "0.5", "--out", "x.png"]
    )
    line = command_line("maximize", args)
    assert "--objective=-conv1:5" in line
    again = build_parser().parse_args(shlex.split(line)[2:])
    assert again.objective == ["-conv1:5"] and again.lr == 0.5
