"""A simulated RS-485 digital-input module on the far side of a real pty pair.

It speaks real Modbus RTU frames with real CRCs (functions 0x02, 0x04, 0x05), and can be
told to misbehave: stay silent, answer garbage, answer with a bad CRC, answer with an
exception, or flood the line with noise.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import struct
import threading
import tty
from typing import Literal

from agent.bell.hw.modbus.rtu import crc16, frame

Mode = Literal["ok", "dead", "garbage", "bad_crc", "exception", "flood"]


class SimModule:
    def __init__(self, unit: int = 1) -> None:
        self.unit = unit
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        self.path = os.ttyname(self.slave)
        self.inputs = [False] * 16
        self.registers = [0] * 8
        self.coils: dict[int, bool] = {}
        self.mode: Mode = "ok"
        self.requests = 0
        self.rng = random.Random(7)
        self._stop = threading.Event()
        self._buf = b""
        self._thread = threading.Thread(target=self._serve, name="sim-module", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def unplug(self) -> None:
        """The adapter disappears: the master side closes."""
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = -1

    # ------------------------------------------------------------------ serving
    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.005)
            if self.mode == "flood":
                os.write(self.master, self.rng.randbytes(16))
            if not ready:
                continue
            try:
                self._buf += os.read(self.master, 256)
            except OSError:
                return
            self._frames()

    def _frames(self) -> None:
        # Every request of ours is 8 bytes; resynchronise byte by byte on a bad CRC.
        while len(self._buf) >= 8:
            req = self._buf[:8]
            if crc16(req[:6]) != struct.unpack("<H", req[6:])[0] or req[0] != self.unit:
                self._buf = self._buf[1:]
                continue
            self._buf = self._buf[8:]
            self.requests += 1
            reply = self._answer(req)
            if reply:
                os.write(self.master, reply)

    def _answer(self, req: bytes) -> bytes:
        fn, addr, arg = req[1], *struct.unpack(">HH", req[2:6])
        if self.mode in ("dead", "flood"):
            return b""
        if self.mode == "garbage":
            return self.rng.randbytes(self.rng.randint(1, 12))
        if self.mode == "exception":
            return frame(self.unit, bytes([fn | 0x80, 2]))
        if fn == 0x02:
            bits = [
                self.inputs[addr + i] if addr + i < len(self.inputs) else False for i in range(arg)
            ]
            data = bytes(
                sum(1 << j for j in range(8) if i + j < len(bits) and bits[i + j])
                for i in range(0, len(bits), 8)
            )
            out = frame(self.unit, bytes([fn, len(data)]) + data)
        elif fn == 0x04:
            data = b"".join(struct.pack(">H", self.registers[addr + i]) for i in range(arg))
            out = frame(self.unit, bytes([fn, len(data)]) + data)
        elif fn == 0x05:
            self.coils[addr] = arg == 0xFF00
            out = req
        else:
            out = frame(self.unit, bytes([fn | 0x80, 1]))
        if self.mode == "bad_crc":
            out = out[:-1] + bytes([out[-1] ^ 0x5A])
        return out
