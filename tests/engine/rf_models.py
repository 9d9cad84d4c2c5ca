"""Model builders and the empirical receptive field for tests/engine/test_receptive_field.py.

The empirical field of a cell is the input-gradient support of that cell in a
"linear copy" of the model: activations removed, max pooling replaced by
average pooling and every kernel positive, so no path through the network can
have a zero or cancelling gradient and the support is exactly the set of input
pixels the cell is connected to.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from engine.zoo.shapes import conv_stack

layers = keras.layers


def shapes_model() -> keras.Model:
    """The builtin:shapes architecture: two conv pairs with 2x2 max pooling, then a classifier."""
    inp = keras.Input((128, 128, 3), name="image")
    x = conv_stack(inp)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="dense1")(x)
    out = layers.Dense(4, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out, name="shapes")


def same_stack(size: int | tuple[int, int]) -> keras.Model:
    """'same'-padded stride-2 stack whose padding depends on the parity of each layer's input size."""
    hw = (size, size) if isinstance(size, int) else size
    inp = keras.Input((*hw, 2))
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c1")(inp)
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = layers.Conv2D(4, 5, strides=1, padding="same", activation="relu", name="c3")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="p1")(x)
    return keras.Model(inp, x, name=f"same_stack_{hw[0]}x{hw[1]}")


def nonsquare_model() -> keras.Model:
    """Non-square kernels, strides and dilations on a non-square input, mixing 'same' and 'valid'."""
    inp = keras.Input((31, 40, 2))
    x = layers.Conv2D(4, (3, 5), strides=(2, 1), padding="same", name="a")(inp)
    x = layers.Conv2D(4, (1, 3), strides=(1, 3), padding="valid", name="b")(x)
    x = layers.MaxPooling2D((2, 3), strides=(2, 2), padding="same", name="c")(x)
    x = layers.Conv2D(4, (3, 2), dilation_rate=(2, 1), padding="same", name="d")(x)
    return keras.Model(inp, x, name="nonsquare")


def dilated_model() -> keras.Model:
    """Dilation 2 and 3, 'valid' and 'same', plus a depthwise and a separable dilated conv."""
    inp = keras.Input((41, 37, 2))
    x = layers.Conv2D(4, 3, dilation_rate=2, activation="relu", name="d2")(inp)
    x = layers.Conv2D(4, 3, dilation_rate=3, padding="same", activation="relu", name="d3")(x)
    x = layers.DepthwiseConv2D(3, dilation_rate=(2, 3), padding="same", name="dw")(x)
    x = layers.SeparableConv2D(4, 3, dilation_rate=2, padding="valid", name="sep")(x)
    return keras.Model(inp, x, name="dilated")


def residual_model() -> keras.Model:
    """A stem, a strided residual block with a 1x1 strided shortcut, an identity block, and merges."""
    inp = keras.Input((33, 34, 2))
    x = layers.ZeroPadding2D(((2, 1), (1, 2)), name="pad")(inp)
    x = layers.Conv2D(4, 3, activation="relu", name="stem")(x)
    # strided block: stride on the 3x3 of the main path, shortcut 1x1 stride 2 (cells centred apart)
    m = layers.Conv2D(4, 3, strides=2, padding="same", name="b1_conv1")(x)
    m = layers.BatchNormalization(name="b1_bn1")(m)
    m = layers.ReLU(name="b1_relu1")(m)
    m = layers.Conv2D(4, 3, padding="same", name="b1_conv2")(m)
    s = layers.Conv2D(4, 1, strides=2, name="b1_short")(x)
    x = layers.Add(name="b1_add")([m, s])
    x = layers.Activation("relu", name="b1_out")(x)
    # identity block
    m = layers.Conv2D(4, 3, padding="same", activation="relu", name="b2_conv1")(x)
    m = layers.Conv2D(4, 3, padding="same", name="b2_conv2")(m)
    x = layers.Add(name="b2_add")([x, m])
    # merges that are not Add layers: an operator (a keras.ops node) and a Concatenate
    c = layers.Cropping2D(((1, 0), (0, 1)), name="crop")(
        layers.ZeroPadding2D(((1, 0), (0, 1)), name="pad2")(x)
    )
    y = x + c
    z = layers.Concatenate(name="concat")([y, layers.Conv2D(4, (1, 3), padding="same", name="side")(y)])
    return keras.Model(inp, [x, y, z], name="residual")


def mismatched_model() -> keras.Model:
    """Add of two maps of equal shape whose cells are 2 and 1 input pixels apart."""
    inp = keras.Input((33, 33, 2))
    a = layers.Conv2D(4, 3, strides=2, name="strided")(inp)  # 16x16, stride 2
    b = layers.Conv2D(4, 18, name="wide")(inp)  # 16x16, stride 1
    out = layers.Add(name="add")([a, b])
    return keras.Model(inp, out, name="mismatched")


