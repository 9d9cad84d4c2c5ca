"""Exact receptive fields of the cells of a Keras 3 functional graph.

A cell (y, x) of a layer's output sees a box of input pixels: its receptive
field. Along each axis the field of every cell of a tensor has the same size
``r``, neighbouring cells are ``j`` input pixels apart (the stride), and cell 0
starts at input coordinate ``o`` (the offset, negative where the field reaches
into padding). A layer with effective kernel ``k_eff = (k - 1) * d + 1``,
stride ``s`` and ``p`` pixels of padding before the first input pixel maps the
field (r, j, o) of its input to::

    r' = r + (k_eff - 1) * j        j' = j * s        o' = o - p * j

``field_of_tensor`` walks a tensor's history back to the graph input and
applies this per axis, with TensorFlow's asymmetric 'same' padding computed
from each layer's actual input size. Pointwise layers keep the field; layers
that merge several inputs (Add, Concatenate, ...) take the union box of their
inputs' fields when the strides agree. Inputs that carry no spatial structure
(a squeeze-and-excitation gate broadcast from a 1x1 map, a vector) are global
context shared by every cell alike and are left out of the union.

The field is the set of input pixels a cell *can* depend on; the gradient
support of a cell in the network made linear with positive weights is exactly
this box clipped to the image (the tests check that on real architectures).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any

from engine.errors import EngineError

__all__ = ["ReceptiveField", "field_of_tensor", "receptive_field"]


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of every cell of one layer's output, in input pixels.

    Coordinates are integer pixel edges: pixel i covers [i, i + 1) and its
    centre lies at i + 0.5. A box (top, left, bottom, right) holds the pixels
    top <= row < bottom and left <= col < right.
    """

    size: tuple[int, int]  # (ry, rx) in input pixels
    stride: tuple[int, int]  # (sy, sx) input pixels between neighbouring cells
    offset: tuple[int, int]  # (oy, ox) top-left of cell (0, 0)'s field; may be negative

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of cell (y, x)'s field, bottom/right exclusive, not clipped."""
        top = self.offset[0] + y * self.stride[0]
        left = self.offset[1] + x * self.stride[1]
        return top, left, top + self.size[0], left + self.size[1]

    def box_clipped(self, y: int, x: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """The box of cell (y, x) clipped to an input of shape (H, W); empty (top == bottom) if outside."""
        height, width = int(shape[0]), int(shape[1])
        top, left, bottom, right = self.box(y, x)
        return (
            min(max(top, 0), height),
            min(max(left, 0), width),
            min(max(bottom, 0), height),
            min(max(right, 0), width),
        )

    def center(self, y: int, x: int) -> tuple[float, float]:
        """Centre (row, col) of cell (y, x)'s field in continuous input coordinates.

        Pixel i spans [i, i + 1), so a field over pixels 0..2 has centre 1.5, the
        centre of pixel 1; subtract 0.5 to get a (fractional) pixel index.
        """
        top, left, bottom, right = self.box(y, x)
        return (top + bottom) / 2.0, (left + right) / 2.0


# ---------------------------------------------------------------------------
# Internal per-axis representation
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """Per-axis (size, stride, offset) for the two spatial axes."""

    r: tuple[int, int]
    j: tuple[int, int]
    o: tuple[int, int]

    def public(self) -> ReceptiveField:
        return ReceptiveField(size=self.r, stride=self.j, offset=self.o)


_IDENTITY = _Field(r=(1, 1), j=(1, 1), o=(0, 0))
# A tensor with no spatial axes (or derived from one): every position depends on the whole input.
_GLOBAL = "global"

_Value = Any  # _Field | _GLOBAL


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    a, b = tuple(value)
    return int(a), int(b)


def _layer_desc(op: Any) -> str:
    return f"{getattr(op, 'name', '?')} ({type(op).__name__})"


def _spatial(tensor: Any) -> tuple[int | None, int | None] | None:
    """(H, W) of a channels-last image tensor, None when the tensor has no spatial axes."""
    shape = getattr(tensor, "shape", None)
    if shape is None or len(shape) != 4:
        return None
    return shape[1], shape[2]


def _same_pad_before(size: int | None, k_eff: int, stride: int, op: Any) -> int:
    """TensorFlow 'same' padding before the first pixel for an axis of `size` input pixels."""
    if stride == 1:
        return (k_eff - 1) // 2
    if size is None:
        raise EngineError(
            f"layer {_layer_desc(op)} uses 'same' padding with stride {stride} on an input of unknown size; "
            "build the model with a fixed input shape"
        )
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2


def _apply_window(
    field: _Field,
    op: Any,
    in_tensor: Any,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    padding: str,
) -> _Field:
    """Compose `field` with a sliding window (convolution or pooling) layer."""
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise EngineError(f"layer {_layer_desc(op)}: padding {padding!r} is not supported")
    spatial = _spatial(in_tensor) or (None, None)
    r, j, o = [], [], []
    for axis in range(2):
        k_eff = (kernel[axis] - 1) * dilation[axis] + 1
        s = strides[axis]
        pad = _same_pad_before(spatial[axis], k_eff, s, op) if padding == "same" else 0
        r.append(field.r[axis] + (k_eff - 1) * field.j[axis])
        j.append(field.j[axis] * s)
        o.append(field.o[axis] - pad * field.j[axis])
    return _Field(r=tuple(r), j=tuple(j), o=tuple(o))


def _shift(field: _Field, before: tuple[int, int]) -> _Field:
    """Add `before` pixels (negative: remove) ahead of each axis, as ZeroPadding2D does."""
    return _Field(
        r=field.r,
        j=field.j,
        o=(field.o[0] - before[0] * field.j[0], field.o[1] - before[1] * field.j[1]),
    )


def _union(fields: list[_Field], op: Any) -> _Field:
    """The union box of fields of equal stride, as a merge layer (Add, Concatenate, ...) sees them."""
    first = fields[0]
    for other in fields[1:]:
        if other.j != first.j:
            raise EngineError(
                f"layer {_layer_desc(op)} merges inputs with different strides "
                f"{first.j} and {other.j}; their cells have no common receptive field"
            )
    top = tuple(min(f.o[a] for f in fields) for a in range(2))
    end = tuple(max(f.o[a] + f.r[a] for f in fields) for a in range(2))
    return _Field(r=(end[0] - top[0], end[1] - top[1]), j=first.j, o=top)


# ---------------------------------------------------------------------------
# Graph walk
# ---------------------------------------------------------------------------


def _history(tensor: Any) -> tuple[Any, Any] | None:
    """(operation, node) that produced `tensor`, None for a graph input."""
    hist = getattr(tensor, "_keras_history", None)
    if hist is None or hist.operation is None:
        return None
    op = hist.operation
    nodes = getattr(op, "_inbound_nodes", None)
    if not nodes or hist.node_index >= len(nodes):
        return None
    node = nodes[hist.node_index]
    if not node.input_tensors:
        return None
    return op, node


class _Walker:
    """Computes fields of tensors of one graph, memoized per tensor id.

    `seeds` maps ids of a nested model's input tensors to the fields of the
    outer tensors they were called on.
    """

    def __init__(self, seeds: dict[int, _Value] | None = None) -> None:
        self._memo: dict[int, _Value] = dict(seeds or {})
        self._keep: list[Any] = []  # keeps memoized tensors alive so their ids stay unique

    def field(self, tensor: Any) -> _Value:
        stack = [tensor]
        while stack:
            t = stack[-1]
            if id(t) in self._memo:
                stack.pop()
                continue
            hist = _history(t)
            if hist is None:
                self._store(t, _IDENTITY if _spatial(t) is not None else _GLOBAL)
                stack.pop()
                continue
            op, node = hist
            missing = [i for i in node.input_tensors if id(i) not in self._memo]
            if missing:
                stack.extend(missing)
                continue
            inputs = [self._memo[id(i)] for i in node.input_tensors]
            self._store(t, self._apply(op, node, t, inputs))
            stack.pop()
        return self._memo[id(tensor)]

    def _store(self, tensor: Any, value: _Value) -> None:
        self._keep.append(tensor)
        self._memo[id(tensor)] = value

    def _apply(self, op: Any, node: Any, out: Any, inputs: list[_Value]) -> _Value:
        import keras

        layers = keras.layers
        name = type(op).__name__
        if getattr(op, "data_format", "channels_last") == "channels_first":
            raise EngineError(f"layer {_layer_desc(op)} is channels_first; only channels_last is supported")
        if isinstance(op, keras.Model):
            return self._nested(op, node, out, inputs)
        if _spatial(out) is None:
            return _GLOBAL
        in_tensor = node.input_tensors[0]
        first = inputs[0]
        if isinstance(op, layers.Conv2DTranspose):
            raise EngineError(f"layer {_layer_desc(op)}: transposed convolutions are not supported")
        if isinstance(op, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)):
            if first is _GLOBAL:
                return _GLOBAL
            return _apply_window(
                first,
                op,
                in_tensor,
                _pair(op.kernel_size),
                _pair(op.strides),
                _pair(op.dilation_rate),
                op.padding,
            )
        if isinstance(op, (layers.MaxPooling2D, layers.AveragePooling2D)):
            if first is _GLOBAL:
                return _GLOBAL
            strides = op.strides if op.strides is not None else op.pool_size
            return _apply_window(
                first, op, in_tensor, _pair(op.pool_size), _pair(strides), (1, 1), op.padding
            )
        if isinstance(op, (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)):
            return _GLOBAL
        if isinstance(op, layers.ZeroPadding2D):
            if first is _GLOBAL:
                return _GLOBAL
            (top, _), (left, _) = op.padding
            return _shift(first, (int(top), int(left)))
        if isinstance(op, layers.Cropping2D):
            if first is _GLOBAL:
                return _GLOBAL
            (top, _), (left, _) = op.cropping
            return _shift(first, (-int(top), -int(left)))
        if isinstance(op, (layers.UpSampling2D, layers.Resizing)) or "Transpose" in name:
            raise EngineError(
                f"layer {_layer_desc(op)} resamples its input; receptive fields through it are not supported"
            )
        if isinstance(op, layers.Permute) and tuple(op.dims)[:2] != (1, 2):
            raise EngineError(f"layer {_layer_desc(op)} permutes the spatial axes; not supported")
        return self._pointwise(op, node, out, inputs)

    def _pointwise(self, op: Any, node: Any, out: Any, inputs: list[_Value]) -> _Value:
        """Any other operation: pointwise (or a merge of pointwise inputs) if it keeps the spatial shape."""
        out_hw = _spatial(out)
        local: list[_Field] = []
        for tensor, value in zip(node.input_tensors, inputs):
            in_hw = _spatial(tensor)
            if value is _GLOBAL or in_hw is None:
                continue
            if in_hw == out_hw:
                local.append(value)
            elif in_hw == (1, 1):
                continue  # broadcast from a 1x1 map: global context, the same for every cell
            elif out_hw == (1, 1):
                return _GLOBAL  # a reduction over the spatial axes (keras.ops.mean, ...)
            else:
                raise EngineError(
                    f"layer {_layer_desc(op)} changes the spatial shape from {in_hw} to {out_hw}; "
                    f"receptive fields through {type(op).__name__} are not supported"
                )
        if not local:
            return _GLOBAL
        if len(local) == 1:
            return local[0]
        return _union(local, op)

    def _nested(self, model: Any, node: Any, out: Any, inputs: list[_Value]) -> _Value:
        """A model called as a layer: walk its own graph, seeded with the fields of the call's inputs."""
        inner_inputs = list(getattr(model, "inputs", None) or [])
        inner_outputs = list(getattr(model, "outputs", None) or [])
        if not inner_inputs or not inner_outputs or len(inner_inputs) != len(inputs):
            raise EngineError(f"nested model {_layer_desc(model)} has no functional graph to walk")
        tensor_index = out._keras_history.tensor_index
        walker = _Walker({id(t): v for t, v in zip(inner_inputs, inputs)})
        walker._keep.extend(inner_inputs)
        return walker.field(inner_outputs[tensor_index])


