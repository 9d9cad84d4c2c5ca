"""The "evaluate" job: CAM methods scored over a folder with boxes (engine.attribution.evaluate).

EvaluateParams holds iter_evaluate's arguments (each default once: tests/engine/test_evaluate.py
checks them against its signature) plus the model reference; the handler yields a Progress per
image, stops between images when cancelled, and returns the EvaluationResult (EvaluateOutput),
frozen plain data the GUI reads by attribute. This module imports no TensorFlow itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from engine.attribution.evaluate import EvaluationResult
from engine.attribution.metrics import DEFAULT_BASELINE, TOLERANCE
from engine.contract import MODEL_FIELDS, ModelRef
from engine.jobs import CancelToken, Progress, handler

EvaluateOutput = EvaluationResult

__all__ = ["EvaluateOutput", "EvaluateParams", "evaluate_job"]


@dataclass(frozen=True)
class EvaluateParams(ModelRef):
    """Score `methods` x `mappings` over the folder `source` against its VOC/COCO boxes.

    The fields besides the model's are exactly iter_evaluate's keyword arguments
    (run_kwargs()); see engine.attribution.evaluate for their meaning.
    """

    kind = "evaluate"
    source: str = ""
    methods: tuple[str, ...] = ("gradcam",)
    mappings: tuple[str, ...] = ("gaussian",)
    layer: str | None = None
    target: str = "label"
    baseline: str = DEFAULT_BASELINE
    steps: int = 16
    limit: int | None = None
    sanity_every: int = 0
    tolerance: float = TOLERANCE

    def run_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of iter_evaluate (every field but the model's and source)."""
        return {k: v for k, v in self.as_dict().items() if k not in (*MODEL_FIELDS, "source")}


@handler("evaluate")
def evaluate_job(params: Mapping[str, Any], token: CancelToken) -> Iterator[Progress]:
    from engine.attribution.evaluate import iter_evaluate
    from engine.job_handlers import current_model

    p = EvaluateParams.parse(params)
    h = current_model(p.as_dict())
    gen = iter_evaluate(h, p.source, **p.run_kwargs())
    while True:
        token.raise_if_cancelled()  # between images
        try:
            done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        yield Progress(0, done, total, None, f"image {done}/{total}")
