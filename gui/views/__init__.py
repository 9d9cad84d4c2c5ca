"""The central tabs, in order. Adding a tab = one module under gui/views/ plus one line here.

A view is a View subclass (gui/views/base.py) with a `title`, an `owner` name for its
jobs, `refresh()` for when the model, layer or image change, and `export_image()`.
"""

from __future__ import annotations

from gui.views.attribution import AttributionView
from gui.views.base import View
from gui.views.dataset import DatasetView
from gui.views.dream import DreamView
from gui.views.feature_maps import FeatureMapsView
from gui.views.filters import FiltersView
from gui.views.maximize import MaximizeView

VIEWS: list[type[View]] = [
    FeatureMapsView,
    FiltersView,
    MaximizeView,
    DreamView,
    AttributionView,
    DatasetView,
]

__all__ = ["VIEWS", "View"]
