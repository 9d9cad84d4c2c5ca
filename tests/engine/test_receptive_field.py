"""Receptive-field arithmetic checked against empirical fields.

The empirical field of a cell is the bounding box of the input-gradient support
of that cell in a linear copy of the model (see rf_models.py); the computed
field clipped to the image must equal it exactly, for corner, centre and last
cells of every layer tested.
"""

from __future__ import annotations

import dataclasses
import importlib

import keras
import pytest

from engine.errors import EngineError, LayerNotFound
from engine.receptive_field import GLOBAL_CONTEXT_NOTE, ReceptiveField, field_of_tensor, receptive_field

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


def check_global_against_gradients(model: keras.Model, targets: list[str], fill: float) -> None:
    """For layers fed by a global branch: whole-image gradient support, local box = support with it cut.

    fill: the constant input; it must keep activations O(1) through the multiplied gates (no underflow).
    """
    lin = rf_models.linear_copy(model)
    cut = rf_models.linear_copy(model, stop_global=True)
    image_hw = tuple(model.inputs[0].shape[1:3])
    whole = (0, 0, *image_hw)
    for target in targets:
        tensor = model.get_layer(target).output
        field = field_of_tensor(tensor)
        assert field.global_context, target
        cells = rf_models.probe_cells(tuple(tensor.shape[1:3]))
        assert rf_models.empirical_boxes(lin, target, cells, fill=fill) == [whole] * len(cells), target
        local = [field.box_clipped(y, x, image_hw) for y, x in cells]
        assert rf_models.empirical_boxes(cut, target, cells, fill=fill) == local, f"{target}: {field}"


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
    with pytest.raises(AttributeError):
        rf.global_context = True  # type: ignore[misc]


def test_global_context_flag_and_text() -> None:
    local = ReceptiveField((14, 14), (2, 2), (0, 0))
    wider = ReceptiveField((14, 14), (2, 2), (0, 0), True)
    assert local.global_context is False and wider.global_context is True
    assert local != wider  # same box, but one cell also sees the whole image
    assert repr(local) == "ReceptiveField(size=(14, 14), stride=(2, 2), offset=(0, 0))"
    assert repr(wider).endswith("global_context=True)")
    assert local.describe() == "14×14 px, stride 2"
    assert wider.describe() == "14×14 px, stride 2 plus global context"
    assert GLOBAL_CONTEXT_NOTE == "plus global context"
    assert ReceptiveField((3, 5), (1, 2), (0, 0)).describe() == "3×5 px, stride 1×2"
    # the box does not change with the flag
    assert wider.box(1, 2) == local.box(1, 2) and wider.center(3, 0) == local.center(3, 0)


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
    for name in ("conv1", "conv2", "pool1", "conv3", "conv4", "pool2"):
        assert not field_of_tensor(model.get_layer(name).output).global_context, name


def test_flatten_and_dense_see_the_whole_image() -> None:
    model = rf_models.shapes_model()
    whole = ReceptiveField((128, 128), (128, 128), (0, 0), global_context=True)
    lin = rf_models.linear_copy(model)
    for name in ("flatten", "dense1", "predictions"):
        assert field_of_tensor(model.get_layer(name).output) == whole, name
        # a vector is one cell: the support of all its units together (one Dense unit alone: the same)
        assert rf_models.empirical_boxes(lin, name, [(0, 0)]) == [whole.box_clipped(0, 0, (128, 128))]


def test_no_image_dependence_raises() -> None:
    """A tensor computed only from an input without spatial axes has no receptive field."""
    image = keras.Input((12, 12, 2))
    side = keras.Input((3,))
    s = layers.Dense(4, name="side_fc")(side)
    with pytest.raises(EngineError, match="does not depend on the input image"):
        field_of_tensor(s)
    # gating a map with it adds no global context: it does not depend on the image
    x = layers.Conv2D(4, 3, name="c")(image)
    y = layers.Multiply()([x, layers.Reshape((1, 1, 4))(s)])
    assert field_of_tensor(y) == field_of_tensor(x) == ReceptiveField((3, 3), (1, 1), (0, 0))


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
    local = field_of_tensor(x)
    assert not local.global_context
    assert field_of_tensor(y) == dataclasses.replace(local, global_context=True)
    # the gate depends on the whole image: a 1x1 map or a vector, one cell that sees everything
    whole = ReceptiveField((16, 16), (16, 16), (0, 0), global_context=True)
    model = keras.Model(inp, y)
    for name in ("gap", "fc", "gate"):
        assert field_of_tensor(model.get_layer(name).output) == whole, name
    mean = keras.ops.mean(x, axis=(1, 2), keepdims=True)
    assert field_of_tensor(mean) == whole
    # a reduction broadcast back (centring on the spatial mean) is global context too
    assert field_of_tensor(x - mean) == dataclasses.replace(local, global_context=True)
    # the flag propagates through later layers and merges
    z = layers.Conv2D(8, 3, padding="same", name="later")(y)
    assert field_of_tensor(z).global_context
    assert field_of_tensor(layers.Add()([layers.Conv2D(8, 3, padding="same")(x), z])).global_context


