"""Persistent settings (QSettings in INI format) and the recent-files list.

CONVSCOPE_CONFIG_DIR redirects everything to DIR/convscope.ini, so tests and
benchmarks never touch the user's own settings.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QSettings

ORGANIZATION = "Convscope"
APPLICATION = "Convscope"
MAX_RECENT = 10


def settings() -> QSettings:
    """The app's QSettings: $CONVSCOPE_CONFIG_DIR/convscope.ini or the user's config folder."""
    folder = os.environ.get("CONVSCOPE_CONFIG_DIR")
    if folder:
        return QSettings(os.path.join(folder, "convscope.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def read_list(s: QSettings, key: str) -> list[str]:
    """A list of strings stored under key (QSettings returns a str for one item, None for none)."""
    value = s.value(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def read(s: QSettings, key: str, default: Any, kind: type) -> Any:
    """A typed value with a default; a value of the wrong type falls back to the default."""
    value = s.value(key, default)
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
        return kind(value)
    except (TypeError, ValueError):
        return default


def add_recent(s: QSettings, key: str, item: str) -> list[str]:
    """Put item first in the recent list under key (no duplicates, at most MAX_RECENT)."""
    items = [item] + [x for x in read_list(s, key) if x != item]
    items = items[:MAX_RECENT]
    s.setValue(key, items)
    return items


def _model_image_key(model_spec: str) -> str:
    """The settings key of a model's last image: the spec percent-encoded (no "/" group splits)."""
    from urllib.parse import quote

    return "model_images/" + quote(str(model_spec), safe="")


def remember_image(s: QSettings, model_spec: str, image_spec: str) -> None:
    """Store image_spec as the last image shown with model_spec."""
    s.setValue(_model_image_key(model_spec), str(image_spec))


def remembered_image(s: QSettings, model_spec: str) -> str:
    """The last image shown with model_spec ("" for none)."""
    return read(s, _model_image_key(model_spec), "", str)
