"""Error types the engine raises for bad input.

Every message is one line a user can act on; the CLI prints it as is and the GUI
shows it in the message area. Unexpected exceptions are wrapped by jobs.run.
"""

from __future__ import annotations


class EngineError(Exception):
    """Bad input or an unsupported request, with a one-line message for the user.

    `kind` names the failure for programs (a job's Failed event carries it), so the GUI picks a
    remedy by kind, never by matching message text.
    """

    kind = "invalid_request"


class ModelLoadError(EngineError):
    """A model file or spec could not be loaded."""

    kind = "model_load"


class UnsafeModel(ModelLoadError):
    """A model file holds code that runs on load and safe mode refused it (trust=True loads it)."""

    kind = "unsafe_model"


class ImageLoadError(EngineError):
    """An image could not be decoded or is unsafe to decode."""

    kind = "not_an_image"


class LayerNotFound(EngineError, KeyError):
    """A layer path names no layer of the model."""

    kind = "layer_not_found"

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "layer not found"


class Cancelled(Exception):
    """Raised inside a job when its CancelToken is set; run() turns it into Finished(reason='cancelled')."""


class OptimizationDiverged(EngineError):
    """A gradient run produced NaN or Inf."""

    kind = "diverged"


# Failed.kind values that are not an EngineError subclass's kind
OUT_OF_MEMORY = "out_of_memory"
INTERNAL = "internal"  # an unexpected exception: a bug, its traceback in Failed.detail
