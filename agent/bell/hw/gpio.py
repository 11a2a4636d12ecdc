"""Bell contact, door tamper and power-fail on GPIO lines, through the gpiod 2.x bindings.

Thin on purpose: these machines have no GPIO chip, so this adapter is exercised on the
boards only; everything above it is tested with the simulator and the Modbus backend.

* The chip is found by its label (``pinctrl-bcm2711``), since ``gpiochipN`` numbers move
  between kernels; a path under /dev is taken as is.
* Lines are requested by name, inputs with edge detection on both edges and the kernel's
  debounce; ``active_low`` makes a contact that pulls the line low read as active.
* Edge timestamps come from CLOCK_MONOTONIC, the clock of ``time.monotonic``.
* The levels are read again after every burst of edges and at start, because kernel
  debouncing can swallow an edge and a missed release would look like a stuck button.

Importing this module never needs gpiod; ``open`` says clearly when it is missing.
"""

from __future__ import annotations

import glob
import select
import time
from datetime import timedelta
from typing import Any

from agent.bell.inputs import BellInputError, InputName, Reading, Sample, Waker, logical
from agent.bell.outputs import OutputError
from agent.config import BellConfig, GpiodInput

__all__ = ["GpiodBackend", "GpiodOutputs", "find_chip", "import_gpiod"]

CONSUMER = "pole-agent"


def import_gpiod() -> Any:
    """The gpiod module (2.x); BellInputError with the fix when it is missing or too old."""
    try:
        import gpiod
    except ImportError:
        raise BellInputError(
            "bell.backend gpiod: the gpiod Python package is not installed; install the "
            "'gpio' extra (pip install 'pole-agent[gpio]') or python3-libgpiod >= 2"
        ) from None
    if not hasattr(gpiod, "request_lines"):
        raise BellInputError("bell.backend gpiod: gpiod 1.x is installed; version 2 is needed")
    return gpiod


def find_chip(gpiod: Any, chip: str) -> str:
    """The /dev path of the chip with this label (or the path itself)."""
    if chip.startswith("/dev/"):
        return chip
    labels = []
    for path in sorted(glob.glob("/dev/gpiochip*")):
        if not gpiod.is_gpiochip_device(path):
            continue
        with gpiod.Chip(path) as c:
            label = c.get_info().label
        if label == chip:
            return path
        labels.append(f"{path}={label}")
    raise BellInputError(
        f"bell.gpiod.chip: no GPIO chip labelled {chip!r}; found {', '.join(labels) or 'none'}"
    )


class GpiodBackend:
    """Edge events from the requested lines, plus levels re-read after each burst."""

    name = "gpiod"

    def __init__(self, cfg: BellConfig, waker: Waker) -> None:
        assert cfg.gpiod is not None
        self.cfg, self.g = cfg, cfg.gpiod
        self.waker = waker
        self.lines = _lines(cfg, cfg.gpiod)
        self._req: Any = None
        self._initial: list[Reading] = []
        self._offsets: dict[int, InputName] = {}
        self.edges = 0

    def open(self) -> None:
        gpiod = import_gpiod()
        from gpiod.line import Direction, Edge

        path = find_chip(gpiod, self.g.chip)
        settings = gpiod.LineSettings(
            direction=Direction.INPUT,
            edge_detection=Edge.BOTH,
            active_low=self.g.active_low,
            debounce_period=timedelta(milliseconds=self.g.debounce_ms),
        )
        names = tuple(name for name, _ in self.lines.values())
        try:
            self._req = gpiod.request_lines(path, consumer=CONSUMER, config={names: settings})
        except (OSError, ValueError) as exc:
            raise BellInputError(
                f"bell.gpiod: cannot request lines {', '.join(names)} on {path}: {exc}"
            ) from None
        by_name = dict(zip(self._req.lines, self._req.offsets, strict=True))
        self._offsets = {by_name[line]: inp for inp, (line, _) in self.lines.items()}
        self._initial = self._levels()

    def close(self) -> None:
        if self._req is not None:
            self._req.release()
            self._req = None

    def facts(self) -> dict[str, Any]:
        return {"chip": self.g.chip, "edges": self.edges}

    def poll(self, timeout: float) -> list[Reading]:
        out, self._initial = self._initial, []
        ready, _, _ = select.select([self._req.fd, self.waker.fileno()], [], [], timeout)
        if self.waker.fileno() in ready:
            self.waker.clear()
        if self._req.fd not in ready:
            return out
        for event in self._req.read_edge_events():
            inp = self._offsets.get(event.line_offset)
            if inp is None:
                continue
            self.edges += 1
            active = event.event_type == event.Type.RISING_EDGE  # logical, after active_low
            out.append(Sample(inp, self._meaning(inp, active), event.timestamp_ns / 1e9))
        return out + self._levels()

    def _levels(self) -> list[Reading]:
        from gpiod.line import Value

        t = time.monotonic()
        names = [line for line, _ in self.lines.values()]
        values = self._req.get_values(names)
        return [
            Sample(inp, self._meaning(inp, v == Value.ACTIVE), t)
            for inp, v in zip(self.lines, values, strict=True)
        ]

    def _meaning(self, inp: InputName, closed: bool) -> float:
        return 1.0 if logical(closed, self.lines[inp][1]) else 0.0


def _lines(cfg: BellConfig, g: GpiodInput) -> dict[InputName, tuple[str, bool]]:
    """name -> (line name, normally closed)."""
    out: dict[InputName, tuple[str, bool]] = {"button": (g.button, cfg.normally_closed)}
    if g.tamper:
        out["tamper"] = (g.tamper, cfg.tamper_normally_closed)
    if g.power_fail:
        out["power"] = (g.power_fail, cfg.power_normally_closed)
    return out


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
