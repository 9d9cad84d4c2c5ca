"""A batch too big for the memory there is, run as chunks in lockstep (engine.memory's budget).

engine.maximize estimates what one image of its step takes (engine.memory.activation_bytes of
the tap model: every layer's output kept for the backward pass, its gradient and working
copies) and, when the whole batch does not fit the budget, compiles its step for a chunk of k
images and runs the chunks one after the other at every step. Each chunk keeps its own pixels
and optimizer state, swapped into the one compiled loop before its turn; every image sees the
same transforms at each step (they depend on the seed and the step only), so a chunked run
gives the same images as one batch (up to float rounding) and its Steps hold the whole batch.

Objectives whose images interact (a batchwise term such as diversity) or that address single
neurons are not split: they run as one batch, as before.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from engine.memory import activation_bytes, fit_batch


def splittable(plan: Any, coupled: bool) -> bool:
    """Whether a batch with this LossPlan may run in chunks (independent images, row-wise weights)."""
    return not coupled and not plan.neuron and not plan.custom


def chunk_size(taps: Any, batch: int, plan: Any, coupled: bool, budget: int | None = None) -> int:
    """Images per chunk: the whole batch, or as many as fit the memory budget (engine.memory)."""
    if batch <= 1 or not splittable(plan, coupled):
        return batch
    k = fit_batch(batch, activation_bytes(taps, training=True), budget)
    if k >= batch:
        return batch
    n = -(-batch // k)  # chunks, then the smallest equal size that covers the batch in that many
    return -(-batch // n)


def _rows(a: np.ndarray, lo: int, hi: int, k: int) -> np.ndarray:
    """Rows lo:hi of a, padded to k rows by repeating the last (the padding images are dropped)."""
    part = np.asarray(a)[lo:hi]
    if len(part) < k:
        part = np.concatenate([part, np.repeat(part[-1:], k - len(part), axis=0)])
    return part


def slice_plan(plan: Any, lo: int, hi: int, k: int) -> Any:
    """The LossPlan of images lo:hi, padded to k images."""
    return dataclasses.replace(
        plan,
        channel={p: _rows(w, lo, hi, k) for p, w in plan.channel.items()},
        unit={p: _rows(w, lo, hi, k) for p, w in plan.unit.items()},
        layer={p: _rows(w, lo, hi, k) for p, w in plan.layer.items()},
        logits=None if plan.logits is None else _rows(plan.logits, lo, hi, k),
        targets=_rows(plan.targets, lo, hi, k),
    )


class ChunkedLoop:
    """The interface of run._Loop (train_step, evaluate, render, grad_size, prm) over a batch run
    as chunks of `loop`'s batch size; outputs are the whole batch's, padding dropped."""

    def __init__(self, loop: Any, batch: int, plan: Any, start: np.ndarray, seed: int) -> None:
        import tensorflow as tf

        self.loop, self.batch = loop, int(batch)
        k = int(loop.prm.shape[0])
        self.bounds = [(lo, min(lo + k, batch)) for lo in range(0, batch, k)]
        self.plans = [slice_plan(plan, lo, hi, k) for lo, hi in self.bounds]
        self.prm, self.probe_in_step, self.grad_size_fn = loop.prm, loop.probe_in_step, loop.grad_size
        self.states: list[list[Any]] = []
        for (lo, hi), part in zip(self.bounds, self.plans):
            chunk_start = _rows(start, lo, hi, k) if start.ndim == 4 else start
            loop.reset(chunk_start, part, seed)
            self.states.append([tf.Variable(v, trainable=False) for v in self._vars()])

    @property
    def owner(self) -> Any:
        return self.loop.owner

    @owner.setter
    def owner(self, value: Any) -> None:
        self.loop.owner = value

    def _vars(self) -> list[Any]:
        opt = self.loop.opt
        extra = [opt.m, opt.v, opt.t] if opt.name == "adam" else []
        return [self.loop.prm.var, *extra]

    def _each(self, fn: Any, *args: Any, keep: bool = False) -> list[Any]:
        """fn(*args) per chunk with its state swapped in (and back out when keep); trimmed outputs."""
        out = []
        for j, (lo, hi) in enumerate(self.bounds):
            for var, saved in zip(self._vars(), self.states[j]):
                var.assign(saved)
            self.loop.assign_weights(self.plans[j])
            res = fn(*args)
            if keep:
                for var, saved in zip(self._vars(), self.states[j]):
                    saved.assign(var)
            res = res if isinstance(res, tuple | list) else (res,)
            out.append([r[: hi - lo] if len(r.shape) else r for r in res])
        return out

    @staticmethod
    def _join(parts: list[list[Any]]) -> tuple[Any, ...]:
        import tensorflow as tf

        cols = list(zip(*parts))
        return tuple(tf.reduce_all(c) if not len(c[0].shape) else tf.concat(c, axis=0) for c in cols)

    def train_step(self, t: Any, lr_t: Any) -> tuple[Any, ...]:
        return self._join(self._each(self.loop.train_step, t, lr_t, keep=True))

    def evaluate(self) -> tuple[Any, ...]:
        return self._join(self._each(self.loop.evaluate))

    def render(self) -> Any:
        return self._join(self._each(self.loop.render))[0]

    def grad_size(self, t: Any) -> Any:
        return self._join(self._each(self.grad_size_fn, t))[0]
