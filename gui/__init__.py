"""Convscope's PySide6 + pyqtgraph desktop app. Never imports TensorFlow or Keras.

app.py builds the QApplication and the window; main_window.py holds menus, docks and
the status bar; engine_thread.py runs engine jobs on one long-lived thread; views/ has
one module per central tab.
"""

import sys as _sys


def _guard_none_refcount() -> None:
    """Work around PySide6 6.12 on CPython < 3.12 dropping a reference to None on void Qt calls.

    Each such call (processEvents, setImage, ...) decrements None's refcount without an
    increment; after a few hundred thousand calls CPython aborts with "none_dealloc". Python
    3.12+ makes None immortal; here we give it a very large refcount so it never reaches zero.
    """
    if _sys.version_info >= (3, 12):
        return
    import ctypes

    ctypes.c_ssize_t.from_address(id(None)).value += 1 << 40


_guard_none_refcount()
