"""Strict, frozen configuration: a hardware profile merged with a unit's site file, validated once.

A site file names its hardware profile (``profile: rpi4-gpio``); the profile from
``firmware_configs/`` is the base and the site file overrides it key by key (lists are
replaced, not merged).  The merged mapping is validated once into :class:`AgentConfig`,
which never changes while the agent runs: a reload builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from agent import credentials
from agent.errors import ConfigError

__all__ = [
    "AgentConfig",
    "BellConfig",
    "CameraConfig",
    "ConfigError",
    "DetectionConfig",
    "DeviceConfig",
    "HealthConfig",
    "MqttConfig",
    "SpoolConfig",
    "config_hash",
    "find_profile",
    "load",
    "load_mapping",
    "load_profile_file",
    "profile_dirs",
    "redacted",
]

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


# --------------------------------------------------------------------------- device
class DeviceConfig(Strict):
    id: str = Field(
        pattern=ID_PATTERN, description="Device id, unique in the city; MQTT topics use it."
    )
    site: str = Field(pattern=ID_PATTERN, description="Site (district or control centre) id.")
    pole: str = Field(min_length=1, max_length=32, description="Pole number painted on the pole.")
    location: str = Field(
        default="", max_length=200, description="Human-readable place, e.g. '역삼초 정문 앞'."
    )
    address: str = Field(default="", max_length=200, description="Road address (도로명주소).")
    latitude: float = Field(ge=-90.0, le=90.0, description="WGS84 latitude in degrees.")
    longitude: float = Field(ge=-180.0, le=180.0, description="WGS84 longitude in degrees.")


# --------------------------------------------------------------------------- cameras
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
        min_length=1, description="rtsp://… URL, /dev/videoN, a device index, or a file path."
    )
    loop: bool = Field(default=False, description="Restart a file source at its end (demo).")
    fps: float = Field(default=5.0, gt=0, le=60, description="Frames per second to analyse.")
    stall_s: float = Field(default=10.0, gt=0, le=600, description="No frame this long: lost.")
    frozen_s: float = Field(
        default=30.0, gt=0, le=3600, description="Same picture this long: lost."
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60, description="First reconnect delay.")
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600, description="Longest delay.")
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

    @model_validator(mode="after")
    def _zones_exist(self) -> CameraConfig:
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ValueError("zone names must be unique")
        for rule in self.rules:
            if rule.zone is not None and rule.zone not in names:
                raise ValueError(f"rule {rule.name!r} names zone {rule.zone!r}, not defined")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


# --------------------------------------------------------------------------- detection
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


# --------------------------------------------------------------------------- bell
class GpiodInput(Strict):
    chip: str = Field(min_length=1, description="GPIO chip label or path, e.g. 'pinctrl-bcm2711'.")
    button: str = Field(min_length=1, description="Line name of the bell contact.")
    tamper: str | None = Field(default=None, description="Line name of the box door contact.")
    power_fail: str | None = Field(default=None, description="Line name of the power-fail input.")
    active_low: bool = Field(default=True, description="Contact pulls the line low when closed.")
    debounce_ms: int = Field(default=20, ge=0, le=1000, description="Kernel debounce period.")


class ModbusInput(Strict):
    port: str = Field(min_length=1, description="Serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(default=9600, ge=1200, le=115200, description="Bits per second.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="Parity (8 data bits).")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits.")
    unit: int = Field(default=1, ge=1, le=247, description="Modbus slave address.")
    button: int = Field(default=0, ge=0, le=65535, description="Discrete input of the bell.")
    tamper: int | None = Field(default=None, ge=0, le=65535, description="Door contact input.")
    power_fail: int | None = Field(default=None, ge=0, le=65535, description="Power-fail input.")
    poll_ms: int = Field(default=50, ge=10, le=1000, description="Polling period.")
    timeout_ms: int = Field(default=100, ge=10, le=2000, description="Reply timeout.")
    fault_after: int = Field(default=3, ge=1, le=100, description="Failed polls before comm_fault.")
    loop_register: int | None = Field(
        default=None, ge=0, le=65535, description="Input register (0x04) of the supervised loop."
    )
    loop_full_scale: int = Field(
        default=4095, ge=1, le=65535, description="Raw register value that means 1.0."
    )


class SimulatorInput(Strict):
    socket: str = Field(
        default="/tmp/pole-agent-bell.sock",  # noqa: S108 - development default only
        description="Unix socket where `pole-agent bell press` sends presses.",
    )
    script: str | None = Field(
        default=None,
        description="File of '<at_s> <command>' lines (e.g. '2.5 press 0.3') replayed at start.",
    )


class PolicyConfig(Strict):
    mode: Literal["immediate", "hold", "double"] = Field(
        default="immediate", description="What activates the alarm."
    )
    hold_s: float = Field(default=3.0, gt=0, le=60, description="Hold mode: seconds held.")
    double_window_s: float = Field(
        default=2.0, gt=0, le=10, description="Double mode: second press within this window."
    )
    lockout_s: float = Field(default=10.0, ge=0, le=600, description="No re-trigger for this long.")
    stuck_s: float = Field(default=120.0, gt=0, le=86400, description="Held this long: stuck.")
    flap_changes: int = Field(default=20, ge=4, le=1000, description="Changes that mean flapping.")
    flap_window_s: float = Field(
        default=10.0, gt=0, le=600, description="Window for flapping; this long quiet ends it."
    )

    @model_validator(mode="after")
    def _stuck_after_hold(self) -> PolicyConfig:
        if self.mode == "hold" and self.stuck_s <= self.hold_s:
            raise ValueError("stuck_s must be longer than hold_s")
        return self


class SupervisionConfig(Strict):
    enabled: bool = Field(default=False, description="The loop has end-of-line resistors.")
    normal: tuple[float, float] = Field(default=(0.35, 0.65), description="Normal band, 0..1.")
    alarm: tuple[float, float] = Field(default=(0.10, 0.35), description="Alarm band, 0..1.")
    hysteresis: float = Field(
        default=0.02, ge=0, le=0.2, description="Margin a value must cross to leave its band."
    )
    # below alarm band: short; above normal band: open (cut wire)

    @model_validator(mode="after")
    def _bands(self) -> SupervisionConfig:
        a, n = self.alarm, self.normal
        if not 0.0 <= a[0] < a[1] <= n[0] < n[1] <= 1.0:
            raise ValueError(
                "bands must satisfy 0 <= alarm[0] < alarm[1] <= normal[0] < normal[1] <= 1"
            )
        return self


class OutputsConfig(Strict):
    backend: Literal["none", "simulator", "gpiod", "modbus"] = Field(
        default="simulator", description="Where the strobe and siren are driven."
    )
    strobe: str | None = Field(default="strobe", description="GPIO line name or coil number.")
    siren: str | None = Field(default="siren", description="GPIO line name or coil number.")
    duration_s: float = Field(default=60.0, gt=0, le=3600, description="How long outputs run.")
    until_ack: bool = Field(default=False, description="Run until the centre acknowledges.")


class PresetConfig(Strict):
    camera: str = Field(pattern=ID_PATTERN, description="Camera that turns to the bell.")
    onvif_url: str = Field(pattern=r"^https?://", description="ONVIF PTZ service URL.")
    profile_token: str = Field(default="Profile_1", description="ONVIF media profile token.")
    preset: str = Field(min_length=1, description="Preset token that shows the bell.")
    username: str = Field(default="", description="ONVIF user.")
    password_file: str | None = Field(default=None, description="File holding the ONVIF password.")


class BellConfig(Strict):
    enabled: bool = Field(default=True, description="Watch an emergency bell on this unit.")
    backend: Literal["simulator", "gpiod", "modbus"] = Field(description="Input hardware.")
    gpiod: GpiodInput | None = Field(default=None, description="GPIO character device input.")
    modbus: ModbusInput | None = Field(default=None, description="RS-485 Modbus RTU module.")
    simulator: SimulatorInput = Field(default_factory=SimulatorInput, description="Simulator.")
    normally_closed: bool = Field(default=False, description="Contact opens when pressed.")
    tamper_normally_closed: bool = Field(
        default=True, description="Door contact is closed while the door is shut."
    )
    power_normally_closed: bool = Field(
        default=True, description="Power-good contact is closed while power is fine."
    )
    debounce_ms: int = Field(default=30, ge=0, le=1000, description="Software contact debounce.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Activation policy.")
    supervision: SupervisionConfig = Field(
        default_factory=SupervisionConfig, description="End-of-line supervised loop."
    )
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="Strobe and siren.")
    preset: PresetConfig | None = Field(default=None, description="Camera preset on activation.")

    @model_validator(mode="after")
    def _backend_section(self) -> BellConfig:
        if self.backend == "gpiod" and self.gpiod is None:
            raise ValueError("backend 'gpiod' needs a 'gpiod' section")
        if self.backend == "modbus" and self.modbus is None:
            raise ValueError("backend 'modbus' needs a 'modbus' section")
        out = self.outputs
        if out.backend in ("gpiod", "modbus") and getattr(self, out.backend) is None:
            raise ValueError(f"outputs.backend {out.backend!r} needs a '{out.backend}' section")
        if out.backend == "modbus":
            for name in ("strobe", "siren"):
                value = getattr(out, name)
                if value is not None and not value.isdigit():
                    raise ValueError(
                        f"outputs.{name} must be a coil number for modbus, got {value!r}"
                    )
        if self.supervision.enabled:
            if self.backend == "gpiod":
                raise ValueError("supervision needs an analog input; gpiod has none")
            if self.backend == "modbus" and self.modbus and self.modbus.loop_register is None:
                raise ValueError("supervision on modbus needs modbus.loop_register")
        return self


# --------------------------------------------------------------------------- mqtt
class TlsConfig(Strict):
    ca: str = Field(min_length=1, description="CA certificate file (PEM) of the broker.")
    cert: str | None = Field(default=None, description="Client certificate (mutual TLS).")
    key: str | None = Field(default=None, description="Client private key (mutual TLS).")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("'cert' and 'key' go together")
        return self


class MqttConfig(Strict):
    host: str = Field(default="127.0.0.1", min_length=1, description="Broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port.")
    tls: TlsConfig | None = Field(default=None, description="TLS; absent means plain TCP.")
    username: str | None = Field(default=None, description="MQTT user name.")
    password_file: str | None = Field(default=None, description="File holding the password.")
    password_env: str | None = Field(default=None, description="Variable holding the password.")
    password: SecretStr | None = Field(
        default=None, description="Password itself (prefer password_file); never printed."
    )
    topic_prefix: str = Field(
        default="pole", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", description="Topic root."
    )
    client_id: str | None = Field(default=None, description="Stable client id; default device id.")
    protocol: Literal["auto", "5", "3.1.1"] = Field(
        default="auto", description="MQTT version; auto tries 5 then falls back to 3.1.1."
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="Keepalive interval.")
    max_inflight: int = Field(default=32, ge=1, le=1000, description="Unacknowledged publishes.")
    backoff_min_s: float = Field(default=0.5, gt=0, le=60, description="First reconnect delay.")
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600, description="Longest delay.")
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60, description="TCP/TLS timeout.")

    @model_validator(mode="after")
    def _one_password(self) -> MqttConfig:
        given = [n for n in ("password_file", "password_env", "password") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give one of password_file, password_env, password; got {given}")
        return self

    def resolve_password(self) -> str | None:
        """The password from the file, the environment or the config; None when unset."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file:
            return credentials.read_text(self.password_file, "mqtt.password_file")
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError("mqtt", [f"mqtt.password_env: ${self.password_env} is not set"])
            return value
        return None


