"""Reusable panes built on pyqtgraph (configured here once: row-major images, no antialiasing)."""

from __future__ import annotations

import pyqtgraph as pg

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="#1e1e1e", foreground="#d0d0d0")
