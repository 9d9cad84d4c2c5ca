"""Receptive-field arithmetic checked against empirical fields.

The empirical field of a cell is the bounding box of the input-gradient support
of that cell in a linear copy of the model (see rf_models.py); the computed
field clipped to the image must equal it exactly, for corner, centre and last
cells of every layer tested.
"""

from __future__ import annotations

import importlib

import keras
import pytest

from engine.errors import EngineError, LayerNotFound
from engine.receptive_field import ReceptiveField, field_of_tensor, receptive_field

try:
    from tests.engine import rf_models
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    import rf_models

layers = keras.layers


def check_against_gradients(model: keras.Model, targets: list, lin: keras.Model | None = None) -> None:
    """Computed box_clipped == empirical gradient-support box for probe cells of each target.

    targets: layer names, or ints indexing model.outputs (for keras.ops nodes that have no layer).
    """
    lin = lin if lin is not None else rf_models.linear_copy(model)
    image_hw = tuple(model.inputs[0].shape[1:3])
    for target in targets:
        tensor = model.get_layer(target).output if isinstance(target, str) else model.outputs[target]
        field = field_of_tensor(tensor)
        cells = rf_models.probe_cells(tuple(tensor.shape[1:3]))
        empirical = rf_models.empirical_boxes(lin, target, cells)
        computed = [field.box_clipped(y, x, image_hw) for y, x in cells]
        assert computed == empirical, f"{model.name}/{target}: {field} cells {cells}"


# ----------------------------------------------------------------------------- ReceptiveField


def test_box_and_clipping() -> None:
    rf = ReceptiveField(size=(7, 5), stride=(4, 2), offset=(-3, -1))
    assert rf.box(0, 0) == (-3, -1, 4, 4)
    assert rf.box(2, 3) == (5, 5, 12, 10)
    assert rf.box_clipped(0, 0, (10, 10)) == (0, 0, 4, 4)
    assert rf.box_clipped(2, 3, (10, 8)) == (5, 5, 10, 8)
    # a cell whose field lies wholly outside the image gets an empty box
    top, left, bottom, right = rf.box_clipped(5, 0, (10, 10))
    assert top == bottom == 10 and (left, right) == (0, 4)


def test_center_uses_pixel_centres() -> None:
    rf = ReceptiveField(size=(3, 4), stride=(2, 2), offset=(0, -1))
    # rows 0..2 -> centre of pixel 1 at 1.5; cols -1..2 -> edge between pixels 0 and 1 at 1.0
    assert rf.center(0, 0) == (1.5, 1.0)
    assert rf.center(1, 2) == (3.5, 5.0)


def test_field_is_frozen_and_comparable() -> None:
    rf = ReceptiveField((3, 3), (1, 1), (0, 0))
    assert rf == ReceptiveField(size=(3, 3), stride=(1, 1), offset=(0, 0))
    with pytest.raises(AttributeError):
        rf.size = (1, 1)  # type: ignore[misc]


# ----------------------------------------------------------------------------- 1. builtin:shapes


def test_shapes_stack_numbers_and_gradients() -> None:
    model = rf_models.shapes_model()
    conv4 = field_of_tensor(model.get_layer("conv4").output)
    assert conv4.size == (14, 14)
    assert conv4.stride == (2, 2)
    assert conv4.offset == (0, 0)
    assert field_of_tensor(model.get_layer("conv1").output) == ReceptiveField((3, 3), (1, 1), (0, 0))
    assert field_of_tensor(model.get_layer("pool1").output) == ReceptiveField((6, 6), (2, 2), (0, 0))
    assert field_of_tensor(model.get_layer("pool2").output) == ReceptiveField((16, 16), (4, 4), (0, 0))
    check_against_gradients(model, ["conv1", "conv2", "pool1", "conv3", "conv4", "pool2"])


def test_no_spatial_extent_after_flatten_and_dense() -> None:
    model = rf_models.shapes_model()
    for name in ("flatten", "dense1", "predictions"):
        with pytest.raises(EngineError, match="has no spatial extent"):
            field_of_tensor(model.get_layer(name).output)


def test_input_tensor_is_identity() -> None:
    model = rf_models.shapes_model()
    assert field_of_tensor(model.inputs[0]) == ReceptiveField((1, 1), (1, 1), (0, 0))


# ----------------------------------------------------------------------------- 2. 'same' stride 2


def test_same_padding_hand_computed() -> None:
    # even input: TF pads the single extra pixel after, so nothing shifts
    f32 = field_of_tensor(rf_models.same_stack(32).outputs[0])
    assert f32 == ReceptiveField(size=(31, 31), stride=(8, 8), offset=(-8, -8))
    # odd input: one pixel before at every stride-2 layer
    f33 = field_of_tensor(rf_models.same_stack(33).outputs[0])
    assert f33 == ReceptiveField(size=(31, 31), stride=(8, 8), offset=(-15, -15))
    # mixed parity per axis
    fmix = field_of_tensor(rf_models.same_stack((33, 32)).outputs[0])
    assert fmix == ReceptiveField(size=(31, 31), stride=(8, 8), offset=(-15, -8))


