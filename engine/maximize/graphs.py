"""Keras models that map an input batch to the layer outputs an objective reads.

At the model's own input size this is ModelHandle.submodel. At another size (a fully
convolutional layer seen on a bigger canvas) the model's graph is re-run on a new input of
that size as far as it goes: layers that cannot take the new size (Flatten -> Dense) are
skipped, and asking for one of them raises a clear EngineError.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.models import ModelHandle
from engine.scaling import to_model_range


def input_affine(scaling: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, b) with to_model_range(x, scaling) == x @ M + b for display images x (..., C)."""
    b = to_model_range(np.zeros((channels,), np.float32), scaling)
    eye = np.eye(channels, dtype=np.float32)
    m = to_model_range(eye, scaling) - b
    return m.astype(np.float32), b.astype(np.float32)


def _has_activation(op: Any) -> bool:
    from engine.graph import activation_name

    return getattr(op, "activation", None) is not None and activation_name(op) not in ("linear", "other")


REDIRECT_SLOPE = 0.01  # gradient slope of a redirected ReLU below zero


def redirected_relu(x: Any) -> Any:
    """ReLU forward; backward the ReLU's gradient, and where the unit is off a small one
    (REDIRECT_SLOPE times exp((z - max z) / std z) over the positions of each map).

    After Lucid's redirected ReLU: the values are the unit's true post-activation output, but a
    unit that never fires on the start image still gets a small gradient towards firing, so its
    maximization does not stall at zero (a plain ReLU's gradient there is exactly zero).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def op(z: Any) -> Any:
        def grad(dy: Any) -> Any:
            # where the unit is off, a small gradient that favours the positions closest to firing:
            # a uniform one would push every position alike, towards a flat image that may never fire
            axes = list(range(1, len(z.shape) - 1)) or [0]
            top = tf.reduce_max(z, axis=axes, keepdims=True)
            spread = tf.math.reduce_std(z, axis=axes, keepdims=True) + 1e-6
            near = tf.exp((z - top) / spread)
            return dy * tf.where(z > 0, tf.ones_like(z), tf.cast(REDIRECT_SLOPE, z.dtype) * near)

        return tf.nn.relu(z), grad

    return op(x)


def _redirected_layer_class() -> Any:
    import keras

    class RedirectedReLU(keras.layers.Layer):
        """A layer applying redirected_relu (a Lambda would be traced away in the functional graph)."""

        def call(self, x: Any) -> Any:
            return redirected_relu(x)

    return RedirectedReLU


def _redirected(h: ModelHandle, path: str) -> Any:
    """The KerasTensor of `path` after a fused ReLU with a redirected gradient; else its plain output."""
    from engine.graph import activation_name

    tensor = h.symbolic(path)
    op = tensor._keras_history.operation
    if activation_name(op) != "relu":
        return tensor
    return _redirected_layer_class()(name=f"{op.name}_redirected")(pre_activation(h, path))


def pre_activation(h: ModelHandle, path: str) -> Any:
    """The KerasTensor of `path` before its fused activation (Conv2D/Dense(activation=...)), else its output."""
    from engine.graph import PreActivation

    tensor = h.symbolic(path)
    hist = tensor._keras_history
    op = hist.operation
    if not _has_activation(op):
        return tensor
    node = op._inbound_nodes[hist.node_index]
    return PreActivation(op)(node.input_tensors[0])


def linear_conv(h: ModelHandle, path: str, pre: bool | str) -> Any:
    """The Conv2D layer of `path` when the tap reads it linearly (its convolution plus bias: read
    before its fused activation, or a conv without one) and can be read out from its input
    (engine.maximize.run's contracted read-out); else None."""
    import keras

    if pre == "redirected":
        return None
    tensor = h.symbolic(path)
    hist = tensor._keras_history
    op = hist.operation
    if type(op) is not keras.layers.Conv2D or (_has_activation(op) and pre is not True):
        return None
    if (
        getattr(op, "groups", 1) != 1
        or op.data_format != "channels_last"
        or getattr(op, "lora_enabled", False)
        or getattr(op, "quantization_mode", None)
    ):
        return None
    inp = op._inbound_nodes[hist.node_index].input_tensors[0]
    if isinstance(inp._keras_history.operation, keras.layers.InputLayer):
        return None  # the model's input itself: nothing to save
    return op


def _conv_input(h: ModelHandle, path: str) -> Any:
    """The KerasTensor that feeds the layer of `path` (its first input)."""
    hist = h.symbolic(path)._keras_history
    return hist.operation._inbound_nodes[hist.node_index].input_tensors[0]


def _trace_partial(
    model: Any,
    x: Any,
    taps: dict[str, Any],
    prefix: str = "",
    pre: frozenset[str] = frozenset(),
    inputs_of: frozenset[str] = frozenset(),
) -> Any:
    """engine.graph.trace that skips nodes failing on the new input size (returns None past them).

    For paths in `pre`, taps holds the output before the layer's fused activation; for paths in
    `inputs_of`, the layer's input.
    """
    import keras
    from keras import tree

    from engine.graph import is_container

    def call(op: Any, args: tuple, kwargs: dict) -> Any:
        path = prefix + op.name
        if is_container(op):
            out = _trace_partial(op, args[0], taps, path + "/", pre, inputs_of)
        else:
            kwargs = {k: v for k, v in kwargs.items() if k != "training"}
            try:
                out = op(*args, **kwargs)
            except Exception:  # noqa: BLE001 - a layer that cannot take this size ends the trace here
                return None
        if out is not None:
            if path in inputs_of:
                taps[path] = args[0]
            elif path in pre and _has_activation(op):
                from engine.graph import PreActivation

                taps[path] = PreActivation(op)(args[0])
            else:
                taps[path] = out
        return out

    if isinstance(model, keras.Sequential):
        for layer in model.layers:
            x = call(layer, (x,), {})
            if x is None:
                return None
        return x
    if is_container(model):
        tensors: dict[int, Any] = {}
        for ref, value in zip(model.inputs, tree.flatten(x)):
            tensors[id(ref)] = value
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                if any(id(t) not in tensors for t in node.input_tensors):
                    continue
                args, kwargs = node.arguments.fill_in(tensors)
                out = call(node.operation, args, kwargs)
                if out is None:
                    continue
                for ref, value in zip(node.outputs, tree.flatten(out)):
                    tensors[id(ref)] = value
        outs = [tensors.get(id(o)) for o in model.outputs]
        return outs[0] if len(outs) == 1 else outs
    try:
        return model(x)
    except Exception:  # noqa: BLE001
        return None


_SIZED: dict[tuple, tuple[Any, Any]] = {}  # key -> (weakref to the handle, model)


def _cached(key: tuple, h: ModelHandle) -> Any:
    """A cached tap model for handle h (None if absent or built for another handle with the same id)."""
    entry = _SIZED.get(key)
    if entry is None or entry[0]() is not h:
        return None
    return entry[1]


def tap_model(
    h: ModelHandle,
    paths: tuple[str, ...],
    logits: bool,
    size: tuple[int, int],
    pre: bool | str = False,
    inputs_of: frozenset[str] = frozenset(),
) -> Any:
    """keras.Model from an input of `size` to the outputs of `paths` (and the logits last when asked).

    pre: True taps each layer before its fused activation (a dead ReLU unit still has a gradient
    there); "redirected" taps it after a fused ReLU whose gradient is redirected (redirected_relu;
    at the model's own input size only). inputs_of: paths tapped at their layer's input instead
    (the convs that engine.maximize.run reads out itself, see linear_conv).
    """
    import keras

    native = tuple(size) == tuple(h.input_shape[:2])
    inputs_of = frozenset(inputs_of)
    if native and not pre and not inputs_of:
        return h.submodel(paths, logits=logits)
    if pre == "redirected" and not native:  # a resized canvas keeps the plain taps
        return tap_model(h, paths, logits, size, pre=False, inputs_of=inputs_of)
    if logits and not native:
        raise EngineError(
            f"a class objective needs the model's input size {h.input_shape[0]}x{h.input_shape[1]}; leave size unset"
        )
    key = (id(h), paths, tuple(size), logits, pre, inputs_of)
    if native:
        model = _cached(key, h)
        if model is None:

            def tap(p: str) -> Any:
                if p in inputs_of:
                    return _conv_input(h, p)
                if pre == "redirected":
                    return _redirected(h, p)
                return pre_activation(h, p) if pre else h.symbolic(p)

            outputs = [tap(p) for p in paths] + ([h.logits] if logits else [])
            model = keras.Model(h.flat_input, outputs, name="convscope_pre_taps")
            _remember(key, h, model)
        return model
    model = _cached(key, h)
    if model is None:
        inp = keras.Input(shape=(int(size[0]), int(size[1]), h.input_shape[2]), name="convscope_sized")
        taps: dict[str, Any] = {}
        _trace_partial(h.model, inp, taps, pre=frozenset(paths) if pre else frozenset(), inputs_of=inputs_of)
        missing = [p for p in paths if p not in taps]
        if missing:
            raise EngineError(
                f"layer {missing[0]} cannot run at {size[0]}x{size[1]} (it needs the model's input size "
                f"{h.input_shape[0]}x{h.input_shape[1]}); leave size unset"
            )
        model = keras.Model(inp, [taps[p] for p in paths], name="convscope_sized_taps")
        _remember(key, h, model)
    return model


def _remember(key: tuple, h: ModelHandle, model: Any) -> None:
    import weakref

    if len(_SIZED) > 4:
        _SIZED.pop(next(iter(_SIZED)))
    _SIZED[key] = (weakref.ref(h), model)


def output_shapes(model: Any, paths: tuple[str, ...]) -> dict[str, tuple]:
    """{path: shape without batch} of a tap model built by tap_model (logits, if any, excluded)."""
    outs = model.outputs
    return {
        p: tuple(int(d) if d is not None else None for d in outs[i].shape[1:]) for i, p in enumerate(paths)
    }


def call_taps(model: Any, x: Any, paths: tuple[str, ...], logits: bool) -> tuple[dict[str, Any], Any]:
    """Run a tap model in inference mode: ({path: output}, logits or None)."""
    out = model(x, training=False)
    if not isinstance(out, list | tuple):
        out = [out]
    outputs = {p: out[i] for i, p in enumerate(paths)}
    return outputs, (out[len(paths)] if logits else None)