def test_se_block_matches_gradients() -> None:
    """After the gate every cell's gradient support is the whole image; the local box is the ungated path's."""
    model = rf_models.se_model()
    ungated = rf_models.se_model(excite=False)
    image_hw = (24, 24)
    whole = ReceptiveField(image_hw, image_hw, (0, 0), global_context=True)
    for name in ("c1", "c2"):
        assert not field_of_tensor(model.get_layer(name).output).global_context, name
    for name in ("se_squeeze", "se_reshape", "se_reduce", "se_expand"):
        assert field_of_tensor(model.get_layer(name).output) == whole, name
    for name in ("se_excite", "after"):
        field = field_of_tensor(model.get_layer(name).output)
        assert field.global_context, name
        # the local box is the field of the same layers without the gate, which has no global context
        same = field_of_tensor(ungated.get_layer("after" if name == "after" else "c2").output)
        assert not same.global_context
        assert dataclasses.replace(field, global_context=False) == same, name
    # the box of the ungated model is its gradient support (plain arithmetic, as above)
    check_against_gradients(ungated, ["c1", "c2", "after"])

    tensor = model.get_layer("after").output
    cells = rf_models.probe_cells(tuple(tensor.shape[1:3]))
    field = field_of_tensor(tensor)
    local = [field.box_clipped(y, x, image_hw) for y, x in cells]
    assert (0, 0, 24, 24) not in local  # so "whole image" below is not the local box by accident
    # the gated network: every probed cell depends on every input pixel through the gate, and with the
    # pooled branch cut off the gradient, the support is the local box
    check_global_against_gradients(model, ["se_excite", "after"], fill=1.0)
    lin = rf_models.linear_copy(model)
    assert rf_models.empirical_boxes(lin, "se_expand", [(0, 0)], fill=1.0) == [(0, 0, 24, 24)]
    assert rf_models.empirical_boxes(lin, "se_squeeze", [(0, 0)], fill=1.0) == [(0, 0, 24, 24)]


def test_attention_and_spatial_statistics_are_global() -> None:
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="c")(inp)
    local = field_of_tensor(x)
    glob = dataclasses.replace(local, global_context=True)
    # attention over all positions of the map: the query cell is local, keys and values global
    attn = layers.MultiHeadAttention(num_heads=1, key_dim=4, name="mha")(x, x)
    assert field_of_tensor(attn) == glob
    # attention over flattened positions, reshaped back and added to the map
    seq = layers.Reshape((64, 4), name="flat")(x)
    back = layers.Reshape((8, 8, 4), name="back")(layers.MultiHeadAttention(1, 4, name="mha_seq")(seq, seq))
    assert field_of_tensor(back) == ReceptiveField((8, 8), (0, 0), (0, 0), global_context=True)
    assert field_of_tensor(back).box_clipped(5, 2, (8, 8)) == (0, 0, 8, 8)  # every cell: the whole image
    assert field_of_tensor(layers.Add(name="residual")([x, back])) == glob
    # a Dense result reshaped to a map: every cell sees the whole image
    dense_map = layers.Reshape((2, 2, 3))(layers.Dense(12)(layers.Flatten()(x)))
    assert field_of_tensor(dense_map) == ReceptiveField((8, 8), (0, 0), (0, 0), global_context=True)
    # normalizations whose statistics span H and W; per-position ones stay local
    assert field_of_tensor(layers.GroupNormalization(groups=2)(x)) == glob
    assert field_of_tensor(layers.LayerNormalization(axis=(1, 2, 3))(x)) == glob
    assert field_of_tensor(layers.LayerNormalization()(x)) == local
    assert field_of_tensor(layers.BatchNormalization()(x)) == local

    # the gradient of a centre cell of the attention output reaches every input pixel
    model = keras.Model(inp, [attn, back], name="attention")
    for target in (0, 1):
        assert rf_models.empirical_boxes(model, target, [(4, 4)], fill=0.5) == [(0, 0, 8, 8)]


@pytest.mark.parametrize("mapping", ["roi", "gaussian", "center"])
def test_whole_image_fields_project_to_the_mean(mapping: str) -> None:
    """CAM projection through a whole-image field (stride 0 on a 2x3 map, the input size on a 1x1 map)."""
    import numpy as np

    from engine.attribution.projection import project, projection_matrices

    inp = keras.Input((8, 10, 2))
    x = layers.Conv2D(4, 3, name="c")(inp)
    dense_map = layers.Reshape((2, 3, 2))(layers.Dense(12)(layers.Flatten()(x)))
    gate = layers.Conv2D(2, 1)(layers.GlobalAveragePooling2D(keepdims=True)(x))
    cam = np.arange(6, dtype=np.float32).reshape(2, 3)
    for tensor, coarse in ((dense_map, cam), (gate, cam[:1, :1] + 7.0)):
        field = field_of_tensor(tensor)
        assert field.global_context and field.size == (8, 10)
        py, px = projection_matrices(field, coarse.shape, (8, 10), (16, 20), mapping)
        out = project(coarse, py, px)
        assert out.shape == (16, 20)
        np.testing.assert_allclose(out, np.full((16, 20), coarse.mean()), rtol=1e-6)


