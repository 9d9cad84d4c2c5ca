"""Objectives after Lucid/Lucent: composable objects, the string grammar that parses into them, and
the per-image loss they compile to.

An objective is an :class:`Expr`, a weighted sum of primitive :class:`Atom` s, built by the
one-function constructors of engine.maximize.objective_terms (``channel``, ``neuron``,
``layer``, ``class_logit``, ``direction``, ``diversity``) and combined with ``+``, ``-`` and
``*`` / ``/`` by numbers: ``channel("conv3", 5) - 0.1 * layer("conv3")``. Strings parse into
the same objects (``parse("conv3:5 - 0.1*conv3") == that``).

Grammar (whitespace ignored)::

    expression := ["+" | "-"] term (("+" | "-") term)*
    term       := [number "*"] atom ["*" number]          e.g. "0.5*conv3:5", "conv3:5*2", "-class:3"
    atom       := "class:" (index | name | channels)      the pre-softmax score (logit) of a class
                | LAYER                                    the whole layer: mean of its squared output
                | LAYER ":" channels                       a channel: mean of its map (a unit of a dense layer)
                | LAYER ":" channels "@" row "," col       a neuron: one channel at one spatial position
                | NAME "(" LAYER ")"                       a registered objective, e.g. "diversity(conv3)"
    channels   := index | index "," index ... | first ".." last (inclusive) | "*" (all channels)

LAYER is a layer path such as ``conv3`` or ``vgg16/block5_conv3``. An atom naming several
channels makes a *batch*: ``"conv3:*"`` optimizes one image per channel of conv3 in a single
loop, ``"conv3:0..15 - 0.1*conv3"`` the same with a penalty on the whole layer for each. A
list of expressions (strings or objects) is a batch too (one image each). Atoms that are linear
in the layer outputs (class, channel, neuron, dense unit, direction) and the whole-layer mean
square compile to a few einsums over (B, C) weight matrices (:func:`plan`), so image b's loss
only ever depends on image b and a batch runs as fast as one loop. Anything else is a
:class:`Custom` atom: a TensorFlow function of one layer's batch of outputs, added as is
(``diversity`` is one, and couples the images of a batch: "conv3:5,5,5,5 + 10*diversity(conv3)").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.models import ModelHandle

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.:/]))
      | (?P<call>[A-Za-z_]\w*\(\s*[A-Za-z_][\w./]*\s*\))
      | (?P<atom>[A-Za-z_][\w./]*(?::(?:\*|[\w.,]+))?(?:@\s*\d+\s*,\s*\d+)?)
      | (?P<op>[-+*])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Custom:
    """A non-linear objective on one layer: fn maps its outputs (B, ...) to one value per image (B,).

    batchwise: the value of image b depends on the other images (as diversity's), so each image
    gets its own start. fn should be a module-level function, so equal objectives share a loop.
    """

    name: str
    fn: Callable[[Any], Any]
    batchwise: bool = False


@dataclass(frozen=True)
class Atom:
    """One primitive objective before it is resolved against a model.

    channels: None (whole layer), a tuple of ints, or "*" (all channels); for a class
    atom the entries may also be class names. Several channels make a batch.
    vector: weights on the layer's spatially averaged channels (a direction), or None.
    custom: a non-linear objective of the layer, or None.
    """

    layer: str  # "class" for class scores
    channels: Any = None
    pos: tuple[int, int] | None = None
    vector: tuple[float, ...] | None = None
    custom: Custom | None = None

    def text(self, channel: Any = None) -> str:
        if self.custom is not None:
            return f"{self.custom.name}({self.layer})"
        if self.vector is not None:
            return f"direction({self.layer})"
        ch = self.channels if channel is None else channel
        if ch is None:
            out = self.layer
        elif isinstance(ch, tuple):
            out = f"{self.layer}:{','.join(map(str, ch))}"
        else:
            out = f"{self.layer}:{ch}"
        if self.pos is not None:
            out += f"@{self.pos[0]},{self.pos[1]}"
        return out


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise EngineError(f"an objective can only be scaled by a number, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Expr:
    """A composable objective: the weighted sum of atoms one image (or one batch row) maximizes.

    Build it with the constructors in engine.maximize.objective_terms or with parse(); combine
    with +, - and * or / by a number. str() gives the text in the string grammar.
    """

    parts: tuple[tuple[float, Atom], ...]
    source: str | None = field(default=None, compare=False)

    def __add__(self, other: Any) -> Expr:
        if isinstance(other, int | float) and other == 0:
            return self  # so sum([...]) works
        if not isinstance(other, Expr):
            return NotImplemented
        return Expr(self.parts + other.parts)

    __radd__ = __add__

    def __neg__(self) -> Expr:
        return self * -1.0

    def __sub__(self, other: Any) -> Expr:
        if not isinstance(other, Expr):
            return NotImplemented
        return self + (-other)

    def __mul__(self, factor: Any) -> Expr:
        if isinstance(factor, Expr):
            raise EngineError(f"cannot multiply two objectives ({self} * {factor}); scale by a number")
        w = _number(factor)
        return Expr(tuple((weight * w, atom) for weight, atom in self.parts))

    __rmul__ = __mul__

    def __truediv__(self, factor: Any) -> Expr:
        return self * (1.0 / _number(factor))

    def __str__(self) -> str:
        if self.source is not None:
            return self.source
        return _describe_parts((w, a.text()) for w, a in self.parts)

    @property
    def uses_class(self) -> bool:
        return any(a.layer == "class" for _, a in self.parts)


_CALLS: dict[str, Callable[[str], Expr]] = {}


def string_form(fn: Callable[[str], Expr]) -> Callable[[str], Expr]:
    """Register a one-layer objective constructor so strings can write it as NAME(LAYER)."""
    _CALLS[fn.__name__] = fn
    return fn


@dataclass(frozen=True)
class Term:
    """A resolved atom with a weight: what one image of a batch optimizes (a sum of terms)."""

    weight: float
    kind: str  # class | layer | channel | neuron | unit | direction | custom
    layer: str  # layer path; "" for class terms
    index: int = -1  # channel, unit or class index
    pos: tuple[int, int] | None = None
    vector: tuple[float, ...] | None = None  # direction: weights on the channel means
    custom: Custom | None = None


@dataclass(frozen=True)
class Objective:
    """A batch of resolved expressions: terms[b] is the sum image b maximizes."""

    texts: tuple[str, ...]
    terms: tuple[tuple[Term, ...], ...]

    @property
    def batch(self) -> int:
        return len(self.terms)

    @property
    def layers(self) -> tuple[str, ...]:
        """Layer paths the objective reads, in first-use order (class terms read the logits)."""
        seen: dict[str, None] = {}
        for terms in self.terms:
            for t in terms:
                if t.kind != "class":
                    seen[t.layer] = None
        return tuple(seen)

    @property
    def coupled(self) -> bool:
        """Whether an image's objective depends on the other images of the batch (diversity)."""
        return any(t.custom is not None and t.custom.batchwise for terms in self.terms for t in terms)

    @property
    def uses_logits(self) -> bool:
        return any(t.kind == "class" for terms in self.terms for t in terms)

    def target_class(self, b: int) -> int | None:
        """The class image b pushes up most (largest positive class weight), or None."""
        best = [(t.weight, t.index) for t in self.terms[b] if t.kind == "class" and t.weight > 0]
        return max(best)[1] if best else None

    def neuron(self) -> Term | None:
        """The single neuron term when every image optimizes exactly one neuron (for crops), else None."""
        found = None
        for terms in self.terms:
            if len(terms) != 1 or terms[0].kind != "neuron":
                return None
            found = terms[0]
        return found


# ----- parsing ---------------------------------------------------------------------------------
def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            rest = text[pos:].strip()
            if not rest:
                break
            raise EngineError(f"cannot read objective {text!r} at {rest[:20]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _channels(spec: str, text: str) -> Any:
    spec = spec.strip()
    if spec == "*":
        return "*"
    if ".." in spec:
        a, _, b = spec.partition("..")
        try:
            lo, hi = int(a), int(b)
        except ValueError:
            raise EngineError(f"objective {text!r}: channel range {spec!r} must be FIRST..LAST") from None
        if hi < lo:
            raise EngineError(f"objective {text!r}: channel range {spec!r} is empty")
        return tuple(range(lo, hi + 1))
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise EngineError(f"objective {text!r}: missing channel after ':'")
    return tuple(int(s) if s.lstrip("-").isdigit() else s for s in items)


def _atom(raw: str, text: str) -> Atom:
    pos = None
    if "@" in raw:
        raw, _, where = raw.partition("@")
        y, _, x = where.partition(",")
        pos = (int(y), int(x))
    layer, sep, chans = raw.partition(":")
    channels = _channels(chans, text) if sep else None
    if layer != "class" and channels not in (None, "*") and any(not isinstance(c, int) for c in channels):
        raise EngineError(f"objective {text!r}: channels of {layer!r} must be numbers")
    if layer == "class":
        if channels is None:
            raise EngineError(f"objective {text!r}: write class:INDEX or class:NAME")
        if pos is not None:
            raise EngineError(f"objective {text!r}: a class score has no position")
    return Atom(layer, channels, pos)


def _call(raw: str, text: str) -> Atom:
    """The atom of a registered objective written as NAME(LAYER), e.g. diversity(conv3)."""
    import engine.maximize.objective_terms  # noqa: F401 - registers the string forms

    name, _, rest = raw.partition("(")
    fn = _CALLS.get(name.strip())
    if fn is None:
        known = ", ".join(sorted(_CALLS)) or "none"
        raise EngineError(f"objective {text!r}: no objective {name.strip()!r}(...); known: {known}")
    parts = fn(rest.rstrip(")").strip()).parts
    if len(parts) != 1 or parts[0][0] != 1.0:
        raise EngineError(f"objective {text!r}: {name}(...) is not a single objective")
    return parts[0][1]


def parse(text: str) -> Expr:
    """Parse one objective string into an Expr (its atoms may still name several channels)."""
    if not isinstance(text, str) or not text.strip():
        raise EngineError("empty objective; e.g. 'conv3:5', 'class:2' or 'dense1:7'")
    tokens = _tokens(text)
    terms: list[tuple[float, Atom]] = []
    i, sign = 0, 1.0
    while i < len(tokens):
        while i < len(tokens) and tokens[i] == ("op", "-"):
            sign, i = -sign, i + 1
        while i < len(tokens) and tokens[i] == ("op", "+"):
            i += 1
        weight, atom = sign, None
        expect_factor = True
        while i < len(tokens) and expect_factor:
            kind, value = tokens[i]
            if kind == "num":
                weight *= float(value)
            elif kind in ("atom", "call"):
                if atom is not None:
                    raise EngineError(f"objective {text!r}: two layers multiplied ({atom.text()} * {value})")
                atom = _atom(value, text) if kind == "atom" else _call(value, text)
            else:
                raise EngineError(f"objective {text!r}: unexpected {value!r}")
            i += 1
            if i < len(tokens) and tokens[i] == ("op", "*"):
                i += 1
                if i >= len(tokens):
                    raise EngineError(f"objective {text!r}: ends with '*'")
            else:
                expect_factor = False
        if atom is None:
            raise EngineError(f"objective {text!r}: a term has a number but no layer or class")
        terms.append((weight, atom))
        if i < len(tokens):
            kind, value = tokens[i]
            if kind != "op" or value not in "+-":
                raise EngineError(f"objective {text!r}: expected '+' or '-' before {value!r}")
            sign = 1.0
    return Expr(tuple(terms), source=text)


def parse_expression(text: str) -> list[tuple[float, Atom]]:
    """Parse one objective string into (weight, Atom) pairs (atoms may still name several channels)."""
    return list(parse(text).parts)


def as_expressions(objective: Any) -> list[Expr]:
    """An objective (a string, an Expr, or a non-empty list of them: a batch) as a list of Exprs."""
    items = [objective] if isinstance(objective, str | Expr) else objective
    if isinstance(items, Sequence) and items and all(isinstance(o, str | Expr) for o in items):
        return [o if isinstance(o, Expr) else parse(o) for o in items]
    raise EngineError(f"objective must be a string, an objective or a list of them, got {objective!r}")


# ----- resolution against a model ----------------------------------------------------------------
def _class_index(h: ModelHandle, value: Any, text: str) -> int:
    n = int(getattr(h, "num_classes", 0) or 0)
    if isinstance(value, str):
        names = [str(c).lower() for c in (h.class_names or [])]
        if value.lower() not in names:
            raise EngineError(
                f"objective {text!r}: no class {value!r}; classes: {', '.join(h.class_names or [])}"
            )
        return names.index(value.lower())
    if not 0 <= value < n:
        raise EngineError(f"objective {text!r}: class {value} out of range; the model has {n} classes")
    return int(value)


def _expand(atom: Atom, shapes: dict[str, tuple], h: ModelHandle, text: str) -> tuple[Any, list[Any]]:
    """(canonical layer, list of channel values) for an atom; [None] for whole-layer atoms."""
    if atom.layer == "class":
        if atom.channels == "*":
            return "class", list(range(int(h.num_classes)))
        return "class", [_class_index(h, c, text) for c in atom.channels]
    path = h.resolve(atom.layer)
    shape = shapes[path]
    if atom.channels is None:
        return path, [None]
    n = int(shape[-1])
    chans = list(range(n)) if atom.channels == "*" else list(atom.channels)
    for c in chans:
        if not 0 <= c < n:
            raise EngineError(
                f"objective {text!r}: channel {c} out of range; {path} has {n} channels (0..{n - 1})"
            )
    return path, chans


def _term(weight: float, layer: str, channel: Any, atom: Atom, shapes: dict[str, tuple], text: str) -> Term:
    if layer == "class":
        return Term(weight, "class", "", int(channel))
    shape = shapes[layer]
    spatial = len(shape) == 3
    if atom.custom is not None:
        return Term(weight, "custom", layer, custom=atom.custom)
    if atom.vector is not None:
        if len(atom.vector) != int(shape[-1]):
            raise EngineError(
                f"objective {text!r}: the direction has {len(atom.vector)} entries; {layer} has {shape[-1]} channels"
            )
        return Term(weight, "direction", layer, vector=atom.vector)
    if channel is None:
        if atom.pos is not None:
            raise EngineError(
                f"objective {text!r}: name a channel before '@' (e.g. {layer}:0@{atom.pos[0]},{atom.pos[1]})"
            )
        return Term(weight, "layer", layer)
    if atom.pos is None:
        return Term(weight, "channel" if spatial else "unit", layer, int(channel))
    if not spatial:
        raise EngineError(f"objective {text!r}: {layer} has no spatial axes; drop the '@row,col'")
    y, x = atom.pos
    if not (0 <= y < (shape[0] or 0) and 0 <= x < (shape[1] or 0)):
        raise EngineError(
            f"objective {text!r}: position {y},{x} is outside {layer}'s {shape[0]}x{shape[1]} map"
        )
    return Term(weight, "neuron", layer, int(channel), (int(y), int(x)))


def layer_names(objective: Any) -> list[str]:
    """The layer names an objective mentions (before resolution), so the caller can build its graph."""
    names: dict[str, None] = {}
    for expr in as_expressions(objective):
        for _, atom in expr.parts:
            if atom.layer != "class":
                names[atom.layer] = None
    return list(names)


def parse_objective(objective: Any, h: ModelHandle, shapes: dict[str, tuple] | None = None) -> Objective:
    """Resolve an objective (a string, an Expr, or a list of them) against model `h` into a batch.

    shapes maps resolved layer paths to their output shape without the batch axis;
    by default the shapes at the model's input size.
    """
    exprs = as_expressions(objective)
    if shapes is None:
        shapes = {}
        for name in layer_names(exprs):
            path = h.resolve(name)
            shapes[path] = tuple(h.symbolic(path).shape[1:])
    texts: list[str] = []
    batch: list[tuple[Term, ...]] = []
    for expr in exprs:
        text = str(expr)
        expanded = [(w, a, *_expand(a, shapes, h, text)) for w, a in expr.parts]
        sizes = {len(chans) for *_, chans in expanded if len(chans) > 1}
        if len(sizes) > 1:
            raise EngineError(
                f"objective {text!r}: channel lists of different lengths {sorted(sizes)} cannot pair up"
            )
        n = sizes.pop() if sizes else 1
        for i in range(n):
            terms = []
            for w, atom, layer, chans in expanded:
                ch = chans[i] if len(chans) > 1 else chans[0]
                terms.append(_term(w, layer, ch, atom, shapes, text))
            batch.append(tuple(terms))
            texts.append(_describe(terms) if n > 1 or len(exprs) > 1 else text)
    obj = Objective(tuple(texts), tuple(batch))
    if obj.coupled and obj.batch < 2:
        raise EngineError(
            f"objective {texts[0]!r} compares the images of a batch; give it several, "
            "e.g. 'conv3:5,5,5,5 + 10*diversity(conv3)'"
        )
    return obj


def _term_text(t: Term) -> str:
    if t.kind == "class":
        return f"class:{t.index}"
    if t.kind == "layer":
        return t.layer
    if t.kind == "neuron":
        assert t.pos is not None
        return f"{t.layer}:{t.index}@{t.pos[0]},{t.pos[1]}"
    if t.kind == "direction":
        return f"direction({t.layer})"
    if t.custom is not None:
        return f"{t.custom.name}({t.layer})"
    return f"{t.layer}:{t.index}"


def _describe_parts(parts: Any) -> str:
    """Text of (weight, atom text) pairs in the string grammar: "0.5*conv3:5 - class:2"."""
    out = []
    for w, atom in parts:
        sign = "-" if w < 0 else "+"
        mag = abs(w)
        out.append(f"{sign} {'' if mag == 1 else f'{mag:g}*'}{atom}")
    text = " ".join(out)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


def _describe(terms: Sequence[Term]) -> str:
    return _describe_parts((t.weight, _term_text(t)) for t in terms)


# ----- compile to TensorFlow ------------------------------------------------------------------
@dataclass
class LossPlan:
    """Dense weight arrays that turn layer outputs into one loss per image (see loss())."""

    channel: dict[str, np.ndarray]  # layer -> (B, C) weights on the spatial mean of each channel
    unit: dict[str, np.ndarray]  # layer -> (B, units) weights on dense outputs
    layer: dict[str, np.ndarray]  # layer -> (B,) weights on the mean square of the whole output
    neuron: dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> ((n, 4) [b, y, x, c] int32, (n,) weights)
    logits: np.ndarray | None  # (B, n_logits) weights on the logits
    targets: np.ndarray  # (B,) class index whose probability is reported, -1 if none
    custom: dict[tuple[str, Custom], Any] = field(default_factory=dict)  # (layer, Custom) -> (B,) weights


def plan(obj: Objective, shapes: dict[str, tuple], n_logits: int, binary: bool = False) -> LossPlan:
    """Weight arrays for `obj`; a binary (single sigmoid) head scores class 0 as minus the logit."""
    b_total = obj.batch
    channel: dict[str, np.ndarray] = {}
    unit: dict[str, np.ndarray] = {}
    layer: dict[str, np.ndarray] = {}
    neurons: dict[str, list[tuple[list[int], float]]] = {}
    custom: dict[tuple[str, Custom], np.ndarray] = {}
    logits = np.zeros((b_total, max(n_logits, 1)), np.float32) if obj.uses_logits else None
    for b, terms in enumerate(obj.terms):
        for t in terms:
            if t.kind == "class":
                assert logits is not None
                if binary:
                    logits[b, 0] += t.weight if t.index == 1 else -t.weight
                else:
                    logits[b, t.index] += t.weight
            elif t.kind == "layer":
                layer.setdefault(t.layer, np.zeros((b_total,), np.float32))[b] += t.weight
            elif t.kind == "channel":
                c = int(shapes[t.layer][-1])
                channel.setdefault(t.layer, np.zeros((b_total, c), np.float32))[b, t.index] += t.weight
            elif t.kind == "unit":
                c = int(shapes[t.layer][-1])
                unit.setdefault(t.layer, np.zeros((b_total, c), np.float32))[b, t.index] += t.weight
            elif t.kind == "direction":  # linear on the channel means (the units of a dense layer)
                assert t.vector is not None
                c = int(shapes[t.layer][-1])
                into = channel if len(shapes[t.layer]) == 3 else unit
                row = into.setdefault(t.layer, np.zeros((b_total, c), np.float32))
                row[b] += t.weight * np.asarray(t.vector, np.float32)
            elif t.kind == "custom":
                assert t.custom is not None
                custom.setdefault((t.layer, t.custom), np.zeros((b_total,), np.float32))[b] += t.weight
            else:
                assert t.pos is not None
                neurons.setdefault(t.layer, []).append(([b, t.pos[0], t.pos[1], t.index], t.weight))
    neuron = {
        k: (np.array([i for i, _ in v], np.int32), np.array([w for _, w in v], np.float32))
        for k, v in neurons.items()
    }
    targets = np.array(
        [-1 if obj.target_class(b) is None else obj.target_class(b) for b in range(b_total)], np.int32
    )
    return LossPlan(channel, unit, layer, neuron, logits, targets, custom)


def loss(p: LossPlan, outputs: dict[str, Any], logits: Any = None, batch: int | None = None) -> Any:
    """Per-image objective (B,) from layer outputs {path: (B, ...)} and the logits (B, n)."""
    import tensorflow as tf

    total = None

    def add(value: Any) -> None:
        nonlocal total
        total = value if total is None else total + value

    for path, w in p.channel.items():
        add(tf.reduce_sum(tf.reduce_mean(outputs[path], axis=[1, 2]) * w, axis=-1))
    for path, w in p.unit.items():
        x = tf.reshape(outputs[path], [tf.shape(outputs[path])[0], -1])
        add(tf.reduce_sum(x * w, axis=-1))
    for path, w in p.layer.items():
        x = outputs[path]
        axes = list(range(1, len(x.shape)))
        add(tf.reduce_mean(tf.square(x), axis=axes) * w)
    for path, (idx, w) in p.neuron.items():
        vals = tf.gather_nd(outputs[path], idx) * w
        n = batch if batch is not None else int(p.targets.shape[0])
        add(tf.math.unsorted_segment_sum(vals, idx[:, 0], n))
    for (path, c), w in p.custom.items():
        add(c.fn(outputs[path]) * w)
    if p.logits is not None and logits is not None:
        add(tf.reduce_sum(logits * p.logits, axis=-1))
    if total is None:
        raise EngineError("the objective reads no layer")
    return total