@pytest.mark.parametrize("size", [31, 32, 33, 64, (33, 32)])
def test_same_padding_stride2_matches_gradients(size: int | tuple[int, int]) -> None:
    check_against_gradients(rf_models.same_stack(size), ["c1", "c2", "c3", "p1"])


def test_nonsquare_kernels_and_strides_match_gradients() -> None:
    model = rf_models.nonsquare_model()
    check_against_gradients(model, ["a", "b", "c", "d"])
    b = field_of_tensor(model.get_layer("b").output)
    # a: (3, 5) kernel, stride (2, 1), 'same' on 31 x 40 -> pad before (1, 2); b: (1, 3) stride (1, 3) valid
    assert b == ReceptiveField(size=(3, 7), stride=(2, 3), offset=(-1, -2))


def test_same_stride2_needs_known_input_size() -> None:
    inp = keras.Input((None, None, 1))
    out = layers.Conv2D(1, 3, strides=2, padding="same", name="s2")(inp)
    with pytest.raises(EngineError, match="unknown size"):
        field_of_tensor(out)
    # 'valid' and stride-1 'same' do not depend on the size
    ok = layers.Conv2D(1, 3, padding="same")(layers.Conv2D(1, 3, strides=2)(inp))
    assert field_of_tensor(ok) == ReceptiveField((7, 7), (2, 2), (-2, -2))


# ----------------------------------------------------------------------------- 3. dilation


def test_dilated_convs() -> None:
    model = rf_models.dilated_model()
    assert field_of_tensor(model.get_layer("d2").output) == ReceptiveField((5, 5), (1, 1), (0, 0))
    assert field_of_tensor(model.get_layer("d3").output) == ReceptiveField((11, 11), (1, 1), (-3, -3))
    assert field_of_tensor(model.get_layer("dw").output) == ReceptiveField((15, 17), (1, 1), (-5, -6))
    check_against_gradients(model, ["d2", "d3", "dw", "sep"])


# ----------------------------------------------------------------------------- 4. residual


def test_residual_block_union_matches_gradients() -> None:
    model = rf_models.residual_model()
    main = field_of_tensor(model.get_layer("b1_conv2").output)
    short = field_of_tensor(model.get_layer("b1_short").output)
    merged = field_of_tensor(model.get_layer("b1_add").output)
    assert main.stride == short.stride == merged.stride == (2, 2)
    assert main.offset != short.offset  # the strided 1x1 shortcut is centred off the main path
    for axis in range(2):
        assert merged.offset[axis] == min(main.offset[axis], short.offset[axis])
        end = max(main.offset[axis] + main.size[axis], short.offset[axis] + short.size[axis])
        assert merged.offset[axis] + merged.size[axis] == end
    # outputs 1 and 2 are an `x + y` keras.ops node and a Concatenate with a shifted copy
    check_against_gradients(model, ["stem", "b1_short", "b1_conv2", "b1_add", "b1_out", "b2_add", 1, 2])


def test_merge_of_different_strides_raises() -> None:
    model = rf_models.mismatched_model()
    with pytest.raises(EngineError, match="different strides"):
        field_of_tensor(model.outputs[0])


def test_squeeze_excitation_gate_is_global_context() -> None:
    inp = keras.Input((16, 16, 4))
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(inp)
    g = layers.GlobalAveragePooling2D(name="gap")(x)
    g = layers.Dense(8, activation="sigmoid", name="fc")(g)
    g = layers.Reshape((1, 1, 8), name="gate")(g)
    y = layers.Multiply(name="excite")([x, g])
    assert field_of_tensor(y) == field_of_tensor(x)
    for name in ("gap", "fc", "gate"):
        with pytest.raises(EngineError, match="no spatial extent"):
            field_of_tensor(keras.Model(inp, y).get_layer(name).output)
    with pytest.raises(EngineError, match="no spatial extent"):
        field_of_tensor(keras.ops.mean(x, axis=(1, 2), keepdims=True))


# ----------------------------------------------------------------------------- other graphs