def test_whole_image_field_needs_known_input_size() -> None:
    inp = keras.Input((None, None, 2))
    x = layers.Conv2D(2, 3, name="c")(inp)
    with pytest.raises(EngineError, match="whole input, whose size is unknown"):
        field_of_tensor(layers.GlobalAveragePooling2D(name="gap")(x))
    # a local field with global context needs no size
    gated = x * layers.GlobalAveragePooling2D(keepdims=True)(x)
    assert field_of_tensor(gated) == ReceptiveField((3, 3), (1, 1), (0, 0), global_context=True)


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


def _se_inner(channels: int = 4) -> keras.Model:
    """A nested squeeze-and-excitation block on a map of any size."""
    inner_in = keras.Input((None, None, channels))
    x = layers.Conv2D(channels, 3, padding="same", name="ic")(inner_in)
    g = layers.GlobalAveragePooling2D(keepdims=True, name="isq")(x)
    g = layers.Conv2D(channels, 1, activation="sigmoid", name="iexp")(g)
    return keras.Model(inner_in, layers.Multiply(name="iexcite")([x, g]), name="inner_se")


def test_nested_se_block_sets_global_context() -> None:
    inp = keras.Input((20, 20, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="outer_conv")(inp)
    y = _se_inner()(x)
    z = layers.Conv2D(4, 3, name="outer_after")(y)
    flat_local = layers.Conv2D(4, 3, padding="same")(x)
    assert field_of_tensor(y) == dataclasses.replace(field_of_tensor(flat_local), global_context=True)
    assert field_of_tensor(z).global_context
    # a nested model handed the gate as an input: the seed carries the global context inside
    m_in, g_in = keras.Input((None, None, 4)), keras.Input((1, 1, 4))
    m = layers.Multiply(name="gated")([m_in, g_in])
    gated = keras.Model([m_in, g_in], layers.Conv2D(4, 3, padding="same", name="gc")(m), name="gated")
    out = gated([x, layers.GlobalAveragePooling2D(keepdims=True)(x)])
    assert field_of_tensor(out) == dataclasses.replace(field_of_tensor(flat_local), global_context=True)


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
    # no squeeze-and-excitation in MobileNetV2: no global context anywhere
    assert field_of_tensor(mobilenet.get_layer("out_relu").output) == ReceptiveField(
        (491, 491), (32, 32), (-214, -214), global_context=False
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
        (483, 483), (32, 32), (-241, -241), global_context=False
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


@pytest.mark.slow
def test_efficientnet_b0_squeeze_excitation_matches_gradients() -> None:
    """The issue's case: block4a_dwconv's centre cell depends on every pixel; its local box is (22, 22)-(96, 96)."""
    model = keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=(96, 96, 3))
    check_against_gradients(model, ["stem_conv", "block1a_dwconv"])
    for name in ("stem_conv", "block1a_dwconv"):
        assert not field_of_tensor(model.get_layer(name).output).global_context, name
    whole = ReceptiveField((96, 96), (96, 96), (0, 0), global_context=True)
    for name in ("block1a_se_squeeze", "block4a_se_reduce", "block4a_se_expand"):
        assert field_of_tensor(model.get_layer(name).output) == whole, name
    dw = field_of_tensor(model.get_layer("block4a_dwconv").output)
    assert dw.box_clipped(3, 3, (96, 96)) == (22, 22, 96, 96)
    # the model rescales by 1/255 first: a fill of 255 keeps the gated products O(1)
    check_global_against_gradients(model, ["block1a_se_excite", "block4a_dwconv", "top_activation"], 255.0)


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
    assert receptive_field(h, "dense1") == ReceptiveField((128, 128), (128, 128), (0, 0), True)
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
    assert receptive_field(h, "gap") == ReceptiveField((33, 33), (33, 33), (0, 0), global_context=True)


def test_nested_se_block_via_handle(tmp_path) -> None:
    """Paths inside a nested SE block: the gate's conv sees the whole image, the gated map has global context."""
    models = _engine_models()
    inp = keras.Input((20, 20, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="oc")(inp)
    y = layers.Conv2D(4, 3, name="after")(_se_inner()(x))
    path = tmp_path / "nested_se.keras"
    keras.Model(inp, y).save(path)
    h = models.load_model(str(path))
    assert receptive_field(h, "inner_se/iexp") == ReceptiveField((20, 20), (20, 20), (0, 0), True)
    assert receptive_field(h, "inner_se/ic") == ReceptiveField((7, 7), (2, 2), (-2, -2))
    assert receptive_field(h, "inner_se/iexcite") == ReceptiveField((7, 7), (2, 2), (-2, -2), True)
    assert receptive_field(h, "after") == ReceptiveField((11, 11), (2, 2), (-2, -2), True)
    with pytest.raises(LayerNotFound):
        receptive_field(h, "inner_se/nope")