# --------------------------------------------------------------------------- the rest
class SpoolConfig(Strict):
    path: str = Field(default="spool.db", min_length=1, description="SQLite file of the outbox.")
    max_rows: int = Field(default=100_000, ge=100, le=10_000_000, description="Most events kept.")
    max_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024 * 1024, description="Most payload bytes kept."
    )
    telemetry_ttl_s: int = Field(
        default=3600, ge=60, description="Heartbeats older than this are not replayed."
    )


class HealthConfig(Strict):
    heartbeat_s: float = Field(default=30.0, ge=1, le=3600, description="Heartbeat period.")
    watchdog_grace_s: float = Field(
        default=10.0, ge=1, le=600, description="A critical thread silent this long is hung."
    )


class CommandsConfig(Strict):
    key_file: str | None = Field(
        default=None,
        description="Per-device HMAC key file (64 hex digits); a relative path is looked up "
        "in $CREDENTIALS_DIRECTORY. Without it, every command is refused.",
    )
    site_key_file: str | None = Field(
        default=None,
        description="Site-wide HMAC key file for broadcasts on <prefix>/<site>/_site/cmd/+; "
        "without it, broadcasts are refused.",
    )
    max_age_s: float = Field(default=60.0, ge=1, le=3600, description="Oldest accepted command.")
    max_bytes: int = Field(default=4096, ge=256, le=262144, description="Largest payload.")
    rate_per_min: int = Field(
        default=60, ge=1, le=6000, description="Commands per minute (and rejections reported)."
    )


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Level."
    )


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


