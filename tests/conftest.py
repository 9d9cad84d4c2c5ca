"""Shared test setup: quiet TensorFlow, private config/cache folders, tiny real Keras models."""

from __future__ import annotations

import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="convscope-tests-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["CONVSCOPE_CONFIG_DIR"] = os.path.join(_TMP, "config")
os.environ["CONVSCOPE_CACHE_DIR"] = os.path.join(_TMP, "cache")
os.environ["KERAS_HOME"] = os.path.join(_TMP, "keras")
os.environ.setdefault("CONVSCOPE_MAX_STEPS", "10")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_cnn_path(tmp_path_factory):
    """A small functional CNN (16x16x3 -> 3 softmax classes) saved as .keras."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(5, activation="relu", name="fc")(x)
    out = layers.Dense(3, activation="softmax", name="out")(x)
    model = keras.Model(inp, out, name="tiny")
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tiny(tiny_cnn_path):
    import engine

    return engine.load_model(tiny_cnn_path)


@pytest.fixture(scope="session")
def nested_path(tmp_path_factory):
    """A Sequential holding a functional conv base, then pooling and a dense head (the VGG16-base pattern)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(1)
    b_in = keras.Input((20, 20, 3))
    b = layers.Conv2D(4, 3, padding="same", activation="relu", name="block1_conv1")(b_in)
    b = layers.MaxPooling2D(name="block1_pool")(b)
    b = layers.Conv2D(8, 3, padding="same", activation="relu", name="block2_conv1")(b)
    base = keras.Model(b_in, b, name="base")
    model = keras.Sequential(
        [
            keras.Input((20, 20, 3)),
            base,
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(2, activation="softmax", name="head"),
        ],
        name="nested",
    )
    path = tmp_path_factory.mktemp("models") / "nested.keras"
    model.save(path)
    return path


# --------------------------------------------------------------------------------------------
# no silent skips: a test skipped because a package is missing fails the run in CI


_MISSING_PACKAGE_SKIPS: list[str] = []


def pytest_runtest_logreport(report) -> None:
    """Remember tests skipped by importorskip (their reason starts with "could not import")."""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if "could not import" in reason:
            _MISSING_PACKAGE_SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus) -> None:
    """Under CI=true, a skip for a missing package turns a green run red: the test extra must install it."""
    if _MISSING_PACKAGE_SKIPS and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        print("\nskipped for a missing package (add it to the test extra in pyproject.toml):")
        for line in _MISSING_PACKAGE_SKIPS:
            print("  " + line)
        session.exitstatus = 1
