"""The whole unit's configuration: one section per concern."""

from __future__ import annotations

from pydantic import Field, field_validator

from agent.config.base import Strict
from agent.config.bell import BellConfig
from agent.config.cameras import CameraConfig
from agent.config.detection import DetectionConfig
from agent.config.device import DeviceConfig
from agent.config.mqtt import MqttConfig
from agent.config.runtime import CommandsConfig, HealthConfig, LogConfig, SpoolConfig

__all__ = ["AgentConfig"]


class AgentConfig(Strict):
    profile: str | None = Field(default=None, description="Hardware profile this unit is based on.")
    device: DeviceConfig = Field(description="Who and where this unit is.")
    cameras: list[CameraConfig] = Field(
        default=[], max_length=8, description="Cameras on the pole."
    )
    detection: DetectionConfig = Field(default_factory=DetectionConfig, description="Detector.")
    bell: BellConfig = Field(description="Emergency bell.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="Link to the centre.")
    spool: SpoolConfig = Field(default_factory=SpoolConfig, description="Durable outbox.")
    health: HealthConfig = Field(default_factory=HealthConfig, description="Heartbeat, watchdog.")
    commands: CommandsConfig = Field(default_factory=CommandsConfig, description="Centre commands.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cams: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in cams]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        return cams
