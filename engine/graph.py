"""Flatten a Keras model, nested models included, into one functional graph.

Feature maps, CAM, receptive fields and maximization all need the output of an
inner layer of a nested model (e.g. `vgg16/block5_conv3` inside a Sequential)
*connected to the outer input*. Keras gives each nested model its own graph, so we
re-run the model's graph node by node on a fresh symbolic input, descending into
nested Functional and Sequential models, and record every layer's output under its
path. The resulting tensors share the original layer objects (and weights).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import tree

from engine.common import SEP


def is_container(op: Any) -> bool:
    """True for models whose inner layers we expand (Functional and Sequential)."""
    return isinstance(op, keras.Sequential) or (
        isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth") and getattr(op, "inputs", None)
    )


def trace(model: Any, x: Any, taps: dict[str, Any], prefix: str = "") -> Any:
    """Run `model` on symbolic `x`, recording each layer's output in taps[path]; return the output."""
    if isinstance(model, keras.Sequential):
        for layer in model.layers:
            x = _call(layer, (x,), {}, taps, prefix)
        return x
    if is_container(model):
        tensors: dict[int, Any] = {}
        for ref, value in zip(model.inputs, tree.flatten(x)):
            tensors[id(ref)] = value
        by_depth = model._nodes_by_depth
        for depth in sorted(by_depth, reverse=True):
            for node in by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                if any(id(t) not in tensors for t in node.input_tensors):
                    continue
                args, kwargs = node.arguments.fill_in(tensors)
                out = _call(node.operation, args, kwargs, taps, prefix)
                for ref, value in zip(node.outputs, tree.flatten(out)):
                    tensors[id(ref)] = value
        outs = [tensors[id(o)] for o in model.outputs]
        return outs[0] if len(outs) == 1 else outs
    return model(x)


def _call(op: Any, args: tuple, kwargs: dict, taps: dict[str, Any], prefix: str) -> Any:
    path = prefix + op.name
    if is_container(op):
        out = trace(op, args[0], taps, path + SEP)
    else:
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        out = op(*args, **kwargs)
    taps[path] = out
    return out


class PreActivation(keras.layers.Layer):
    """Calls a layer with its activation switched to linear: the logits of a softmax/sigmoid head."""

    def __init__(self, inner: keras.layers.Layer, **kwargs: Any) -> None:
        super().__init__(name=f"{inner.name}_logits", **kwargs)
        self.inner = inner

    def call(self, x: Any) -> Any:
        activation = self.inner.activation
        self.inner.activation = keras.activations.linear
        try:
            return self.inner.call(x)
        finally:
            self.inner.activation = activation


def activation_name(op: Any) -> str:
    """'softmax', 'sigmoid', 'linear' or another name for the activation a layer applies last."""
    if isinstance(op, keras.layers.Softmax):
        return "softmax"
    fn = getattr(op, "activation", None)
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        return fn
    return getattr(fn, "__name__", "other")


def logits_of(output: Any) -> tuple[Any, str]:
    """Return (pre-activation tensor, final activation name) for a model output tensor."""
    op, node_index, _ = output._keras_history
    name = activation_name(op)
    if name not in ("softmax", "sigmoid"):
        return output, name
    node = op._inbound_nodes[node_index]
    inp = node.input_tensors[0]
    if isinstance(op, (keras.layers.Activation, keras.layers.Softmax)):
        return inp, name
    return PreActivation(op)(inp), name
