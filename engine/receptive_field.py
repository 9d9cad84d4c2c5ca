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
inputs' fields when the strides agree.

Global context. A branch that reduces over the spatial axes makes every cell
depend on every input pixel: a squeeze-and-excitation gate (global pooling,
1x1 convs or Dense, multiplied back), any global pooling or spatial reduction
broadcast back, attention over all positions, a normalization whose statistics
span the spatial axes (GroupNormalization, LayerNormalization over H or W), a
Flatten/Dense result reshaped back to a map. Such a branch is left out of the
box and sets ``global_context`` instead, which every later cell fed by it
inherits. The box is the *local* field, through the spatial path only: it is
what hover outlines, crops and CAM projection use. A tensor that has no local
path at all (the output of global pooling or Dense, an SE conv on a 1x1 map)
depends on the whole image: its field is the whole input, ``global_context``
set (see ``ReceptiveField``). Marking a branch global is conservative: attention
restricted to some axes, or a Dense applied per position after flattening the
positions, is marked global too.

The field is the set of input pixels a cell *can* depend on; the gradient
support of a cell in the network made linear with positive weights is exactly
this box clipped to the image, or the whole image when ``global_context`` is
set (the tests check both on real architectures).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, replace
from typing import Any

from engine.errors import EngineError
from engine.models import ModelHandle

__all__ = ["GLOBAL_CONTEXT_NOTE", "ReceptiveField", "field_of_tensor", "receptive_field"]

