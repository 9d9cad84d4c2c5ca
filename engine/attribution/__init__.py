"""Attribution: class activation maps, saliency and their quality scores.

cam(h, img, ...) -> CamResult (engine.attribution.cam; its methods are the registry
CAM_METHODS in engine.attribution.methods), saliency(h, img, ...) -> (H, W)
(engine.attribution.gradients), the Target they explain (engine.attribution.target), and
the scores in engine.attribution.metrics. None of these modules imports TensorFlow at import
time; they load it on first computation.
"""

from __future__ import annotations

# Imported eagerly (they are TensorFlow-free at import) so that the function `cam` wins
# over the submodule of the same name as the package attribute.
from engine.attribution.cam import METHODS, CamResult, cam, iter_cam
from engine.attribution.gradients import SALIENCY_METHODS, iter_saliency, saliency
from engine.attribution.methods import CAM_METHODS, CamMethod, register
from engine.attribution.projection import MAPPINGS
from engine.attribution.target import Target

__all__ = [
    "cam",
    "saliency",
    "CamResult",
    "iter_cam",
    "iter_saliency",
    "METHODS",
    "SALIENCY_METHODS",
    "MAPPINGS",
    "CAM_METHODS",
    "CamMethod",
    "register",
    "Target",
]
