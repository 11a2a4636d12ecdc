"""The pole's cameras: sources, zones, rules, motion gating, privacy masks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from agent.config.base import ID_PATTERN, Point, Strict

__all__ = ["SOURCE_SCHEMES", "CameraConfig", "MotionConfig", "RuleConfig", "ZoneConfig"]

# What the FFmpeg backend of OpenCV opens for a pole camera: RTSP (also over TLS), MJPEG.
SOURCE_SCHEMES = ("rtsp", "rtsps", "http", "https")


class ZoneConfig(Strict):
    name: str = Field(pattern=ID_PATTERN, description="Zone name used in events.")
    polygon: list[Point] = Field(
        min_length=3, description="Vertices as [x, y], normalised 0..1 to the frame."
    )


class RuleConfig(Strict):
    name: str = Field(pattern=ID_PATTERN, description="Rule name used in events.")
    type: Literal["intrusion", "loitering", "line_crossing", "crowding"] = Field(
        description="What the rule detects."
    )
    zone: str | None = Field(default=None, description="Zone the rule watches (not for lines).")
    classes: list[str] = Field(default=["person"], min_length=1, description="Classes it counts.")
    armed_hours: tuple[Annotated[int, Field(ge=0, le=23)], Annotated[int, Field(ge=0, le=24)]] = (
        Field(default=(0, 24), description="Local hours [start, end) when it is armed; may wrap.")
    )
    dwell_s: float = Field(default=60.0, gt=0, le=86400, description="Loitering: seconds in zone.")
    min_count: int = Field(default=5, ge=1, le=1000, description="Crowding: objects in zone.")
    line: tuple[Point, Point] | None = Field(default=None, description="Line crossing: [a, b].")
    direction: Literal["any", "left_to_right", "right_to_left"] = Field(
        default="any", description="Line crossing: side change that counts, seen from a to b."
    )
    cooldown_s: float = Field(default=30.0, ge=0, le=86400, description="Quiet time after firing.")

    @model_validator(mode="after")
    def _needs(self) -> RuleConfig:
        if self.type == "line_crossing" and self.line is None:
            raise ValueError("a line_crossing rule needs 'line'")
        if self.type != "line_crossing" and self.zone is None:
            raise ValueError(f"a {self.type} rule needs 'zone'")
        return self


class MotionConfig(Strict):
    enabled: bool = Field(default=True, description="Run the detector only when something moves.")
    keepalive_s: float = Field(
        default=5.0, gt=0, le=600, description="Still scene: run the detector this often anyway."
    )
    threshold: float = Field(
        default=0.002, gt=0, lt=1, description="Fraction of changed pixels that counts as motion."
    )
    global_change: float = Field(
        default=0.5, gt=0, le=1, description="Changed fraction treated as lighting change."
    )


class CameraConfig(Strict):
    id: str = Field(pattern=ID_PATTERN, description="Camera id used in events and topics.")
    source: str = Field(
        min_length=1,
        description="rtsp:// or rtsps:// URL, http(s):// MJPEG URL, /dev/videoN, a device "
        "index, a file path, or 'sample' (the fetched sample video).",
    )
    loop: bool = Field(default=False, description="Restart a file source at its end (demo).")
    fps: float = Field(default=5.0, gt=0, le=60, description="Frames per second to analyse.")
    stall_s: float = Field(default=10.0, gt=0, le=600, description="No frame this long: lost.")
    frozen_s: float = Field(
        default=30.0, gt=0, le=3600, description="Same picture this long: lost."
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60, description="First reconnect delay.")
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600, description="Longest delay.")
    stable_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Frames this long after a restore reset the reconnect delay to the first.",
    )
    flap_changes: int = Field(
        default=6, ge=4, le=1000, description="Lost/restored changes that mean flapping."
    )
    flap_window_s: float = Field(
        default=60.0, gt=0, le=3600, description="Window for flapping; this long quiet ends it."
    )
    motion: MotionConfig = Field(default_factory=MotionConfig, description="Motion gating.")
    zones: list[ZoneConfig] = Field(default=[], description="Named polygons for rules.")
    rules: list[RuleConfig] = Field(default=[], description="Rules over tracked objects.")
    privacy_masks: list[list[Point]] = Field(
        default=[], description="Polygons blacked out in every image that leaves the device."
    )
    blur_persons: bool = Field(default=False, description="Blur person boxes in snapshots.")
    snapshot_max_bytes: int = Field(
        default=150_000, ge=5_000, le=2_000_000, description="JPEG size cap for snapshots."
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        scheme, sep, _ = source.partition("://")
        if sep and scheme.lower() not in SOURCE_SCHEMES:
            known = ", ".join(s + "://" for s in SOURCE_SCHEMES)
            raise ValueError(
                f"unknown scheme {scheme + '://'!r} (known: {known}, a file path, "
                "/dev/videoN, a device index, or 'sample')"
            )
        return source

    @model_validator(mode="after")
    def _zones_exist(self) -> CameraConfig:
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique")
        # A rule naming a missing zone is reported by agent.config.checks, with its own path.
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self
