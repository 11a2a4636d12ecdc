"""The bell input interface: what every backend (``agent.bell.hw``) yields, the waker that
lets commands interrupt a wait, and the factory of the configured backend.

A backend is opened once (``open`` raises :class:`BellInputError` with a paragraph for the
technician), then polled by the bell thread: ``poll(timeout)`` blocks at most ``timeout``
seconds (less when the waker is set) and returns :class:`Sample` changes and
:class:`CommChange` link faults.  Levels are logical: True means pressed, tamper, power
failed; each backend applies the contact polarity of its wiring.
"""

from __future__ import annotations

import contextlib
import os
import select
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agent.errors import BellError

if TYPE_CHECKING:
    from agent.config import BellConfig

__all__ = [
    "BellInputError",
    "CommChange",
    "InputBackend",
    "InputName",
    "Reading",
    "Sample",
    "Waker",
    "held_devices",
    "input_devices",
    "logical",
    "make_backend",
]

InputName = Literal["button", "tamper", "power", "loop"]


class BellInputError(BellError):
    """The bell input cannot be opened: a clear paragraph, never a traceback."""


@dataclass(frozen=True, slots=True)
class Sample:
    """An input's logical value at monotonic time ``t`` (0..1 for the analog loop)."""

    inp: InputName
    value: float
    t: float


@dataclass(frozen=True, slots=True)
class CommChange:
    """The link to the bell's hardware failed (``ok`` False) or recovered.

    ``link`` None is the input backend itself; ``"outputs"`` is the strobe and siren driver.
    """

    ok: bool
    t: float
    why: str
    link: str | None = None


Reading = Sample | CommChange


class InputBackend(Protocol):
    name: str

    def open(self) -> None: ...
    def poll(self, timeout: float) -> list[Reading]: ...
    def close(self) -> None: ...
    def facts(self) -> dict[str, Any]: ...


def logical(closed: bool, normally_closed: bool) -> bool:
    """Contact state to meaning: a normally-closed contact is active when open."""
    return closed != normally_closed


class Waker:
    """A self-pipe: ``set`` from any thread ends the bell thread's ``select`` at once."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def fileno(self) -> int:
        return self._r

    def set(self) -> None:
        # Full: a wake is pending anyway. Closed (-1, EBADF): the service has stopped.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._w, b"\0")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._r, 4096):
                pass

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout``; True if woken early."""
        ready, _, _ = select.select([self._r], [], [], max(0.0, timeout))
        if ready:
            self.clear()
        return bool(ready)

    def close(self) -> None:
        # Once only: closing a number twice could close a descriptor reused by someone else.
        fds, self._r, self._w = (self._r, self._w), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def make_backend(cfg: BellConfig, waker: Waker) -> InputBackend:
    """The configured backend, not yet opened (imports only what it needs)."""
    if cfg.backend == "modbus":
        from agent.bell.hw.modbus.inputs import ModbusBackend

        return ModbusBackend(cfg, waker)
    if cfg.backend == "gpiod":
        from agent.bell.hw.gpio import GpiodBackend

        return GpiodBackend(cfg, waker)
    from agent.bell.hw.simulator import SimulatorBackend

    return SimulatorBackend(cfg, waker)


def input_devices(cfg: BellConfig) -> frozenset[str]:
    """What the configured input holds open, named so that two configs compare.

    A serial port by its real path (a ``/dev/serial/by-id`` link and its ``/dev/ttyUSB0``
    are one port), a GPIO line by its name alone (a chip's label and its ``/dev`` path may
    be one chip), the simulator by its socket's real path.
    """
    if cfg.backend == "modbus" and cfg.modbus is not None:
        return frozenset({f"serial:{os.path.realpath(cfg.modbus.port)}"})
    if cfg.backend == "gpiod" and cfg.gpiod is not None:
        g = cfg.gpiod
        return frozenset(f"gpio:{line}" for line in (g.button, g.tamper, g.power_fail) if line)
    return frozenset({f"socket:{os.path.realpath(cfg.simulator.socket)}"})


def held_devices(cfg: BellConfig) -> frozenset[str]:
    """What a bell of this config holds open: its input's devices and its outputs'."""
    out = cfg.outputs
    names = [n for n in (out.strobe, out.siren) if n is not None]
    held = set(input_devices(cfg))
    if out.backend == "gpiod":
        held |= {f"gpio:{name}" for name in names}
    elif out.backend == "modbus" and cfg.modbus is not None:
        held.add(f"serial:{os.path.realpath(cfg.modbus.port)}")
    return frozenset(held)
