"""Errors of the quantize command."""

from __future__ import annotations

from agent.errors import ModelError

__all__ = ["BelowFloorError", "QuantizeError"]


class QuantizeError(ModelError):
    """The quantization cannot be done as asked; the message says why and what to do."""


class BelowFloorError(QuantizeError):
    """The INT8 model agrees too little with the FP32 model; nothing was written."""

    def __init__(
        self, message: str, f1: float, floor: float, details: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.f1 = f1
        self.floor = floor
        self.details = details or []
