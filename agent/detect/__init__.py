"""Object detection: the ONNX detector and the typed ``Detections`` it produces.

Heavy modules (onnxruntime, the detector) load on first use, so importing
``agent.detect`` for ``Detections`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.detect.detections import Detections
from agent.detect.errors import ModelError

if TYPE_CHECKING:
    from agent.detect.detector import Detector

__all__ = ["Detections", "Detector", "ModelError"]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        from agent.detect.detector import Detector

        return Detector
    raise AttributeError(f"module 'agent.detect' has no attribute {name!r}")
