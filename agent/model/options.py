"""What ``pole-agent model quantize`` can be asked for, without numpy or onnx.

The CLI parser reads these defaults in every process that builds it, the agent's own
included; the quantization modules that need numpy import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from agent.config import DetectionConfig

__all__ = ["DEFAULT_FLOOR", "Method", "Options"]

Method = Literal["minmax", "entropy", "percentile"]
DEFAULT_FLOOR: Final = 0.9


@dataclass(frozen=True)
class Options:
    """What ``pole-agent model quantize`` was asked for (defaults chosen by measurement)."""

    frames: int = 32
    holdout: int = 40
    method: Method = "minmax"
    float_head: bool = False
    float_stem: bool = True
    rewrite_softmax: bool = True
    imgsz: int = 640
    floor: float = DEFAULT_FLOOR
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    speed_rounds: int = 8
