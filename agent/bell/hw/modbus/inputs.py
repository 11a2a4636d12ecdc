"""RS-485 Modbus RTU digital-input module as the bell input, polled every ``poll_ms``.

Each poll reads the configured discrete inputs (function 0x02) in one request when they
are close together, and the supervised loop's input register (0x04) when configured.  A
poll either gives valid values or counts one failure (timeout, bad CRC, garbage, an
exception reply, a vanished serial port); ``fault_after`` failures in a row give one
``comm_fault``, the first good poll after that one ``comm_restored``.  The serial port is
reopened (at most once a second) when it disappears, e.g. a USB adapter unplugged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from agent.bell.hw.modbus.line import PORT_ERRORS, ModbusLine
from agent.bell.hw.modbus.rtu import ModbusClient, ModbusError
from agent.bell.inputs import (
    CommChange,
    InputName,
    Reading,
    Sample,
    Waker,
    logical,
)
from agent.config import BellConfig

__all__ = ["ModbusBackend"]

log = logging.getLogger(__name__)

MAX_SPAN = 64  # inputs further apart than this are read with separate requests


class ModbusBackend:
    """Polls the module; yields changes of the logical inputs and link faults."""

    name = "modbus"

    def __init__(
        self,
        cfg: BellConfig,
        waker: Waker,
        *,
        line: ModbusLine | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert cfg.modbus is not None
        self.cfg, self.mb = cfg, cfg.modbus
        self.waker, self.clock = waker, clock
        self.line = line or ModbusLine(cfg.modbus, clock=clock)
        self.inputs = self._inputs()
        self.failures = 0
        self.faulted = False
        self.next_poll = 0.0
        self.last: dict[InputName, float] = {}
        self.polls = 0
        self.errors: dict[str, int] = {}

    def _inputs(self) -> dict[InputName, tuple[int, bool]]:
        """Discrete inputs to read: name -> (address, normally closed)."""
        mb, cfg = self.mb, self.cfg
        out: dict[InputName, tuple[int, bool]] = {}
        if not cfg.supervision.enabled:
            out["button"] = (mb.button, cfg.normally_closed)
        if mb.tamper is not None:
            out["tamper"] = (mb.tamper, cfg.tamper_normally_closed)
        if mb.power_fail is not None:
            out["power"] = (mb.power_fail, cfg.power_normally_closed)
        return out

    def open(self) -> None:
        self.line.open()

    def close(self) -> None:
        self.line.close()

    def facts(self) -> dict[str, Any]:
        return {
            "port": self.mb.port,
            "comm": "fault" if self.faulted else "ok",
            "polls": self.polls,
            "errors": dict(self.errors),
            "reopens": self.line.reopens,
        }

    def poll(self, timeout: float) -> list[Reading]:
        wait = self.next_poll - self.clock()
        if wait > timeout:
            self.waker.wait(timeout)
            return []
        if wait > 0 and self.waker.wait(wait):
            return []  # woken for a command; poll on the next turn
        # Fixed rate without catching up: a slow poll delays the next, never bunches them.
        self.next_poll = max(self.next_poll + self.mb.poll_ms / 1000, self.clock())
        return self.poll_once()

    def poll_once(self) -> list[Reading]:
        """One request/reply cycle (or two, with a supervised loop)."""
        self.polls += 1
        try:
            client = self.line.client()
            values = self._read(client)
        except ModbusError as exc:
            return self._failed(exc)
        except PORT_ERRORS as exc:  # the adapter went away
            self.line.broken()
            return self._failed(exc)
        t = self.clock()
        out: list[Reading] = []
        if self.faulted:
            self.faulted = False
            log.warning("bell: Modbus module answers again after %d failed polls", self.failures)
            out.append(CommChange(True, t, f"after {self.failures} failed polls"))
        self.failures = 0
        for name, value in values.items():
            if self.last.get(name) != value:
                self.last[name] = value
                out.append(Sample(name, value, t))
        return out

    def _read(self, client: ModbusClient) -> dict[InputName, float]:
        unit, out = self.mb.unit, {}
        addrs = [a for a, _ in self.inputs.values()]
        if addrs:
            lo, hi = min(addrs), max(addrs)
            if hi - lo < MAX_SPAN:
                bits = client.read_discrete_inputs(unit, lo, hi - lo + 1)
                got = {a: bits[a - lo] for a in addrs}
            else:
                got = {a: client.read_discrete_inputs(unit, a, 1)[0] for a in addrs}
            for name, (addr, nc) in self.inputs.items():
                out[name] = 1.0 if logical(got[addr], nc) else 0.0
        if self.cfg.supervision.enabled and self.mb.loop_register is not None:
            (raw,) = client.read_input_registers(unit, self.mb.loop_register, 1)
            out["loop"] = min(raw / self.mb.loop_full_scale, 1.0)
        return out

    def _failed(self, exc: Exception) -> list[Reading]:
        kind = type(exc).__name__.removeprefix("Modbus").removesuffix("Error").lower() or "error"
        self.errors[kind] = self.errors.get(kind, 0) + 1
        self.failures += 1
        if self.failures == 1:
            log.debug("bell: Modbus poll failed: %s", exc)
        if self.faulted or self.failures < self.mb.fault_after:
            return []
        self.faulted = True
        log.warning("bell: Modbus module not answering (%d failed polls): %s", self.failures, exc)
        return [CommChange(False, self.clock(), f"{self.failures} failed polls: {exc}")]
