"""Convscope's PySide6 + pyqtgraph desktop app. Never imports TensorFlow or Keras.

app.py builds the QApplication and the window; main_window.py holds menus, docks and
the status bar; engine_thread.py runs engine jobs on one long-lived thread; views/ has
one module per central tab.
"""

import sys as _sys


def _guard_none_refcount() -> None:
    """Work around PySide6 6.12 on CPython < 3.12 dropping references to None, True and False.

    Each void Qt call (processEvents, setImage, ...) decrements None's refcount without an
    increment; after a few hundred thousand calls CPython aborts with "none_dealloc". Building
    the window drops about 200 references to True the same way, enough for "bool_dealloc" at
    interpreter exit after a few windows. Python 3.12+ makes these objects immortal; here we
    give them a very large refcount so it never reaches zero.
    """
    if _sys.version_info >= (3, 12):
        return
    import ctypes

    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40


_guard_none_refcount()
