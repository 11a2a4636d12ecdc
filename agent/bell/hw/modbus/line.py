"""The serial port of the Modbus module, with its client, reopened when it breaks.

One line may serve both the inputs and the coils of one module (they share the port).
"""

from __future__ import annotations

import logging
import termios
import time
from collections.abc import Callable

from agent.bell.hw.modbus.rtu import ModbusClient, ModbusError, SerialLike
from agent.bell.inputs import BellInputError
from agent.config import ModbusInput

__all__ = ["PORT_ERRORS", "REOPEN_EVERY_S", "ModbusLine", "open_serial"]

log = logging.getLogger(__name__)

REOPEN_EVERY_S = 1.0
# A vanished adapter shows as SerialException (an OSError) or, from tcflush, termios.error.
PORT_ERRORS = (OSError, termios.error)


def open_serial(mb: ModbusInput) -> SerialLike:
    """Open the port with the module's settings (8 data bits)."""
    import serial

    return serial.Serial(
        mb.port,
        baudrate=mb.baudrate,
        bytesize=serial.EIGHTBITS,
        parity=mb.parity,
        stopbits=mb.stopbits,
        timeout=mb.timeout_ms / 1000,
        write_timeout=mb.timeout_ms / 1000,
        exclusive=True,
    )


class ModbusLine:
    """One serial port with its client, reopened when it breaks. Owned by the bell thread."""

    def __init__(
        self,
        mb: ModbusInput,
        opener: Callable[[ModbusInput], SerialLike] = open_serial,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mb = mb
        self.opener = opener
        self.clock = clock
        self._port: SerialLike | None = None
        self._client: ModbusClient | None = None
        self._next_open = 0.0
        self.reopens = 0

    def open(self) -> None:
        """First open: a missing or busy port is a configuration problem, said clearly."""
        try:
            self._connect()
        except (*PORT_ERRORS, ValueError) as exc:  # SerialException is an OSError
            raise BellInputError(
                f"bell.modbus.port: cannot open {self.mb.port} ({exc}); check the RS-485 "
                "adapter is plugged in and the agent may use it (group dialout)"
            ) from None

    def _connect(self) -> None:
        self._port = self.opener(self.mb)
        self._client = ModbusClient(self._port, self.mb.baudrate)

    def client(self) -> ModbusClient:
        """The client; reopens a broken port (failed reopens rate-limited). ModbusError if not."""
        if self._client is None:
            now = self.clock()
            if now < self._next_open:
                raise ModbusError(f"serial port {self.mb.port} is closed")
            try:
                self._connect()
            except (*PORT_ERRORS, ValueError) as exc:
                self._next_open = now + REOPEN_EVERY_S
                raise ModbusError(f"cannot reopen {self.mb.port}: {exc}") from None
            self.reopens += 1
            log.info("bell: reopened serial port %s", self.mb.port)
        assert self._client is not None
        return self._client

    def broken(self) -> None:
        """The port failed at the OS level: close it; the next use reopens it.

        A real unplugged adapter fails the reopen (then retried once a second); a transient
        (pyserial's "readiness to read but returned no data") costs one poll.
        """
        self.close()

    def close(self) -> None:
        port, self._port, self._client = self._port, None, None
        close = getattr(port, "close", None)
        if close is not None:
            try:
                close()
            except OSError as exc:
                log.debug("closing %s: %s", self.mb.port, exc)
