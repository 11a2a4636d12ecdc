"""Errors of the detection stage."""

from __future__ import annotations

__all__ = ["ModelError"]


class ModelError(Exception):
    """A model that cannot be used: missing, not ONNX, or outputs of no known layout.

    Raised when the detector is built (never on the first frame); the message is one
    paragraph naming the file, the shapes found and what to do.
    """