# --------------------------------------------------------------------------- loading
def profile_dirs() -> list[Path]:
    """Where hardware profiles are looked for, first match wins."""
    dirs: list[Path] = []
    env = os.environ.get("POLE_AGENT_PROFILES")
    if env:
        dirs.append(Path(env))
    dirs.append(Path("/etc/pole-agent/firmware_configs"))
    dirs.append(Path(__file__).resolve().parent.parent / "firmware_configs")
    return dirs


def find_profile(name: str) -> Path:
    """The file of hardware profile ``name``; ConfigError when no directory has it."""
    if "/" in name or name.startswith("."):
        raise ConfigError("profile", [f"profile: {name!r} is not a profile name"])
    for d in profile_dirs():
        path = d / f"{name}.yaml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(
        "profile", [f"profile: no hardware profile {name!r}; known: {', '.join(known) or 'none'}"]
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [f"byte {exc.start} is not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), [f"{where}not valid YAML ({problem})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(path), [f"the top level must be a mapping, got {type(data).__name__}"]
        )
    return data


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(err: Mapping[str, Any]) -> str:
    kind, ctx, got = err["type"], err.get("ctx") or {}, err.get("input")
    shown = json.dumps(got, ensure_ascii=False, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    simple = {
        "less_than_equal": f"must be <= {ctx.get('le')}",
        "less_than": f"must be < {ctx.get('lt')}",
        "greater_than_equal": f"must be >= {ctx.get('ge')}",
        "greater_than": f"must be > {ctx.get('gt')}",
        "multiple_of": f"must be a multiple of {ctx.get('multiple_of')}",
        "string_pattern_mismatch": f"must match {ctx.get('pattern')}",
        "literal_error": f"must be one of {ctx.get('expected')}",
    }
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return "unknown key (a typo? `pole-agent config schema` lists the keys)"
    if kind in simple:
        return f"{simple[kind]}, got {shown}"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    return f"{msg[0].lower()}{msg[1:]}, got {shown}"


def load_mapping(data: Mapping[str, Any], source: str = "config") -> AgentConfig:
    """Validate an already merged mapping; ConfigError lists every problem with its path."""
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_loc(e['loc'])}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError(source, problems) from None


