"""Job handlers for dataset scans, run by engine.jobs on the engine thread.

Kinds (all registered here; engine.dataset declares them to engine.jobs). Each reads its
params with the frozen dataclass of engine.dataset.contract, where the defaults live, and
answers with a typed result:

    scan          ScanParams(source, layer, k=9, batch_size=None, cache=True, resume=True,
                  cache_only=False, runner="local" | "ray", address=None, workers=None,
                  model=None: the current model). Yields Progress (images done /
                  total, images/s in the message); the result is a ScanResult. Cancel checkpoints;
                  the next "scan" with the same model, layer, k and source resumes from there.
                  cache_only=True returns the cached result or None, without scanning.
    scan_crops    ScanCropsParams(result, channels) -> UnitCrops (for results too large to keep
                  their crops, loaded from the source).
    scan_compare  ScanCompareParams(result, a, b, stat="mean", n=8, per_class=4, map_channels=3,
                  model=None) -> CompareOutput: the Separation of the two classes and their
                  ClassExamples with the maps of the map_channels most separating channels.
    scan_maps     ScanMapsParams(result, ids, model=None) -> StrongestMaps: each image's strongest
                  channel with its map.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from engine.dataset.contract import (
    SCAN_REQUEST_FIELDS,
    ClassExamples,
    CompareOutput,
    ScanCompareParams,
    ScanCropsParams,
    ScanMapsParams,
    ScanParams,
    StrongestMaps,
    UnitCrops,
)
from engine.errors import EngineError
from engine.jobs import CancelToken, handler


def _model_for(model: str | None, result: Any = None) -> Any:
    """The request's model (a spec) or the current one; for a result, the model it was scanned with."""
    from engine.job_handlers import current_handle, current_model
    from engine.models import model_cache

    if model:
        return current_model({"model": model})
    current = current_handle()
    if result is not None and (current is None or str(current.spec) != result.model):
        return model_cache.get(result.model)
    return current_model({})


def _result(result: Any) -> Any:
    from engine.dataset.result import ScanResult

    if isinstance(result, ScanResult):
        return result
    if isinstance(result, str):
        return ScanResult.load(result)
    raise EngineError("no scan result given; run a scan first")


@handler("scan")
def _scan(params: Mapping[str, Any], token: CancelToken) -> Iterator[Any]:
    from engine.dataset.scanner import ScanRequest, run_scan

    p = ScanParams.parse(params)
    if not p.source:
        raise EngineError("choose a dataset source (a folder, builtin:digits or builtin:shapes)")
    if not p.layer:
        raise EngineError("choose a layer to scan")
    request = ScanRequest(**{name: getattr(p, name) for name in SCAN_REQUEST_FIELDS})
    return (yield from run_scan(_model_for(p.model), request, token))


@handler("scan_crops")
def _scan_crops(params: Mapping[str, Any], token: CancelToken) -> UnitCrops:
    p = ScanCropsParams.parse(params)
    result = _result(p.result)
    channels = tuple(int(c) for c in p.channels)
    crops = []
    for c in channels:
        token.raise_if_cancelled()
        crops.append(result.crops_of(c))
    return UnitCrops(channels, tuple(crops))


@handler("scan_compare")
def _scan_compare(params: Mapping[str, Any], token: CancelToken) -> CompareOutput:
    from engine.dataset.stats import class_examples

    p = ScanCompareParams.parse(params)
    result = _result(p.result)
    stat = str(p.stat)
    sep = result.separating(p.a, p.b, None, stat)
    chans = [int(c) for c in sep.channels[: max(1, int(p.map_channels))]]
    stats = result.class_stats(stat)
    classes = [stats.index(p.a), stats.index(p.b)]
    token.raise_if_cancelled()
    h = _model_for(p.model, result)
    skipped = np.array([i for i, _ in result.skipped], np.int64)
    examples = class_examples(
        h,
        result.source_object(),
        result.layer,
        result.labels,
        classes,
        chans,
        per_class=int(p.per_class),
        exclude=skipped,
    )
    return CompareOutput(separation=sep, top=int(p.n), examples=ClassExamples.of(examples), stats=stats)


def strongest_maps_of(
    h: Any, result: Any, ids: Sequence[int], token: CancelToken | None = None
) -> StrongestMaps:
    """Images `ids` of the scanned set, fitted to the model, with their strongest map (StrongestMaps).

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
    return StrongestMaps(tuple(int(i) for i in ids), tuple(images), tuple(maps))


@handler("scan_maps")
def _scan_maps(params: Mapping[str, Any], token: CancelToken) -> StrongestMaps:
    p = ScanMapsParams.parse(params)
    result = _result(p.result)
    h = _model_for(p.model, result)
    return strongest_maps_of(h, result, [int(i) for i in p.ids], token)
