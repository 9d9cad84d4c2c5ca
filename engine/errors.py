"""Error types the engine raises for bad input.

Every message is one line a user can act on; the CLI prints it as is and the GUI
shows it in the message area. Unexpected exceptions are wrapped by jobs.run.
"""

from __future__ import annotations


class EngineError(Exception):
    """Bad input or an unsupported request, with a one-line message for the user."""


class ModelLoadError(EngineError):
    """A model file or spec could not be loaded."""


class ImageLoadError(EngineError):
    """An image could not be decoded or is unsafe to decode."""


class LayerNotFound(EngineError, KeyError):
    """A layer path names no layer of the model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "layer not found"


class Cancelled(Exception):
    """Raised inside a job when its CancelToken is set; run() turns it into Finished(reason='cancelled')."""


class OptimizationDiverged(EngineError):
    """A gradient run produced NaN or Inf."""