def load(site_file: str | Path) -> AgentConfig:
    """Read a site file, merge it over its hardware profile, validate once."""
    path = Path(site_file)
    site = _read_yaml(path)
    profile = site.get("profile")
    merged: dict[str, Any] = site
    if profile is not None:
        if not isinstance(profile, str):
            raise ConfigError(str(path), [f"profile: must be a profile name, got {profile!r}"])
        merged = _merge(_read_yaml(find_profile(profile)), site)
    return load_mapping(merged, str(path))


def redacted(cfg: AgentConfig) -> dict[str, Any]:
    """The config as plain data with every secret replaced by '***'."""
    data = cfg.model_dump(mode="json")
    if cfg.mqtt.password is not None:
        data["mqtt"]["password"] = "***"  # noqa: S105 - the redaction marker, not a password
    return data


def config_hash(cfg: AgentConfig) -> str:
    """Short stable hash of the effective config (secrets included, so a change shows)."""
    data = cfg.model_dump(mode="json")
    if cfg.mqtt.password is not None:
        data["mqtt"]["password"] = cfg.mqtt.password.get_secret_value()
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


PLACEHOLDER_DEVICE = {
    "id": "profile-check",
    "site": "profile-check",
    "pole": "0",
    "latitude": 0.0,
    "longitude": 0.0,
}


def load_profile_file(path: str | Path) -> AgentConfig:
    """Validate a hardware profile on its own, with a placeholder identity."""
    data = _read_yaml(Path(path))
    if "device" in data:
        raise ConfigError(str(path), ["device: a hardware profile must not name a device"])
    return load_mapping({**data, "device": PLACEHOLDER_DEVICE}, str(path))
