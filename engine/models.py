"""Model loading and the ModelHandle every engine function takes.

Specs: a path (.keras, .h5/.hdf5, SavedModel folder), "builtin:NAME", or
"keras:NAME[?weights=none]" for keras.applications. Safe mode stays on unless
trust=True: a file whose config holds a Lambda layer or unknown custom code is
refused before Keras deserializes anything.

The handle flattens nested models into one functional graph (engine.graph), so
any layer path ("vgg16/block5_conv3") can be tapped, differentiated and traced
for receptive fields.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from engine.common import SEP
from engine.errors import EngineError, LayerNotFound, ModelLoadError, UnsafeModel
from engine.scaling import check_scaling, remember_scaling, remembered_scaling


@dataclass(frozen=True)
class LayerInfo:
    """One row of the layer tree. Plain data (no TensorFlow objects), safe to send to the GUI."""

    path: str
    name: str
    type: str
    output_shape: tuple[int | None, ...]
    params: int
    kind: str  # conv | dense | pool | norm | activation | merge | reshape | model | input | other
    children: tuple[LayerInfo, ...] = ()

    @property
    def spatial(self) -> bool:
        """True when the output has (H, W, C) axes."""
        return len(self.output_shape) == 3

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


_KINDS = {
    "conv": ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"),
    "dense": ("Dense", "EinsumDense"),
    "pool": ("MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D"),
    "norm": ("BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization", "Rescaling"),
    "activation": ("Activation", "ReLU", "Softmax", "LeakyReLU", "PReLU", "ELU"),
    "merge": ("Add", "Concatenate", "Multiply", "Average", "Maximum", "Minimum", "Subtract"),
    "reshape": (
        "Flatten",
        "Reshape",
        "ZeroPadding2D",
        "Cropping2D",
        "Dropout",
        "SpatialDropout2D",
        "UpSampling2D",
    ),
}


def _kind(op: Any) -> str:
    from engine.graph import is_container

    if is_container(op):
        return "model"
    name = type(op).__name__
    for kind, names in _KINDS.items():
        if name in names:
            return kind
    return "other"


# keras.applications constructors -> input scaling of their preprocess_input
_APP_SCALING = [
    (r"^(vgg16|vgg19|resnet50|resnet101|resnet152)$", "caffe"),
    (r"^densenet", "torch"),
    (r"^(efficientnet|convnext|regnet|mobilenetv3)", "byte"),
    (r"^(mobilenet|mobilenetv2|inceptionv3|inceptionresnetv2|xception|resnet\d+v2|nasnet)", "signed"),
]


def _app_scaling(name: str) -> str:
    key = name.lower()
    for pattern, scaling in _APP_SCALING:
        if re.search(pattern, key):
            return scaling
    return "signed"


class ModelHandle:
    """A loaded model plus everything the engine derives from it (flat graph, logits, layer tree)."""

    def __init__(
        self,
        model: Any,
        *,
        name: str,
        spec: str,
        scaling: str = "unit",
        class_names: list[str] | None = None,
        opaque: bool = False,
    ) -> None:
        import keras

        from engine.graph import logits_of, trace

        if len(model.inputs) != 1:
            raise ModelLoadError(
                f"model {name!r} has {len(model.inputs)} inputs; multi-input models are not supported "
                "(Convscope needs one image input)"
            )
        shape = tuple(model.inputs[0].shape[1:])
        if len(shape) != 3:
            raise ModelLoadError(
                f"model {name!r} takes input of shape {shape}; Convscope needs images (H, W, C)"
            )
        h, w, c = shape
        if c not in (1, 3, 4) and c is not None:
            raise ModelLoadError(
                f"model {name!r} takes {c}-channel input; Convscope supports 1 or 3 channels"
            )
        self.model = model
        self.name = name
        self.spec = spec
        self.scaling = check_scaling(scaling)
        self.opaque = opaque
        self.trusted = False  # load_model sets it: whether the file was loaded with trust=True
        self.input_shape: tuple[int, int, int] = (h or 224, w or 224, c or 3)
        self.flat_input = keras.Input(shape=self.input_shape, name="convscope_input")
        self._taps: dict[str, Any] = {}
        out = trace(model, self.flat_input, self._taps)
        if isinstance(out, list):
            out = out[0]  # multi-output models: the first output is the one we explain
        self.output = out
        self.logits, self.output_activation = logits_of(out)
        n_out = int(out.shape[-1]) if len(out.shape) == 2 else 0
        self.num_outputs = n_out
        self.binary = self.output_activation == "sigmoid" and n_out == 1
        self.num_classes = 2 if self.binary else n_out
        if class_names is not None and len(class_names) != self.num_classes:
            class_names = None
        if class_names is None and self.binary:
            class_names = ["negative", "positive"]
        self.class_names = list(class_names) if class_names else None
        self.layers: list[LayerInfo] = self._layer_tree(model, "")
        self._submodels: dict[tuple[str, ...], Any] = {}

    # ----- layer lookup -------------------------------------------------
    def _layer_tree(self, model: Any, prefix: str) -> list[LayerInfo]:
        import keras

        from engine.graph import is_container

        infos = []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            path = prefix + layer.name
            tensor = self._taps.get(path)
            shape = tuple(tensor.shape[1:]) if tensor is not None and hasattr(tensor, "shape") else ()
            children = tuple(self._layer_tree(layer, path + SEP)) if is_container(layer) else ()
            infos.append(
                LayerInfo(
                    path=path,
                    name=layer.name,
                    type=type(layer).__name__,
                    output_shape=shape,
                    params=int(layer.count_params()) if layer.built else 0,
                    kind=_kind(layer),
                    children=children,
                )
            )
        return infos

    def all_layers(self) -> list[LayerInfo]:
        """Every layer, nested ones included, in graph order."""
        return [info for top in self.layers for info in top.walk()]

    def info(self, path: str) -> LayerInfo:
        for info in self.all_layers():
            if info.path == path:
                return info
        raise self._not_found(path)

    def _not_found(self, path: str) -> LayerNotFound:
        names = [i.path for i in self.all_layers()]
        hint = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
        return LayerNotFound(f"no layer {path!r} in model {self.name!r}; layers: {hint}")

    def resolve(self, path: str) -> str:
        """Canonical path for `path`; a bare inner name ("block5_conv3") is accepted when unique."""
        if path in self._taps:
            return path
        matches = [p for p in self._taps if p.rsplit(SEP, 1)[-1] == path]
        if len(matches) == 1:
            return matches[0]
        raise self._not_found(path)

    def layer(self, path: str) -> Any:
        """The Keras layer object at `path`."""
        path = self.resolve(path)
        obj = self.model
        for part in path.split(SEP):
            obj = obj.get_layer(part)
        return obj

    def symbolic(self, path: str) -> Any:
        """The KerasTensor output of `path` in the flat graph rooted at flat_input."""
        return self._taps[self.resolve(path)]

    def logits_symbolic(self) -> Any:
        return self.logits

    def submodel(self, paths: tuple[str, ...] | list[str], logits: bool = False) -> Any:
        """A keras.Model from flat_input to the given layers' outputs (and the logits last when asked)."""
        import keras

        key = tuple(self.resolve(p) for p in paths) + (("__logits__",) if logits else ())
        model = self._submodels.get(key)
        if model is None:
            outputs = [self._taps[p] for p in key if p != "__logits__"]
            if logits:
                outputs.append(self.logits)
            model = keras.Model(self.flat_input, outputs, name="convscope_taps")
            self._submodels[key] = model
        return model

    @cached_property
    def probability_model(self) -> Any:
        import keras

        return keras.Model(self.flat_input, [self.output, self.logits], name="convscope_predict")

    def default_cam_layer(self) -> str:
        """The last layer whose output still has spatial extent (H, W > 1)."""
        best = None
        for info in self.all_layers():
            if info.spatial and info.kind != "model" and (info.output_shape[0] or 0) > 1:
                best = info.path
        if best is None:
            raise EngineError(f"model {self.name!r} has no layer with spatial extent")
        return best

    def __repr__(self) -> str:
        return f"ModelHandle({self.name!r}, input_shape={self.input_shape}, scaling={self.scaling!r})"


