"""The detector: model, input size, thresholds, threads, isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from agent.config.base import Strict

__all__ = ["DetectionConfig"]


class DetectionConfig(Strict):
    enabled: bool = Field(default=True, description="Run object detection at all.")
    model: str = Field(
        default="default",
        description="Path of an ONNX model, or 'default' for the fetched YOLO11n.",
    )
    input_size: int = Field(
        default=640, ge=64, le=2048, multiple_of=32, description="Longest input side, pixels."
    )
    layout: Literal["auto", "end2end", "anchor_free", "anchor_free_t", "objectness"] = Field(
        default="auto", description="Model output layout; 'auto' infers it from the output shape."
    )
    labels: str | None = Field(default=None, description="Labels file, one name per line.")
    confidence: float = Field(default=0.35, gt=0, lt=1, description="Default score threshold.")
    class_thresholds: dict[str, Annotated[float, Field(gt=0, lt=1)]] = Field(
        default={}, description="Per-class score thresholds overriding 'confidence'."
    )
    classes: list[str] = Field(
        default=["person", "bicycle", "car", "motorcycle", "bus", "truck"],
        min_length=1,
        description="Classes of interest; others are discarded.",
    )
    nms_iou: float = Field(default=0.45, gt=0, lt=1, description="IoU for NMS (raw layouts).")
    max_detections: int = Field(
        default=300, ge=1, le=10_000, description="Most detections kept per frame."
    )
    provider: Literal["cpu", "openvino", "cuda", "tensorrt"] = Field(
        default="cpu", description="onnxruntime execution provider."
    )
    threads: int = Field(default=2, ge=1, le=64, description="Intra-op threads.")
    spinning: bool = Field(
        default=False, description="Let onnxruntime threads spin between runs (more CPU)."
    )
    memory: Literal["fast", "balanced", "lean"] = Field(
        default="balanced",
        description="onnxruntime's memory: 'fast' keeps its memory pattern (one planned block "
        "for every activation, about 35 MB more at 640, no faster as measured); 'balanced' "
        "drops it; 'lean' also drops the CPU arena (about 15 % slower; less memory only where "
        "the allocator gives it back: measure). docs/benchmarks.md, 'Memory'.",
    )
    isolation: Literal["process", "thread"] = Field(
        default="process",
        description="Run vision in a child process (restarted if it dies; the detector never "
        "holds the agent's GIL, so bell latency stays low) or in a thread of the agent.",
    )
    process_priority: Literal["idle"] | Annotated[int, Field(ge=0, le=19)] = Field(
        default="idle",
        description="isolation=process: 'idle' runs the child under SCHED_IDLE (it only gets "
        "CPU time nothing else wants: bell, link and broker always go first); a number 0..19 "
        "is niceness added instead (vision keeps a share under other load).",
    )

    @field_validator("model", "labels")
    @classmethod
    def _file_exists(cls, value: str | None) -> str | None:
        # Checked at load, not at the first frame: a technician's typo shows at once.
        if value is None or value == "default":
            return value
        path = Path(value)
        if not path.is_file():
            where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
            raise ValueError(f"no such file: {value}{where}")
        return value