def test_nested_model_and_sequential() -> None:
    inner_in = keras.Input((None, None, 4))
    inner_out = layers.Conv2D(4, 3, dilation_rate=2, name="inner_conv")(inner_in)
    inner = keras.Model(inner_in, inner_out, name="inner")
    inp = keras.Input((20, 20, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="outer_conv")(inp)
    y = inner(x)
    flat = layers.Conv2D(4, 3, dilation_rate=2)(x)
    assert field_of_tensor(y) == field_of_tensor(flat) == ReceptiveField((11, 11), (2, 2), (0, 0))

    seq = keras.Sequential(
        [keras.Input((12, 12, 1)), layers.Conv2D(2, 3, name="s1"), layers.MaxPooling2D(name="s2")]
    )
    assert field_of_tensor(seq.get_layer("s2").output) == ReceptiveField((4, 4), (2, 2), (0, 0))


def test_unsupported_layers_raise_clear_errors() -> None:
    inp = keras.Input((8, 8, 2))
    cases = {
        "Conv2DTranspose": layers.Conv2DTranspose(2, 3, strides=2, name="up_t")(inp),
        "UpSampling2D": layers.UpSampling2D(name="up")(inp),
    }
    for type_name, tensor in cases.items():
        with pytest.raises(EngineError, match=type_name):
            field_of_tensor(tensor)
    # an unknown operation that changes the spatial shape names its type
    sliced = keras.ops.reshape(inp, (-1, 4, 16, 2))
    with pytest.raises(EngineError, match="Reshape"):
        field_of_tensor(sliced)


def test_unknown_shape_preserving_op_is_pointwise() -> None:
    inp = keras.Input((10, 10, 2))
    x = layers.Conv2D(3, 3, name="c")(inp)
    y = keras.ops.tanh(layers.LayerNormalization()(layers.Rescaling(0.5)(x)))
    assert field_of_tensor(y) == field_of_tensor(x) == ReceptiveField((3, 3), (1, 1), (0, 0))


# ----------------------------------------------------------------------------- 5. keras.applications


@pytest.fixture(scope="module")
def mobilenet() -> keras.Model:
    return keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))


@pytest.fixture(scope="module")
def resnet() -> keras.Model:
    return keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))


@pytest.mark.slow
def test_mobilenet_v2_matches_gradients(mobilenet: keras.Model) -> None:
    assert field_of_tensor(mobilenet.get_layer("out_relu").output) == ReceptiveField(
        (491, 491), (32, 32), (-214, -214)
    )
    check_against_gradients(
        mobilenet,
        [
            "Conv1",
            "block_1_project_BN",
            "block_2_add",
            "block_6_depthwise",
            "block_13_expand_relu",
            "out_relu",
        ],
    )


@pytest.mark.slow
def test_resnet50_matches_gradients(resnet: keras.Model) -> None:
    assert field_of_tensor(resnet.get_layer("conv5_block3_out").output) == ReceptiveField(
        (483, 483), (32, 32), (-241, -241)
    )
    check_against_gradients(
        resnet,
        [
            "conv1_relu",
            "pool1_pool",
            "conv2_block1_out",
            "conv3_block1_out",
            "conv4_block6_out",
            "conv5_block3_out",
        ],
    )


# ----------------------------------------------------------------------------- 6. through a ModelHandle


def _engine_models():
    try:
        return importlib.import_module("engine.models")
    except ImportError:
        pytest.skip("engine.models is not importable yet")


def test_receptive_field_via_handle(tmp_path) -> None:
    models = _engine_models()
    path = tmp_path / "shapes.keras"
    rf_models.shapes_model().save(path)
    h = models.load_model(str(path))
    rf = receptive_field(h, "conv4")
    assert (rf.size, rf.stride, rf.offset) == ((14, 14), (2, 2), (0, 0))
    with pytest.raises(LayerNotFound):
        receptive_field(h, "no_such_layer")
    with pytest.raises(EngineError, match="^layer dense1 has no spatial extent$"):
        receptive_field(h, "dense1")
    engine = importlib.import_module("engine")
    assert engine.receptive_field(h, "pool1") == ReceptiveField((6, 6), (2, 2), (0, 0))


def test_engine_receptive_field_is_callable_after_submodule_import(tmp_path) -> None:
    """`import engine.receptive_field` rebinds engine.receptive_field to the module; it must stay callable."""
    models = _engine_models()
    import engine
    import engine.receptive_field  # noqa: F401  (binds the package attribute to the module)

    path = tmp_path / "tiny.keras"
    inp = keras.Input((9, 9, 1))
    keras.Model(inp, layers.Conv2D(1, 3, strides=2, name="c")(inp)).save(path)
    h = models.load_model(str(path))
    assert engine.receptive_field(h, "c") == ReceptiveField((3, 3), (2, 2), (0, 0))


def test_nested_model_path_via_handle(tmp_path) -> None:
    """A layer inside a nested model is measured from the outer input, with its actual input size."""
    models = _engine_models()
    inner_in = keras.Input((31, 31, 4))
    inner = keras.Model(
        inner_in, layers.Conv2D(4, 3, strides=2, padding="same", name="ic")(inner_in), name="inner"
    )
    inp = keras.Input((33, 33, 3))
    x = inner(layers.Conv2D(4, 3, name="oc")(inp))
    out = layers.Dense(2, name="head")(layers.GlobalAveragePooling2D(name="gap")(x))
    path = tmp_path / "nested.keras"
    keras.Model(inp, out).save(path)
    h = models.load_model(str(path))
    # oc: 3x3 valid -> 31x31; ic: 3x3 stride 2 'same' on odd 31 pads one pixel before
    assert receptive_field(h, "inner/ic") == ReceptiveField((5, 5), (2, 2), (-1, -1))
    with pytest.raises(EngineError, match="^layer gap has no spatial extent$"):
        receptive_field(h, "gap")