# What notes append to a field description when global_context is set.
GLOBAL_CONTEXT_NOTE = "plus global context"


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of every cell of one layer's output, in input pixels.

    Coordinates are integer pixel edges: pixel i covers [i, i + 1) and its
    centre lies at i + 0.5. A box (top, left, bottom, right) holds the pixels
    top <= row < bottom and left <= col < right.

    global_context: a global branch (squeeze-and-excitation, global pooling
    broadcast back, attention over all positions, ...) feeds the cell, so it
    depends on every input pixel, not only on its box. The box is then the
    local field through the spatial path, which is what hover, crops and CAM
    projection use. A layer with no local path at all (global pooling, Dense,
    the convs of an SE gate on a 1x1 map) has the whole input as its box:
    size = the input's (H, W), offset (0, 0), stride (H, W) along an axis of
    one cell, 0 along an axis of several cells (each cell sees the whole
    image), and global_context True. A vector output counts as one cell (0, 0).
    """

    size: tuple[int, int]  # (ry, rx) in input pixels
    stride: tuple[int, int]  # (sy, sx) input pixels between neighbouring cells
    offset: tuple[int, int]  # (oy, ox) top-left of cell (0, 0)'s field; may be negative
    global_context: bool = False  # a global branch feeds every cell besides the box

    def __repr__(self) -> str:
        extra = ", global_context=True" if self.global_context else ""
        return f"ReceptiveField(size={self.size}, stride={self.stride}, offset={self.offset}{extra})"

    def describe(self) -> str:
        """Short note for hover text: "14×14 px, stride 2", with " plus global context" when set."""
        ry, rx = self.size
        sy, sx = self.stride
        text = f"{ry}×{rx} px, stride {sy}" if sy == sx else f"{ry}×{rx} px, stride {sy}×{sx}"
        return f"{text} {GLOBAL_CONTEXT_NOTE}" if self.global_context else text

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
    """Per-axis (size, stride, offset) of the local field, and whether a global branch also feeds it."""

    r: tuple[int, int]
    j: tuple[int, int]
    o: tuple[int, int]
    g: bool = False

    def public(self) -> ReceptiveField:
        return ReceptiveField(size=self.r, stride=self.j, offset=self.o, global_context=self.g)


_IDENTITY = _Field(r=(1, 1), j=(1, 1), o=(0, 0))
# Every position depends on the whole input and there is no local path (global pooling, Dense, ...).
_GLOBAL = "global"
# Depends on no input pixel at all (an input without spatial axes, e.g. a side vector).
_NONE = "none"

_Value = Any  # _Field | _GLOBAL | _NONE


def _with_global(value: _Value) -> _Value:
    """`value` with global context added (a local field keeps its box)."""
    if isinstance(value, _Field):
        return value if value.g else replace(value, g=True)
    return _GLOBAL


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
    return _Field(r=tuple(r), j=tuple(j), o=tuple(o), g=field.g)


def _shift(field: _Field, before: tuple[int, int]) -> _Field:
    """Add `before` pixels (negative: remove) ahead of each axis, as ZeroPadding2D does."""
    return replace(field, o=(field.o[0] - before[0] * field.j[0], field.o[1] - before[1] * field.j[1]))


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
    return _Field(r=(end[0] - top[0], end[1] - top[1]), j=first.j, o=top, g=any(f.g for f in fields))


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
    outer tensors they were called on. `input_hw` is the (H, W) of the first
    image input reached: the size of a whole-image field.
    """

    def __init__(self, seeds: dict[int, _Value] | None = None) -> None:
        self._memo: dict[int, _Value] = dict(seeds or {})
        self._keep: list[Any] = []  # keeps memoized tensors alive so their ids stay unique
        self.input_hw: tuple[int | None, int | None] | None = None

    def field(self, tensor: Any) -> _Value:
        stack = [tensor]
        while stack:
            t = stack[-1]
            if id(t) in self._memo:
                stack.pop()
                continue
            hist = _history(t)
            if hist is None:
                hw = _spatial(t)
                if hw is not None and self.input_hw is None:
                    self.input_hw = hw
                self._store(t, _IDENTITY if hw is not None else _NONE)
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
        if all(value is _NONE for value in inputs):
            return _NONE  # computed from inputs that carry no image
        if _spatial(out) is None:
            return _GLOBAL  # a vector (or sequence) computed from the image: global pooling, Flatten, Dense
        in_tensor = node.input_tensors[0]
        first = inputs[0]
        if isinstance(op, layers.Conv2DTranspose):
            raise EngineError(f"layer {_layer_desc(op)}: transposed convolutions are not supported")
        if isinstance(op, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)):
            if not isinstance(first, _Field):
                return first
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
            if not isinstance(first, _Field):
                return first
            strides = op.strides if op.strides is not None else op.pool_size
            return _apply_window(
                first, op, in_tensor, _pair(op.pool_size), _pair(strides), (1, 1), op.padding
            )
        if isinstance(op, (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)):
            return _GLOBAL
        if isinstance(op, layers.ZeroPadding2D):
            if not isinstance(first, _Field):
                return first
            (top, _), (left, _) = op.padding
            return _shift(first, (int(top), int(left)))
        if isinstance(op, layers.Cropping2D):
            if not isinstance(first, _Field):
                return first
            (top, _), (left, _) = op.cropping
            return _shift(first, (-int(top), -int(left)))
        if isinstance(op, (layers.UpSampling2D, layers.Resizing)) or "Transpose" in name:
            raise EngineError(
                f"layer {_layer_desc(op)} resamples its input; receptive fields through it are not supported"
            )
        if isinstance(op, layers.Permute) and tuple(op.dims)[:2] != (1, 2):
            raise EngineError(f"layer {_layer_desc(op)} permutes the spatial axes; not supported")
        if _mixes_all_positions(op):
            # attention over the positions, statistics over the spatial axes: the cell itself (the query,
            # the normalized value) is local, everything it is combined with is global
            return _with_global(self._pointwise(op, node, out, inputs[:1], node.input_tensors[:1]))
        return self._pointwise(op, node, out, inputs, node.input_tensors)

    def _pointwise(self, op: Any, node: Any, out: Any, inputs: list[_Value], tensors: list[Any]) -> _Value:
        """Any other operation: pointwise (or a merge of pointwise inputs) if it keeps the spatial shape.

        Inputs with no local field (a squeeze-and-excitation gate, a reduction broadcast from a 1x1 map,
        a vector, a Dense result reshaped to a map) are global context, the same for every cell: they
        are left out of the union box and set the global flag.
        """
        out_hw = _spatial(out)
        local: list[_Field] = []
        glob = False
        for tensor, value in zip(tensors, inputs):
            in_hw = _spatial(tensor)
            if value is _NONE:
                continue
            if value is _GLOBAL or in_hw is None:
                glob = True
            elif in_hw == out_hw:
                local.append(value)
            elif in_hw == (1, 1):
                glob = True  # broadcast from a 1x1 map: global context, the same for every cell
            elif out_hw == (1, 1):
                return _GLOBAL  # a reduction over the spatial axes (keras.ops.mean, ...)
            else:
                raise EngineError(
                    f"layer {_layer_desc(op)} changes the spatial shape from {in_hw} to {out_hw}; "
                    f"receptive fields through {type(op).__name__} are not supported"
                )
        if not local:
            return _GLOBAL if glob else _NONE
        merged = local[0] if len(local) == 1 else _union(local, op)
        return _with_global(merged) if glob else merged

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


