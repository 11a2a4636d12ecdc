"""Preparing detection models for the pole: INT8 quantization, checked against FP32.

``pole-agent model quantize`` (:mod:`agent.model.cli`) is the way in; the work needs the
optional ``onnx`` package (extra ``quantize``), which the agent itself never imports.
"""

from __future__ import annotations

from agent.model.agreement import Agreement, match
from agent.model.errors import BelowFloorError, QuantizeError

__all__ = ["Agreement", "BelowFloorError", "QuantizeError", "match"]
