"""The contracted read-out: a channel objective on a conv read linearly, computed from the conv's input.

An objective that only takes channel means of a Conv2D read before its activation (or one
without an activation) is, per image b,

    mean_hw(conv(x, K) + bias) . w_b  =  mean_hw(conv(x, K w_b)) + bias . w_b

so engine.maximize's step convolves the layer's input with the B kernels K w_b (one output
channel per image; the diagonal of the (B, h, w, B) result is kept) instead of computing all C
channels for every image, forward and backward: C/B times less work in that layer. The input
gradients every earlier layer needs are unchanged, so the frozen prefix is still recomputed
each step (the gradient with respect to the image needs every activation of it).
bench/maximize_profile.py measures it (11% of the VGG16 block3_conv1 step at batch 16).
"""

from __future__ import annotations

from typing import Any

from engine.maximize.graphs import linear_conv
from engine.models import ModelHandle

READOUT = True  # read linear conv objectives out of the conv's input (readout_paths); False: never


def readout_paths(
    h: ModelHandle, paths: tuple[str, ...], tap_mode: bool | str, weights: Any, shapes: dict, batch: int
) -> tuple[str, ...]:
    """The tapped conv layers whose objective is read out of their input (the contracted read-out).

    An objective that only takes channel means of a conv read linearly (before its activation)
    is, per image b, mean_hw(conv(x, K) + bias) . w_b = mean_hw(conv(x, K w_b)) + bias . w_b.
    So the loop convolves the layer's input with the B kernels K w_b (one output channel per
    image, the diagonal kept) instead of computing all C channels for every image, forward and
    backward: C/B times less work in that layer (16x for VGG16 block3_conv1 at batch 16), the
    same value and gradient up to float rounding. Only where B < C and no other term reads the
    layer's output.
    """
    if not READOUT:
        return ()
    out = []
    for p in paths:
        other = p in weights.unit or p in weights.layer or p in weights.neuron
        other = other or any(key[0] == p for key in weights.custom)
        if other or p not in weights.channel or batch >= int(shapes[p][-1]):
            continue
        if linear_conv(h, p, tap_mode) is not None:
            out.append(p)
    return tuple(out)


def readout_value(conv: Any, x_in: Any, w: Any) -> Any:
    """Per image b: mean over positions of conv(x_in, K)[b] . w[b] plus bias . w[b] (see readout_paths)."""
    import tensorflow as tf

    kernel = tf.cast(tf.convert_to_tensor(conv.kernel), x_in.dtype)
    k = tf.tensordot(kernel, tf.cast(w, x_in.dtype), axes=[[3], [1]])  # (kh, kw, cin, B)
    y = conv.convolution_op(x_in, k)  # (B, h, w, B): image a through image b's kernel
    value = tf.reduce_mean(tf.linalg.diag_part(tf.transpose(y, [1, 2, 0, 3])), axis=[0, 1])
    if conv.use_bias:
        value = value + tf.linalg.matvec(
            tf.cast(w, x_in.dtype), tf.cast(tf.convert_to_tensor(conv.bias), x_in.dtype)
        )
    return tf.cast(value, tf.float32)
