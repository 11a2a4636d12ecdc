"""The Modbus module's coils (function 0x05) as the strobe and siren relays."""

from __future__ import annotations

from typing import Any

from agent.bell.hw.modbus.line import PORT_ERRORS, ModbusLine
from agent.bell.hw.modbus.rtu import ModbusError
from agent.bell.outputs import OutputError

__all__ = ["ModbusOutputs"]


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