def se_model(excite: bool = True) -> keras.Model:
    """Two strided convs, an EfficientNet-style squeeze-and-excitation gate, and a conv after it.

    The gate: global average pooling, a reshape to 1x1, a reducing and an expanding
    1x1 conv (sigmoid), multiplied back onto the map. excite=False builds the same
    layers without the multiply (the gate is computed but feeds nothing): the
    local path alone.
    """
    inp = keras.Input((24, 24, 2), name="image")
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="c1")(inp)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="c2")(x)
    g = layers.GlobalAveragePooling2D(name="se_squeeze")(x)
    g = layers.Reshape((1, 1, 4), name="se_reshape")(g)
    g = layers.Conv2D(2, 1, activation="relu", name="se_reduce")(g)
    g = layers.Conv2D(4, 1, activation="sigmoid", name="se_expand")(g)
    if excite:
        x = layers.Multiply(name="se_excite")([x, g])
    y = layers.Conv2D(4, 3, name="after")(x)
    outputs = [y, g] if excite else [y, g, x]
    return keras.Model(inp, outputs, name="se" if excite else "se_local")


class StoppedGlobalAveragePooling2D(layers.GlobalAveragePooling2D):
    """Global average pooling whose output is a constant for the gradient: a global branch cut off."""

    def call(self, inputs: Any) -> Any:
        return keras.ops.stop_gradient(super().call(inputs))


def linear_copy(model: keras.Model, seed: int = 0, stop_global: bool = False) -> keras.Model:
    """The model with activations removed, max pooling averaged and positive kernels (dense gradients).

    Dense kernels are made positive too, so a squeeze-and-excitation gate has a
    dense gradient as long as the input is positive (empirical_boxes' fill).
    stop_global=True cuts global average pooling off the gradient: the support
    is then that of the local path alone.
    """

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if isinstance(layer, (layers.ReLU, layers.Activation, layers.LeakyReLU, layers.Softmax)):
            return layers.Identity(name=layer.name)
        if isinstance(layer, layers.MaxPooling2D):
            return layers.AveragePooling2D.from_config(config)
        if stop_global and isinstance(layer, layers.GlobalAveragePooling2D):
            return StoppedGlobalAveragePooling2D.from_config(config)
        if "activation" in config:
            config["activation"] = "linear"
        return layer.__class__.from_config(config)

    lin = keras.models.clone_model(model, clone_function=clone)
    rng = np.random.default_rng(seed)
    for layer in lin.layers:
        for var in layer.weights:
            name = var.name.rsplit("/", 1)[-1]
            shape = tuple(var.shape)
            if len(shape) != 4 and not (len(shape) == 2 and name == "kernel"):
                continue
            value = rng.uniform(0.5, 1.5, size=shape)
            # each output channel averages its inputs: activations stay O(1) however deep the net
            depthwise = name == "depthwise_kernel" or isinstance(layer, layers.DepthwiseConv2D)
            axes = (0, 1) if depthwise else tuple(range(len(shape) - 1))
            var.assign((value / value.sum(axis=axes, keepdims=True)).astype(np.float32))
    return lin


def empirical_boxes(
    lin: keras.Model, target: str | int, cells: list[tuple[int, int]], fill: float = 0.0
) -> list[tuple[int, int, int, int]]:
    """Bounding box (top, left, bottom, right) of the input-gradient support of each cell of `target`.

    target: a layer name of `lin`, or the index of one of its outputs. All cells go
    through one forward/backward pass, one batch element per cell, at a constant
    input `fill` (positive where the model multiplies maps, as a gate does: at 0 the
    product's gradient vanishes).
    """
    tensor = lin.get_layer(target).output if isinstance(target, str) else lin.outputs[target]
    sub = keras.Model(lin.inputs, tensor)
    n = len(cells)
    x = tf.fill((n, *lin.inputs[0].shape[1:]), float(fill))
    if len(tensor.shape) == 2:  # a vector (global pooling, Flatten, Dense): one cell, all its units
        mask = np.ones((n, tensor.shape[1]), np.float32)
    else:
        mask = np.zeros((n, *tuple(tensor.shape[1:3]), 1), np.float32)
        for b, (cy, cx) in enumerate(cells):
            mask[b, cy, cx, 0] = 1.0
    with tf.GradientTape() as tape:
        tape.watch(x)
        objective = tf.reduce_sum(sub(x, training=False) * mask)
    grad = tape.gradient(objective, x).numpy()
    boxes = []
    for b in range(n):
        support = np.any(grad[b] != 0, axis=-1)
        rows = np.flatnonzero(support.any(axis=1))
        cols = np.flatnonzero(support.any(axis=0))
        assert rows.size and cols.size, f"cell {cells[b]} of {target} has no gradient support"
        boxes.append((int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1))
    return boxes


def probe_cells(shape: tuple[int, int]) -> list[tuple[int, int]]:
    """Corner (0, 0), a centre cell, the last cell, and an off-centre cell of a (h, w) map."""
    h, w = shape
    cells = [(0, 0), (h // 2, w // 2), (h - 1, w - 1), (h // 3, (2 * w) // 3)]
    return list(dict.fromkeys(cells))
