"""Supervised loop (end-of-line resistors), tamper, power and link inputs: pure, time as argument.

A supervised loop is read as one analog value scaled to 0..1 (for example the voltage over
the loop with its end-of-line resistor).  Four bands: short (below the alarm band), alarm
(the contact adds or removes its resistor), normal, and open (a cut wire, above normal).
A value must cross a band's edge by ``hysteresis`` to leave it, so a reading that sits on
an edge does not chatter.  The line state is then debounced like the contact.

Every such input is a :class:`Watched` value: debounced, and guarded against flapping
(:mod:`agent.flap`), so a loose tamper contact or a flaky link gives one ``flapping``
and one ``flapping_cleared`` per episode instead of an alarm row per change.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, Generic, Literal, TypeVar

from agent.bell.machine import EPS, FLAP_SLACK, BellSignal, Debouncer
from agent.config import PolicyConfig, SupervisionConfig
from agent.events import BellKind
from agent.flap import FlapGuard

__all__ = ["AuxInput", "LoopClassifier", "LoopState", "SupervisedLoop", "Watched", "flap_guard"]

V = TypeVar("V")

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


def flap_guard(policy: PolicyConfig | None = None) -> FlapGuard:
    """A flap guard with the policy's limits (the button's, used for every input)."""
    p = policy or PolicyConfig()
    return FlapGuard(p.flap_changes, p.flap_window_s)


class Watched(Generic[V]):
    """A debounced discrete input whose changes are reported unless it flaps.

    ``signal(value, t)`` makes the event of a change.  While the input flaps nothing is
    reported; when the episode ends, ``flapping_cleared`` (with ``show`` of the value) and,
    if the value is not the one last reported, the change the centre was not told.
    """

    def __init__(
        self,
        name: str,
        initial: V,
        debounce_s: float,
        *,
        signal: Callable[[V, float], BellSignal],
        show: Callable[[V], str],
        flap: FlapGuard | None = None,
    ) -> None:
        self.name = name
        self.debounce: Debouncer[V] = Debouncer(debounce_s, initial)
        self.flap = flap or flap_guard()
        self.signal, self.show = signal, show
        self.reported = initial  # what the centre was last told

    @property
    def value(self) -> V:
        return self.debounce.value

    def feed(self, value: V, t: float) -> list[BellSignal]:
        return self._advance(self.debounce.feed(value, t), t)

    def tick(self, t: float) -> list[BellSignal]:
        return self._advance(self.debounce.tick(t), t)

    def deadline(self) -> float | None:
        due = [d for d in (self.debounce.deadline(), self._flap_due()) if d is not None]
        return min(due) if due else None

    def _flap_due(self) -> float | None:
        """When a tick may end the episode: past its end by FLAP_SLACK, or later."""
        end = self.flap.deadline()
        if end is None:
            return None
        settle = self._settle_after(end)
        return end + FLAP_SLACK if settle is None else settle

    def _settle_after(self, end: float) -> float | None:
        """When a change still being debounced settles, if it may extend the episode.

        A change whose edge comes before the episode's end may extend it, so the end waits
        for it (a late tick must give what a punctual one does); None when nothing does.
        """
        settle = self.debounce.deadline()
        if settle is None or settle - self.debounce.period > end + EPS:
            return None
        return settle if settle > end + FLAP_SLACK else None

    def _advance(self, changes: list[tuple[V, float]], t: float) -> list[BellSignal]:
        out: list[BellSignal] = []
        for value, since in changes:
            end = self.flap.deadline()
            if end is not None and end + EPS < since:
                out += self._cleared(end)
            started = self.flap.change(since)
            if started is not None:
                out.append(BellSignal("flapping", since, self.name, why=started))
            if not self.flap.flapping:
                out += self._report(value, since)
        end = self.flap.deadline()
        if end is not None and self._settle_after(end) is None and end + FLAP_SLACK <= t + EPS:
            out += self._cleared(end)
        return out

    def _cleared(self, when: float) -> list[BellSignal]:
        n = self.flap.clear(when)
        why = f"{n} changes not reported; now {self.show(self.value)}"
        return [
            BellSignal("flapping_cleared", when, self.name, why=why),
            *self._report(self.value, when),
        ]

    def _report(self, value: V, t: float) -> list[BellSignal]:
        if value == self.reported:
            return []
        self.reported = value
        return [self.signal(value, t)]


class SupervisedLoop:
    """The loop as two debounced facts: button level (alarm band) and line fault."""

    KINDS: ClassVar[dict[LineFault, BellKind]] = {
        "ok": "line_restored",
        "open": "line_open",
        "short": "line_short",
    }

    def __init__(
        self, cfg: SupervisionConfig, debounce_s: float, flap: FlapGuard | None = None
    ) -> None:
        self.classifier = LoopClassifier(cfg)
        self.state: LoopState = "normal"
        self.fault: Watched[LineFault] = Watched(
            "loop", "ok", debounce_s, signal=self._signal, show=lambda v: f"line {v}", flap=flap
        )
        self.value: float | None = None

    @property
    def button(self) -> bool:
        """The bell's level as the loop shows it: pressed only in the alarm band."""
        return self.state == "alarm"

    def feed(self, value: float, t: float) -> list[BellSignal]:
        """A new analog reading; returns line_open / line_short / line_restored signals."""
        settled = self.fault.tick(t)  # a change settling now is told with the state it had
        self.value = value
        self.state = self.classifier.classify(value, self.state)
        fault: LineFault = (
            "open" if self.state == "open" else "short" if self.state == "short" else "ok"
        )
        return settled + self.fault.feed(fault, t)

    def tick(self, t: float) -> list[BellSignal]:
        return self.fault.tick(t)

    def deadline(self) -> float | None:
        return self.fault.deadline()

    @property
    def line(self) -> LineFault:
        return self.fault.value

    def _signal(self, v: LineFault, t: float) -> BellSignal:
        return BellSignal(self.KINDS[v], t, "loop", why=self.state if v == "ok" else v)


class AuxInput(Watched[bool]):
    """A debounced on/off input with an event for each direction (tamper, power fail)."""

    def __init__(
        self,
        name: str,
        debounce_s: float,
        on: BellKind,
        off: BellKind,
        flap: FlapGuard | None = None,
    ) -> None:
        self.on, self.off = on, off
        super().__init__(name, False, debounce_s, signal=self._signal, show=self._show, flap=flap)

    @property
    def active(self) -> bool:
        """As last reported (a flapping contact keeps the state the centre was told)."""
        return self.reported

    def _signal(self, v: bool, t: float) -> BellSignal:
        return BellSignal(self.on if v else self.off, t, self.name)

    def _show(self, v: bool) -> str:
        return self.on if v else self.off
