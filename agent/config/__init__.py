"""Strict, frozen configuration: a hardware profile merged with a unit's site file, validated once.

A site file names its hardware profile (``profile: rpi4-gpio``); the profile from
``firmware_configs/`` is the base and the site file overrides it key by key (lists are
replaced, not merged).  The merged mapping is validated once into :class:`AgentConfig`,
which never changes while the agent runs: a reload builds a new one.

One module per section (``device``, ``cameras``, ``detection``, ``bell``, ``mqtt``,
``runtime``, ``lookout``), the root model in ``model``, reading and merging in ``loading``, and the
rendering of validation errors in ``report``.
"""

from __future__ import annotations

from agent.config.bell import (
    BellConfig,
    GpiodInput,
    ModbusInput,
    OutputsConfig,
    PolicyConfig,
    PresetConfig,
    SimulatorInput,
    SupervisionConfig,
)
from agent.config.cameras import CameraConfig, MotionConfig, RuleConfig, ZoneConfig
from agent.config.detection import DetectionConfig
from agent.config.device import DeviceConfig
from agent.config.loading import (
    config_hash,
    find_profile,
    is_profile,
    load,
    load_mapping,
    load_profile_file,
    profile_dirs,
    redacted,
    secret_files,
)
from agent.config.lookout import LookoutConfig, audit_path, index_path
from agent.config.model import AgentConfig
from agent.config.mqtt import MqttConfig, TlsConfig
from agent.config.runtime import CommandsConfig, HealthConfig, LogConfig, SpoolConfig
from agent.errors import ConfigError

__all__ = [
    "AgentConfig",
    "BellConfig",
    "CameraConfig",
    "CommandsConfig",
    "ConfigError",
    "DetectionConfig",
    "DeviceConfig",
    "GpiodInput",
    "HealthConfig",
    "LogConfig",
    "LookoutConfig",
    "ModbusInput",
    "MotionConfig",
    "MqttConfig",
    "OutputsConfig",
    "PolicyConfig",
    "PresetConfig",
    "RuleConfig",
    "SimulatorInput",
    "SpoolConfig",
    "SupervisionConfig",
    "TlsConfig",
    "ZoneConfig",
    "audit_path",
    "config_hash",
    "find_profile",
    "index_path",
    "is_profile",
    "load",
    "load_mapping",
    "load_profile_file",
    "profile_dirs",
    "redacted",
    "secret_files",
]
