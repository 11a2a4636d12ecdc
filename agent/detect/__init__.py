"""Object detection: the ONNX detector and the typed ``Detections`` it produces.

Everything loads on first use (numpy with ``Detections``, onnxruntime with the
detector), so importing ``agent.detect`` (the CLI does, in the agent's own process) loads
no numpy: the agent process of ``isolation: process`` never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.detect.errors import ModelError

if TYPE_CHECKING:
    from agent.detect.detections import Detections
    from agent.detect.detector import Detector

__all__ = ["Detections", "Detector", "ModelError"]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        from agent.detect.detector import Detector

        return Detector
    if name == "Detections":
        from agent.detect.detections import Detections

        return Detections
    raise AttributeError(f"module 'agent.detect' has no attribute {name!r}")
