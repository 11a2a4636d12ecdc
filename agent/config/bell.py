"""The emergency bell: input wiring (gpiod, Modbus, simulator), policy, outputs, preset."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent.config.base import ID_PATTERN, Strict

__all__ = [
    "BellConfig",
    "GpiodInput",
    "ModbusInput",
    "OutputsConfig",
    "PolicyConfig",
    "PresetConfig",
    "SimulatorInput",
    "SupervisionConfig",
]


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
