"""Strobe and siren: when they run (pure timer) and what drives them (simulator, GPIO, coils).

On activation both outputs go on for ``duration_s`` (a new activation restarts the
time), or, with ``until_ack``, until the centre acknowledges; then an ``outputs_off``
signal says why they stopped.  Drivers are called from the bell thread only; a driver that
fails (a Modbus timeout) is retried on the next turn of the bell loop, never blocks it long.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Protocol

from agent.bell.inputs.gpio import find_chip, import_gpiod
from agent.bell.inputs.modbus import PORT_ERRORS, ModbusLine
from agent.bell.machine import BellSignal
from agent.bell.modbus import ModbusError
from agent.config import BellConfig, GpiodInput, OutputsConfig

__all__ = [
    "GpiodOutputs",
    "ModbusOutputs",
    "NoOutputs",
    "OutputDriver",
    "OutputError",
    "OutputTimer",
    "SimulatorOutputs",
    "make_outputs",
]

log = logging.getLogger(__name__)


class OutputError(Exception):
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


class SimulatorOutputs:
    """Records what a real box would switch, and logs it (the demo shows the lines)."""

    name = "simulator"

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.state = dict.fromkeys(names, False)
        self.history: deque[tuple[str, bool]] = deque(maxlen=1000)

    def open(self) -> None:
        return

    def set(self, on: bool) -> None:
        for name in self.names:
            self.state[name] = on
            self.history.append((name, on))
        log.info("bell outputs (simulated): %s %s", " and ".join(self.names), "ON" if on else "off")

    def close(self) -> None:
        return

    def facts(self) -> dict[str, Any]:
        return dict(self.state)


class GpiodOutputs:
    """Relay lines on the GPIO chip, requested by name as outputs, inactive at start."""

    name = "gpiod"

    def __init__(self, g: GpiodInput, names: list[str]) -> None:
        self.g, self.names = g, names
        self._req: Any = None

    def open(self) -> None:
        gpiod = import_gpiod()
        from gpiod.line import Direction, Value

        path = find_chip(gpiod, self.g.chip)
        settings = gpiod.LineSettings(direction=Direction.OUTPUT, output_value=Value.INACTIVE)
        try:
            self._req = gpiod.request_lines(
                path, consumer="pole-agent", config={tuple(self.names): settings}
            )
        except (OSError, ValueError) as exc:
            raise OutputError(
                f"bell.outputs: cannot request {self.names} on {path}: {exc}"
            ) from None

    def set(self, on: bool) -> None:
        from gpiod.line import Value

        value = Value.ACTIVE if on else Value.INACTIVE
        try:
            self._req.set_values(dict.fromkeys(self.names, value))
        except OSError as exc:
            raise OutputError(f"GPIO write failed: {exc}") from None

    def close(self) -> None:
        if self._req is not None:
            self._req.release()
            self._req = None

    def facts(self) -> dict[str, Any]:
        return {"lines": self.names}


class ModbusOutputs:
    """Coils of the RS-485 module (function 0x05), on the input's line when it is shared."""

    name = "modbus"

    def __init__(self, line: ModbusLine, unit: int, coils: list[int], own_line: bool) -> None:
        self.line, self.unit, self.coils = line, unit, coils
        self.own_line = own_line
        self.writes = 0
        self.errors = 0

    def open(self) -> None:
        if self.own_line:
            self.line.open()

    def set(self, on: bool) -> None:
        for attempt in (1, 2):
            try:
                client = self.line.client()
                for coil in self.coils:
                    client.write_single_coil(self.unit, coil, on)
                    self.writes += 1
            except ModbusError as exc:
                self.errors += 1
                raise OutputError(f"coil write failed: {exc}") from None
            except PORT_ERRORS as exc:
                self.errors += 1
                self.line.broken()  # reopened by the second attempt
                if attempt == 2:
                    raise OutputError(f"serial port failed: {exc}") from None
            else:
                return

    def close(self) -> None:
        if self.own_line:
            self.line.close()

    def facts(self) -> dict[str, Any]:
        return {"coils": self.coils, "writes": self.writes, "errors": self.errors}


def make_outputs(cfg: BellConfig, shared: ModbusLine | None = None) -> OutputDriver:
    """The configured driver; ``shared`` is the input's Modbus line, if it has one."""
    out = cfg.outputs
    names = [n for n in (out.strobe, out.siren) if n is not None]
    if out.backend == "none" or not names:
        return NoOutputs()
    if out.backend == "simulator":
        return SimulatorOutputs(names)
    if out.backend == "gpiod":
        assert cfg.gpiod is not None
        return GpiodOutputs(cfg.gpiod, names)
    assert cfg.modbus is not None
    line = shared or ModbusLine(cfg.modbus)
    return ModbusOutputs(line, cfg.modbus.unit, [int(n) for n in names], shared is None)
