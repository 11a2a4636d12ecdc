"""A small Modbus RTU client over pyserial: the three functions a bell module needs.

Why our own and not pymodbus: we use three function codes (0x02 read discrete inputs,
0x04 read input registers for a supervised loop, 0x05 write single coil), each a fixed
eight-byte request plus CRC; a few dozen lines we fully test against a simulated module
on a pty, versus a large dependency whose retry and reconnect policy we would have to
override to get the fault counting the bell needs (a poll either answers correctly or
counts as one failure, nothing is retried behind our back).

Frames: ``unit, function, data..., crc_lo, crc_hi`` with CRC-16/MODBUS (poly 0xA001
reflected, init 0xFFFF).  Every malformed reply raises a :class:`ModbusError` subclass
naming the bytes it got; after an error the line is drained so the next poll starts clean.
"""

from __future__ import annotations

import struct
import time
from typing import Protocol

__all__ = [
    "ModbusClient",
    "ModbusCrcError",
    "ModbusError",
    "ModbusFrameError",
    "ModbusReplyError",
    "ModbusTimeoutError",
    "SerialLike",
    "crc16",
    "frame",
]

READ_DISCRETE_INPUTS = 0x02
READ_INPUT_REGISTERS = 0x04
WRITE_SINGLE_COIL = 0x05
EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    6: "server device busy",
}


def _table() -> list[int]:
    out = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        out.append(crc)
    return out


_CRC_TABLE = _table()


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of ``data`` (sent low byte first)."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc


def frame(unit: int, pdu: bytes) -> bytes:
    """An RTU frame: unit address, PDU, CRC (little-endian)."""
    body = bytes([unit]) + pdu
    return body + struct.pack("<H", crc16(body))


class ModbusError(Exception):
    """A poll that did not give a valid answer."""


class ModbusTimeoutError(ModbusError):
    pass


class ModbusCrcError(ModbusError):
    pass


class ModbusFrameError(ModbusError):
    pass


class ModbusReplyError(ModbusError):
    def __init__(self, function: int, code: int) -> None:
        self.code = code
        name = EXCEPTIONS.get(code, "unknown")
        super().__init__(f"exception reply to function 0x{function:02x}: {code} ({name})")


class SerialLike(Protocol):
    """What we use of ``serial.Serial``."""

    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int = 1, /) -> bytes: ...
    def reset_input_buffer(self) -> None: ...
    def flush(self) -> None: ...


def _hex(data: bytes) -> str:
    shown = data[:16].hex(" ")
    return shown + (" …" if len(data) > 16 else "")


class ModbusClient:
    """Request/reply over one serial line. Not thread-safe: one owner thread."""

    def __init__(self, port: SerialLike, baudrate: int = 9600) -> None:
        self.port = port
        # 3.5 character times of silence separate frames (11 bits per character);
        # above 19200 baud the standard fixes it at 1.75 ms.
        self.gap_s = 0.00175 if baudrate > 19200 else 3.5 * 11 / baudrate

    def read_discrete_inputs(self, unit: int, address: int, count: int) -> list[bool]:
        """Function 0x02: ``count`` inputs from ``address``, True = input on."""
        pdu = struct.pack(">BHH", READ_DISCRETE_INPUTS, address, count)
        data = self._transact(unit, pdu, (count + 7) // 8)
        return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]

    def read_input_registers(self, unit: int, address: int, count: int) -> list[int]:
        """Function 0x04: ``count`` 16-bit input registers from ``address``."""
        pdu = struct.pack(">BHH", READ_INPUT_REGISTERS, address, count)
        data = self._transact(unit, pdu, 2 * count)
        return list(struct.unpack(f">{count}H", data))

    def write_single_coil(self, unit: int, address: int, on: bool) -> None:
        """Function 0x05: switch one coil; the module echoes the request."""
        pdu = struct.pack(">BHH", WRITE_SINGLE_COIL, address, 0xFF00 if on else 0x0000)
        self._transact(unit, pdu, None)

    # ------------------------------------------------------------------ internals
    def _transact(self, unit: int, pdu: bytes, nbytes: int | None) -> bytes:
        """Send, read and check one reply; returns its data bytes. Drains after errors."""
        request = frame(unit, pdu)
        self.port.reset_input_buffer()  # a late reply to an earlier poll is not ours
        self.port.write(request)
        self.port.flush()
        try:
            return self._reply(unit, pdu[0], request, nbytes)
        except ModbusError:
            self._drain()
            raise

    def _reply(self, unit: int, function: int, request: bytes, nbytes: int | None) -> bytes:
        head = self.port.read(2)
        if not head:
            raise ModbusTimeoutError(f"no reply from unit {unit} to function 0x{function:02x}")
        if len(head) < 2:
            raise ModbusFrameError(f"reply cut short after {_hex(head)}")
        if head[0] != unit or head[1] & 0x7F != function:
            raise ModbusFrameError(
                f"unexpected bytes {_hex(head)}: expected unit {unit:#04x}, "
                f"function {function:#04x}"
            )
        if head[1] & 0x80:
            rest = self._read_exact(3, head)
            self._check_crc(head + rest)
            raise ModbusReplyError(function, rest[0])
        if nbytes is None:  # write single coil: an echo of the request
            reply = head + self._read_exact(6, head)
            self._check_crc(reply)
            if reply != request:
                raise ModbusFrameError(f"coil write echo {_hex(reply)} != {_hex(request)}")
            return b""
        count = self._read_exact(1, head)
        if count[0] != nbytes:
            raise ModbusFrameError(f"byte count {count[0]} in {_hex(head + count)}, want {nbytes}")
        rest = self._read_exact(nbytes + 2, head + count)
        self._check_crc(head + count + rest)
        return rest[:-2]

    def _read_exact(self, n: int, got: bytes) -> bytes:
        data = self.port.read(n)
        if len(data) < n:
            raise ModbusFrameError(f"reply cut short after {_hex(got + data)}")
        return data

    @staticmethod
    def _check_crc(reply: bytes) -> None:
        want = crc16(reply[:-2])
        (have,) = struct.unpack("<H", reply[-2:])
        if want != have:
            raise ModbusCrcError(f"bad CRC {have:04x} (want {want:04x}) in {_hex(reply)}")

    def _drain(self) -> None:
        # Let the rest of a bad frame arrive, then drop it, so the next poll starts clean.
        time.sleep(self.gap_s)
        self.port.reset_input_buffer()
