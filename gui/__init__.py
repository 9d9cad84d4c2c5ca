"""Convscope's PySide6 + pyqtgraph desktop app. Never imports TensorFlow or Keras.

app.py builds the QApplication and the window; main_window.py holds menus, docks and
the status bar; engine_thread.py runs engine jobs on one long-lived thread; views/ has
one module per central tab.
"""
