"""The architecture's import boundary: gui/ never imports TF/Keras, engine/ never imports Qt, `import engine` is light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / folder).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
            elif (
                isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args
            ):
                if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    names.add(node.args[0].value.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_gui_never_imports_tensorflow_or_keras():
    bad = {f: n & {"tensorflow", "keras", "tf_keras"} for f, n in _imports("gui").items()}
    assert not {f: n for f, n in bad.items() if n}


def test_engine_never_imports_qt():
    bad = {
        f: n & {"PySide6", "shiboken6", "pyqtgraph", "PyQt5", "PyQt6"} for f, n in _imports("engine").items()
    }
    assert not {f: n for f, n in bad.items() if n}


def test_import_engine_leaves_tensorflow_unimported():
    code = (
        "import sys, engine, engine.jobs, engine.images, engine.render, engine.export, engine.errors, engine.scaling\n"
        "engine.sample_images\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, sorted(m for m in sys.modules if 'tens' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_gui_modules_import_without_tensorflow():
    code = (
        "import sys, pkgutil, importlib, gui\n"
        "for m in pkgutil.walk_packages(gui.__path__, 'gui.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=ROOT,
        env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"},
    )


def test_model_handle_type_imports_without_tensorflow():
    """Engine signatures are typed with ModelHandle; naming that type must not load TensorFlow."""
    code = (
        "import sys\n"
        "from engine.models import ModelHandle, LayerInfo\n"
        "import engine.common, engine.images, engine.job_handlers, engine.receptive_field, engine.precision\n"
        "from engine.common import SEP, drain, unit_to_uint8\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "
        "sorted(m for m in sys.modules if 'tens' in m or 'keras' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_layer_path_separator_is_defined_once():
    """SEP lives in engine/common.py; graph.py and models.py import it instead of defining their own."""
    defs = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "engine").rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text(), str(p)))
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SEP" for t in node.targets)
    ]
    assert defs == ["engine/common.py"]