# ----- loading -----------------------------------------------------------
_UNSAFE_CLASSES = {"Lambda", "TFOpLambda", "SlicingOpLambda"}


def _scan_config(config: Any, found: set[str]) -> None:
    if isinstance(config, dict):
        cls = config.get("class_name")
        if isinstance(cls, str) and cls in _UNSAFE_CLASSES:
            found.add(cls)
        mod = config.get("module")
        if (
            isinstance(cls, str)
            and isinstance(mod, str)
            and not (mod.startswith("keras") or mod.startswith("builtins"))
        ):
            found.add(f"{cls} from module {mod}")
        if isinstance(config.get("registered_name"), str) and ">" in config["registered_name"]:
            found.add(config["registered_name"])
        for value in config.values():
            _scan_config(value, found)
    elif isinstance(config, list):
        for value in config:
            _scan_config(value, found)


def _file_config(path: Path) -> Any | None:
    """The model config stored in a .keras zip or a legacy .h5 file, or None if it has none."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return json.loads(zf.read("config.json"))
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                return None
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8")
            return json.loads(raw)
    except KeyError:
        raise ModelLoadError(f"{path.name}: not a Keras model file (no config.json inside)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path.name}: not a readable Keras model file ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:200]


def _check_safe(path: Path, config: Any) -> None:
    found: set[str] = set()
    _scan_config(config, found)
    if found:
        what = ", ".join(sorted(found))
        raise UnsafeModel(
            f"{path.name} contains code that runs on load ({what}); refused in safe mode. "
            "Load it with trust=True (CLI --trust, GUI 'Trust this file') only if you trust its source"
        )


def _load_file(path: Path, trust: bool) -> Any:
    import keras

    if path.is_dir():
        return _load_savedmodel(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelLoadError(f"{path.name}: unsupported model format; use .keras, .h5 or a SavedModel folder")
    config = _file_config(path)
    if config is None:
        raise ModelLoadError(f"{path.name}: holds weights only, no model architecture")
    if not trust:
        _check_safe(path, config)
    try:
        if suffix in (".h5", ".hdf5"):
            from engine.legacy import load_h5

            return load_h5(path, safe_mode=not trust)
        return keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any Keras failure becomes one line
        text = _short(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise UnsafeModel(
                f"{path.name} contains code that runs on load; refused in safe mode (use trust=True / --trust)"
            ) from None
        if "Could not locate" in text or "Unknown layer" in text:
            raise ModelLoadError(f"{path.name} uses a custom layer Convscope does not know: {text}") from None
        raise ModelLoadError(f"{path.name}: could not load model ({text})") from None


def _load_savedmodel(path: Path) -> Any:
    if not (path / "saved_model.pb").exists():
        raise ModelLoadError(f"{path}: a folder but not a SavedModel (no saved_model.pb)")
    from engine.savedmodel import load_savedmodel

    try:
        return load_savedmodel(path)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{path.name}: could not load SavedModel ({_short(exc)})") from None


def _load_keras_app(name: str, query: str) -> tuple[Any, str, list[str] | None]:
    import keras

    params = {k.lower(): v[-1] for k, v in parse_qs(query).items()}
    weights = params.get("weights", "imagenet")
    weights_arg: str | None = None if weights.lower() in ("none", "random", "") else weights
    apps = {n.lower(): n for n in dir(keras.applications) if n[:1].isupper()}
    real = apps.get(name.lower())
    if real is None:
        raise ModelLoadError(f"unknown keras.applications model {name!r}; e.g. VGG16, ResNet50, MobileNetV2")
    ctor = getattr(keras.applications, real)
    kwargs: dict[str, Any] = {"weights": weights_arg}
    if "input" in params:
        size = int(params["input"])
        kwargs.update(input_shape=(size, size, 3), include_top=False)
    try:
        model = ctor(**kwargs)
    except Exception as exc:  # noqa: BLE001
        text = str(exc)
        url = re.search(r"https?://\S+?\.(h5|keras|weights\.h5)", text)
        if url or "fetch" in text.lower() or "URL" in text:
            fname = url.group(0).rsplit("/", 1)[-1] if url else f"{real.lower()} weights file"
            cache = _keras_cache()
            raise ModelLoadError(
                f"cannot download ImageNet weights for {real} (offline?); place {fname} in {cache} "
                f"or use keras:{real}?weights=none"
            ) from None
        raise ModelLoadError(f"could not build {real}: {_short(exc)}") from None
    class_names = _imagenet_class_names() if weights_arg == "imagenet" else None
    return model, real, class_names


def _keras_cache() -> Path:
    """The folder where keras.utils.get_file looks for downloaded weights."""
    from keras.src.backend import config

    return Path(config.keras_home()) / "models"


def _imagenet_class_names() -> list[str] | None:
    """ImageNet class names from the Keras cache, when it holds imagenet_class_index.json."""
    cache = _keras_cache() / "imagenet_class_index.json"
    try:
        data = json.loads(cache.read_text())
        return [data[str(i)][1] for i in range(len(data))]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def load_model(spec: str | os.PathLike, trust: bool = False, scaling: str | None = None) -> ModelHandle:
    """Load a model from a path, "builtin:NAME" or "keras:NAME[?weights=none]".

    scaling overrides the input scaling (unit | byte | signed | caffe | torch); for files
    the choice is remembered and reused next time.
    """
    if scaling is not None:
        scaling = check_scaling(scaling)
    text = os.fspath(spec)
    if text.startswith("builtin:"):
        from engine import zoo

        entry = zoo.get(text.split(":", 1)[1])
        if not entry.model_path.exists():
            raise ModelLoadError(
                f"built-in model file missing: {entry.model_path}; run `python main.py train builtin:{entry.name}`"
            )
        model = _load_file(entry.model_path, trust=False)
        return ModelHandle(
            model,
            name=entry.name,
            spec=text,
            scaling=scaling or entry.scaling,
            class_names=list(entry.class_names),
        )
    if text.startswith("keras:"):
        name, _, query = text[len("keras:") :].partition("?")
        model, real, class_names = _load_keras_app(name, query)
        return ModelHandle(
            model, name=real, spec=text, scaling=scaling or _app_scaling(real), class_names=class_names
        )
    path = Path(text).expanduser()
    model = _load_file(path, trust)
    if scaling is not None:
        remember_scaling(path, scaling)
    else:
        scaling = remembered_scaling(path) or "unit"
    class_names = _sidecar_class_names(path)
    handle = ModelHandle(
        model,
        name=path.stem if path.is_file() else path.name,
        spec=str(path),
        scaling=scaling,
        class_names=class_names,
        opaque=path.is_dir() and len(model.layers) <= 2,
    )
    handle.trusted = bool(trust)
    return handle


def _sidecar_class_names(path: Path) -> list[str] | None:
    """Class names from MODEL.classes.txt (one per line) or MODEL.json {"class_names": [...]} beside the file."""
    base = path.parent / path.stem if path.is_file() else path
    txt = Path(str(base) + ".classes.txt")
    if txt.is_file():
        names = [line.strip() for line in txt.read_text().splitlines() if line.strip()]
        return names or None
    js = Path(str(base) + ".json")
    if js.is_file():
        try:
            names = json.loads(js.read_text()).get("class_names")
            return [str(n) for n in names] if names else None
        except (ValueError, AttributeError):
            return None
    return None


@dataclass
class _Cache:
    """Tiny per-process LRU of loaded models keyed by (spec, trust, scaling)."""

    size: int = 2
    items: dict[tuple, ModelHandle] = field(default_factory=dict)

    def get(self, spec: str, trust: bool = False, scaling: str | None = None) -> ModelHandle:
        key = (spec, trust, scaling)
        if key in self.items:
            self.items[key] = self.items.pop(key)
            return self.items[key]
        handle = load_model(spec, trust=trust, scaling=scaling)
        self.items[key] = handle
        while len(self.items) > self.size:
            self.items.pop(next(iter(self.items)))
        return handle


model_cache = _Cache()
