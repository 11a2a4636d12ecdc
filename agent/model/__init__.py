"""Preparing detection models for the pole: INT8 quantization, checked against FP32.

``pole-agent model quantize`` (:mod:`agent.model.cli`) is the way in; the work needs the
optional ``onnx`` package (extra ``quantize``), which the agent itself never imports.
``Agreement`` and ``match`` load numpy on first use: the CLI imports this package in the
agent's own process, which does not need numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.model.errors import BelowFloorError, QuantizeError

if TYPE_CHECKING:
    from agent.model.agreement import Agreement, match

__all__ = ["Agreement", "BelowFloorError", "QuantizeError", "match"]


def __getattr__(name: str) -> Any:
    if name in ("Agreement", "match"):
        from agent.model import agreement

        return getattr(agreement, name)
    raise AttributeError(f"module 'agent.model' has no attribute {name!r}")
