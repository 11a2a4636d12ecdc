"""The whole unit's configuration: one section per concern."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from agent.config.base import Strict
from agent.config.bell import BellConfig
from agent.config.cameras import CameraConfig
from agent.config.detection import DetectionConfig
from agent.config.device import DeviceConfig
from agent.config.lookout import LookoutConfig, audit_path, index_path
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
    lookout: LookoutConfig = Field(
        default_factory=LookoutConfig, description="Appearance records and their local index."
    )

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cams: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in cams]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")
        return cams

    @model_validator(mode="after")
    def _index_not_spool(self) -> AgentConfig:
        # The spool is the outbox: the index must never be sent by replaying it.
        spool = Path(self.spool.path).resolve()
        index = index_path(self.lookout, self.spool.path).resolve()
        if index == spool:
            raise ValueError("lookout.index_path: must not be the spool file (spool.path)")
        if audit_path(self.lookout, self.spool.path).resolve() in (spool, index):
            raise ValueError("lookout.audit_path: must be a file of its own (not spool, index)")
        return self