def _spatial_axes(axis: Any) -> bool:
    """Whether a layer's `axis` argument (int or sequence, of a rank-4 tensor) names H or W."""
    axes = [axis] if isinstance(axis, int) else list(axis or [])
    return any(int(a) % 4 in (1, 2) for a in axes)


def _mixes_all_positions(op: Any) -> bool:
    """Layers that keep the map's shape but combine each cell with every position of the map."""
    import keras

    layers = keras.layers
    attention = tuple(
        getattr(layers, n) for n in ("MultiHeadAttention", "GroupQueryAttention") if hasattr(layers, n)
    )
    if attention and isinstance(op, attention):
        return True
    if isinstance(op, layers.GroupNormalization):
        return True  # mean and variance over (H, W, channels of the group)
    if isinstance(op, (layers.LayerNormalization, layers.UnitNormalization, layers.Softmax)):
        return _spatial_axes(getattr(op, "axis", -1))
    return False


def _describe(tensor: Any) -> str:
    hist = getattr(tensor, "_keras_history", None)
    op = getattr(hist, "operation", None)
    return getattr(op, "name", None) or getattr(tensor, "name", "tensor")


def _whole_image(tensor: Any, input_hw: Any, name: str) -> ReceptiveField:
    """The field of a tensor with no local path: every cell sees the whole input."""
    if input_hw is None or None in input_hw:
        raise EngineError(
            f"layer {name} depends on the whole input, whose size is unknown; "
            "build the model with a fixed input shape"
        )
    cells = _spatial(tensor) or (1, 1)
    size = (int(input_hw[0]), int(input_hw[1]))
    stride = tuple(size[a] if cells[a] == 1 else 0 for a in range(2))
    return ReceptiveField(size=size, stride=stride, offset=(0, 0), global_context=True)


def _field(tensor: Any, name: str) -> ReceptiveField:
    if not hasattr(tensor, "_keras_history") and not hasattr(tensor, "shape"):
        raise EngineError(f"expected a symbolic Keras tensor, got {type(tensor).__name__}")
    walker = _Walker()
    value = walker.field(tensor)
    if value is _NONE:
        raise EngineError(f"layer {name} has no spatial extent: it does not depend on the input image")
    if value is _GLOBAL:
        return _whole_image(tensor, walker.input_hw, name)
    return value.public()


def field_of_tensor(tensor: Any) -> ReceptiveField:
    """Receptive field of each cell of `tensor`, a channels-last KerasTensor of a functional graph.

    A tensor that depends on the whole input with no local path (after global
    pooling, Flatten or Dense, or a map computed from such a tensor) gets the
    whole input as its field, global_context set; a vector counts as one cell.
    Raises EngineError when the tensor does not depend on the image at all,
    when such a whole-image field has no known size, or when the path to the
    input holds a layer whose field cannot be computed exactly (transposed
    convolution, resampling, merged inputs of different strides, an unknown
    layer that changes the spatial shape).
    """
    return _field(tensor, _describe(tensor))


def receptive_field(h: ModelHandle, layer: str) -> ReceptiveField:
    """Receptive field of the cells of `layer` (a path such as "conv3" or "vgg16/block5_conv3") of model `h`.

    Layers after a global branch have global_context set; global pooling, Dense
    and the convs of a squeeze-and-excitation gate have the whole input as
    their field. Raises LayerNotFound for an unknown path and EngineError for
    a layer whose field cannot be computed (see field_of_tensor).
    """
    return _field(h.symbolic(layer), layer)


class _CallableModule(types.ModuleType):
    """This module, callable as `receptive_field(h, layer)`.

    The public name `engine.receptive_field` is the function, but importing the
    submodule `engine.receptive_field` makes Python bind that attribute of the
    package to this module. Calling the module therefore has to work too.
    """

    def __call__(self, h: ModelHandle, layer: str) -> ReceptiveField:
        return receptive_field(h, layer)


sys.modules[__name__].__class__ = _CallableModule
