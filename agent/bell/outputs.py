"""Strobe and siren: when they run (pure timer) and what drives them (simulator, GPIO, coils).

On activation both outputs go on for ``duration_s`` (a new activation restarts the
time), or, with ``until_ack``, until the centre acknowledges; then an ``outputs_off``
signal says why they stopped.  Drivers are called from the bell thread only; a driver that
fails (a Modbus timeout) is retried on the next turn of the bell loop, never blocks it long.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from agent.bell.machine import BellSignal
from agent.config import BellConfig, OutputsConfig
from agent.errors import BellError

if TYPE_CHECKING:
    from agent.bell.hw.modbus.line import ModbusLine

__all__ = [
    "NoOutputs",
    "OutputDriver",
    "OutputError",
    "OutputTimer",
    "make_outputs",
]

log = logging.getLogger(__name__)


class OutputError(BellError):
    """The outputs could not be switched."""


class OutputTimer:
    """Whether the outputs should be on, from activations, acknowledgements and time."""

    def __init__(self, cfg: OutputsConfig) -> None:
        self.cfg = cfg
        self.on = False
        self.until: float | None = None
        self.runs = 0

    def activate(self, t: float) -> None:
        if self.cfg.backend == "none":
            return
        if not self.on:
            self.runs += 1
        self.on = True
        self.until = None if self.cfg.until_ack else t + self.cfg.duration_s

    def acknowledge(self, t: float) -> list[BellSignal]:
        return self._off(t, "ack") if self.on else []

    def stop(self, t: float) -> list[BellSignal]:
        return self._off(t, "stopped") if self.on else []

    def tick(self, t: float) -> list[BellSignal]:
        if self.on and self.until is not None and t >= self.until:
            return self._off(self.until, "duration")
        return []

    def deadline(self) -> float | None:
        return self.until if self.on else None

    def _off(self, t: float, why: str) -> list[BellSignal]:
        self.on, self.until = False, None
        return [BellSignal("outputs_off", t, "outputs", why=why)]


class OutputDriver(Protocol):
    name: str

    def open(self) -> None: ...
    def set(self, on: bool) -> None: ...
    def close(self) -> None: ...
    def facts(self) -> dict[str, Any]: ...


class NoOutputs:
    name = "none"

    def open(self) -> None:
        return

    def set(self, on: bool) -> None:
        return

    def close(self) -> None:
        return

    def facts(self) -> dict[str, Any]:
        return {}


def make_outputs(cfg: BellConfig, shared: ModbusLine | None = None) -> OutputDriver:
    """The configured driver; ``shared`` is the input's Modbus line, if it has one."""
    out = cfg.outputs
    names = [n for n in (out.strobe, out.siren) if n is not None]
    if out.backend == "none" or not names:
        return NoOutputs()
    if out.backend == "simulator":
        from agent.bell.hw.simulator import SimulatorOutputs

        return SimulatorOutputs(names)
    if out.backend == "gpiod":
        from agent.bell.hw.gpio import GpiodOutputs

        assert cfg.gpiod is not None
        return GpiodOutputs(cfg.gpiod, names)
    from agent.bell.hw.modbus.coils import ModbusOutputs
    from agent.bell.hw.modbus.line import ModbusLine

    assert cfg.modbus is not None
    line = shared or ModbusLine(cfg.modbus)
    return ModbusOutputs(line, cfg.modbus.unit, [int(n) for n in names], shared is None)
