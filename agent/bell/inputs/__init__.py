"""Bell input backends: simulator, Modbus RTU module, GPIO (gpiod 2.x)."""

from __future__ import annotations

from agent.bell.inputs.base import (
    BellInputError,
    CommChange,
    InputBackend,
    InputName,
    Reading,
    Sample,
    Waker,
    logical,
)
from agent.config import BellConfig

__all__ = [
    "BellInputError",
    "CommChange",
    "InputBackend",
    "InputName",
    "Reading",
    "Sample",
    "Waker",
    "logical",
    "make_backend",
]


def make_backend(cfg: BellConfig, waker: Waker) -> InputBackend:
    """The configured backend, not yet opened (imports only what it needs)."""
    if cfg.backend == "modbus":
        from agent.bell.inputs.modbus import ModbusBackend

        return ModbusBackend(cfg, waker)
    if cfg.backend == "gpiod":
        from agent.bell.inputs.gpio import GpiodBackend

        return GpiodBackend(cfg, waker)
    from agent.bell.inputs.simulator import SimulatorBackend

    return SimulatorBackend(cfg, waker)