def _describe(tensor: Any) -> str:
    hist = getattr(tensor, "_keras_history", None)
    op = getattr(hist, "operation", None)
    return getattr(op, "name", None) or getattr(tensor, "name", "tensor")


def field_of_tensor(tensor: Any) -> ReceptiveField:
    """Receptive field of each cell of `tensor`, a channels-last KerasTensor of a functional graph.

    Raises EngineError when the tensor has no spatial axes (after Flatten,
    global pooling or Dense) or when the path to the input holds a layer whose
    field cannot be computed exactly (transposed convolution, resampling,
    merged inputs of different strides, an unknown layer that changes the
    spatial shape).
    """
    if not hasattr(tensor, "_keras_history") and not hasattr(tensor, "shape"):
        raise EngineError(f"expected a symbolic Keras tensor, got {type(tensor).__name__}")
    value = _Walker().field(tensor)
    if value is _GLOBAL or _spatial(tensor) is None:
        raise EngineError(f"layer {_describe(tensor)} has no spatial extent")
    return value.public()


def receptive_field(h: Any, layer: str) -> ReceptiveField:
    """Receptive field of the cells of `layer` (a path such as "conv3" or "vgg16/block5_conv3") of model `h`.

    Raises LayerNotFound for an unknown path and EngineError for a layer with
    no spatial extent (Dense after Flatten or global pooling).
    """
    tensor = h.symbolic(layer)
    try:
        return field_of_tensor(tensor)
    except EngineError as err:
        if "has no spatial extent" in str(err):
            raise EngineError(f"layer {layer} has no spatial extent") from None
        raise


class _CallableModule(types.ModuleType):
    """This module, callable as `receptive_field(h, layer)`.

    The public name `engine.receptive_field` is the function, but importing the
    submodule `engine.receptive_field` makes Python bind that attribute of the
    package to this module. Calling the module therefore has to work too.
    """

    def __call__(self, h: Any, layer: str) -> ReceptiveField:
        return receptive_field(h, layer)


sys.modules[__name__].__class__ = _CallableModule
