"""Supervised loop (end-of-line resistors), tamper and power inputs: pure, time as argument.

A supervised loop is read as one analog value scaled to 0..1 (for example the voltage over
the loop with its end-of-line resistor).  Four bands: short (below the alarm band), alarm
(the contact adds or removes its resistor), normal, and open (a cut wire, above normal).
A value must cross a band's edge by ``hysteresis`` to leave it, so a reading that sits on
an edge does not chatter.  The line state is then debounced like the contact.
"""

from __future__ import annotations

import math
from typing import Literal

from agent.bell.machine import BellSignal, Debouncer
from agent.config import SupervisionConfig
from agent.events import BellKind

__all__ = ["AuxInput", "LoopClassifier", "LoopState", "SupervisedLoop"]

LoopState = Literal["normal", "alarm", "open", "short"]
LineFault = Literal["ok", "open", "short"]


class LoopClassifier:
    """Analog loop value (0..1) -> normal / alarm / open / short, with hysteresis."""

    def __init__(self, cfg: SupervisionConfig) -> None:
        self.cfg = cfg
        a, n = cfg.alarm, cfg.normal
        self.bands: dict[LoopState, tuple[float, float]] = {
            "short": (-math.inf, a[0]),
            "alarm": (a[0], a[1]),
            "normal": (n[0], n[1]),
            "open": (n[1], math.inf),
        }

    def raw(self, value: float) -> LoopState:
        """The band of ``value`` without hysteresis; a gap between bands counts as normal."""
        a, n = self.cfg.alarm, self.cfg.normal
        if value < a[0]:
            return "short"
        if value < a[1]:
            return "alarm"
        if value <= n[1]:
            return "normal"
        return "open"

    def classify(self, value: float, current: LoopState) -> LoopState:
        """The new state given the present one: stay unless ``value`` left its band by h."""
        if math.isnan(value):
            return "open"  # an input that reads nothing is treated as a broken loop
        lo, hi = self.bands[current]
        h = self.cfg.hysteresis
        if current == "normal":
            lo = min(lo, self.cfg.alarm[1])  # the gap between alarm and normal is normal
        if lo - h <= value <= hi + h:
            return current
        return self.raw(value)


class SupervisedLoop:
    """The loop as two debounced facts: button level (alarm band) and line fault."""

    def __init__(self, cfg: SupervisionConfig, debounce_s: float) -> None:
        self.classifier = LoopClassifier(cfg)
        self.state: LoopState = "normal"
        self.fault: Debouncer[LineFault] = Debouncer(debounce_s, "ok")
        self.value: float | None = None

    @property
    def button(self) -> bool:
        """The bell's level as the loop shows it: pressed only in the alarm band."""
        return self.state == "alarm"

    def feed(self, value: float, t: float) -> list[BellSignal]:
        """A new analog reading; returns line_open / line_short / line_restored signals."""
        self.value = value
        self.state = self.classifier.classify(value, self.state)
        fault: LineFault = (
            "open" if self.state == "open" else "short" if self.state == "short" else "ok"
        )
        return self._signals(self.fault.feed(fault, t))

    def tick(self, t: float) -> list[BellSignal]:
        return self._signals(self.fault.tick(t))

    def deadline(self) -> float | None:
        return self.fault.deadline()

    @property
    def line(self) -> LineFault:
        return self.fault.value

    def _signals(self, changes: list[tuple[LineFault, float]]) -> list[BellSignal]:
        kinds: dict[LineFault, BellKind] = {
            "ok": "line_restored",
            "open": "line_open",
            "short": "line_short",
        }
        return [
            BellSignal(kinds[v], t, "loop", why=self.state if v == "ok" else v) for v, t in changes
        ]


class AuxInput:
    """A debounced on/off input with an event for each direction (tamper, power fail)."""

    def __init__(self, name: str, debounce_s: float, on: BellKind, off: BellKind) -> None:
        self.name = name
        self.on, self.off = on, off
        self.debounce = Debouncer(debounce_s, False)

    @property
    def active(self) -> bool:
        return self.debounce.value

    def feed(self, level: bool, t: float) -> list[BellSignal]:
        return self._signals(self.debounce.feed(level, t))

    def tick(self, t: float) -> list[BellSignal]:
        return self._signals(self.debounce.tick(t))

    def deadline(self) -> float | None:
        return self.debounce.deadline()

    def _signals(self, changes: list[tuple[bool, float]]) -> list[BellSignal]:
        return [BellSignal(self.on if v else self.off, t, self.name) for v, t in changes]
