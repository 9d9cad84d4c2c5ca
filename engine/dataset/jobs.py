"""Job handlers for dataset scans, run by engine.jobs on the engine thread.

Kinds (all registered here; engine.dataset declares them to engine.jobs):

    scan          params: source, layer, k=9, model=None (the current model), batch_size=None,
                  cache=True, resume=True, cache_only=False. Yields Progress (images done / total, images/s in
                  the message); the result is a ScanResult. Cancel checkpoints; the next
                  "scan" with the same model, layer, k and source resumes from there.
                  cache_only=True returns the cached result or None, without scanning.
    scan_crops    params: result (a ScanResult), channels. -> {channel: uint8 (k, ry, rx, C)}
                  (for results too large to keep their crops, loaded from the source).
    scan_compare  params: result, a, b (class names or indices), n=8 channels, per_class=4,
                  model=None. -> {"separation": Separation, "examples": class_examples(...)} with
                  the maps of the n most separating channels for a few images of each class.
    scan_maps     params: result, ids (image ids), model=None. -> {"ids", "images", "maps":
                  [StrongestMap]}: each image's strongest channel with its map.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from engine.errors import EngineError
from engine.jobs import CancelToken, handler


def _model_for(params: Mapping[str, Any], result: Any = None) -> Any:
    """The request's model; for a result, the model it was scanned with."""
    from engine.job_handlers import current_handle, current_model
    from engine.models import model_cache

    if params.get("model"):
        return current_model(params)
    current = current_handle()
    if result is not None and (current is None or str(current.spec) != result.model):
        return model_cache.get(result.model)
    return current_model(params)


def _result(params: Mapping[str, Any]) -> Any:
    from engine.dataset.result import ScanResult

    result = params.get("result")
    if isinstance(result, ScanResult):
        return result
    if isinstance(result, str):
        return ScanResult.load(result)
    raise EngineError("no scan result given; run a scan first")


@handler("scan")
def _scan(params: Mapping[str, Any], token: CancelToken) -> Iterator[Any]:
    from engine.dataset.scanner import ScanRequest, run_scan

    if not params.get("source"):
        raise EngineError("choose a dataset source (a folder, builtin:digits or builtin:shapes)")
    if not params.get("layer"):
        raise EngineError("choose a layer to scan")
    request = ScanRequest(
        params["source"],
        str(params["layer"]),
        int(params.get("k", 9)),
        batch_size=params.get("batch_size"),
        cache=bool(params.get("cache", True)),
        resume=bool(params.get("resume", True)),
        cache_only=bool(params.get("cache_only", False)),
    )
    return (yield from run_scan(_model_for(params), request, token))


@handler("scan_crops")
def _scan_crops(params: Mapping[str, Any], token: CancelToken) -> dict[int, np.ndarray]:
    result = _result(params)
    out: dict[int, np.ndarray] = {}
    for c in params.get("channels", ()):
        token.raise_if_cancelled()
        out[int(c)] = result.crops_of(int(c))
    return out


@handler("scan_compare")
def _scan_compare(params: Mapping[str, Any], token: CancelToken) -> dict[str, Any]:
    from engine.dataset.stats import class_examples

    result = _result(params)
    stat = str(params.get("stat", "mean"))
    n = int(params.get("n", 8))
    sep = result.separating(params["a"], params["b"], None, stat)
    chans = [int(c) for c in sep.channels[: max(1, int(params.get("map_channels", 3)))]]
    stats = result.class_stats(stat)
    classes = [stats.index(params["a"]), stats.index(params["b"])]
    token.raise_if_cancelled()
    h = _model_for(params, result)
    skipped = np.array([i for i, _ in result.skipped], np.int64)
    examples = class_examples(
        h,
        result.source_object(),
        result.layer,
        result.labels,
        classes,
        chans,
        per_class=int(params.get("per_class", 4)),
        exclude=skipped,
    )
    return {"separation": sep, "top": n, "examples": examples, "stats": stats}


def strongest_maps_of(
    h: Any, result: Any, ids: list[int], token: CancelToken | None = None
) -> dict[str, Any]:
    """{"ids", "images", "maps": [StrongestMap]}: images of the scanned set, fitted, with their strongest map.

    The Images page (the scan_maps job) and `export topk --page images` both use it.
    """
    from engine.dataset.sources import fit_for_model
    from engine.dataset.stats import strongest_maps

    src = result.source_object()
    images = []
    for i in ids:
        if token is not None:
            token.raise_if_cancelled()
        img, _ = src.load(int(i))
        images.append(fit_for_model(img, result.input_shape))
    maps = strongest_maps(h, images, result.layer) if images else []
    return {"ids": [int(i) for i in ids], "images": images, "maps": maps}


@handler("scan_maps")
def _scan_maps(params: Mapping[str, Any], token: CancelToken) -> dict[str, Any]:
    result = _result(params)
    h = _model_for(params, result)
    return strongest_maps_of(h, result, [int(i) for i in params.get("ids", ())], token)
