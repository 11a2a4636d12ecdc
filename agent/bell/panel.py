"""Everything the bell thread decides, without I/O: readings in, signals and states out.

It combines the button machine, the supervised loop, tamper and power inputs, the link
state of the input hardware, presses injected by a command (``bell-test``), and the
strobe/siren timer.  Time is an argument, so whole scenarios are table-tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from agent.bell.inputs import CommChange, Reading, Sample
from agent.bell.machine import BellMachine, BellSignal
from agent.bell.outputs import OutputTimer
from agent.bell.supervision import AuxInput, SupervisedLoop, Watched, flap_guard
from agent.config import BellConfig
from agent.events import BellKind

__all__ = ["BellPanel"]


class BellPanel:
    def __init__(self, cfg: BellConfig) -> None:
        debounce, pol = cfg.debounce_ms / 1000, cfg.policy
        self.policy = pol
        self.machine = BellMachine(cfg)
        self.loop = (
            SupervisedLoop(cfg.supervision, debounce, flap_guard(pol))
            if cfg.supervision.enabled
            else None
        )
        self.aux = {
            "tamper": AuxInput("tamper", debounce, "tamper", "tamper_cleared", flap_guard(pol)),
            "power": AuxInput("power", debounce, "power_fail", "power_restored", flap_guard(pol)),
        }
        self.outputs = OutputTimer(cfg.outputs)
        self.comm_name = cfg.backend
        # Links to the hardware (the input backend, the output driver): True = working.
        self.links: dict[str, Watched[bool]] = {}
        self._link_why: dict[str, str] = {}
        self._real = False  # the button as the hardware shows it
        self._injected_until: float | None = None  # a press injected by a command

    # ------------------------------------------------------------------ inputs
    def feed(self, reading: Reading) -> list[BellSignal]:
        """One reading from the backend."""
        if isinstance(reading, CommChange):
            return self._comm(reading)
        return self._sample(reading)

    def _sample(self, s: Sample) -> list[BellSignal]:
        if s.inp in ("tamper", "power"):
            return self._done(self.aux[s.inp].feed(bool(s.value), s.t), s.t)
        if s.inp == "loop":
            if self.loop is None:
                return self.tick(s.t)
            out = self.loop.feed(s.value, s.t)
            self._real = self.loop.button
        else:
            out = []
            self._real = bool(s.value)
        return self._done(out + self.machine.feed(self._level(s.t), s.t), s.t)

    def _comm(self, c: CommChange) -> list[BellSignal]:
        name = c.link or self.comm_name
        link = self.links.get(name)
        if link is None:
            link = self.links[name] = Watched(
                name,
                True,
                0.0,
                signal=self._link_signal(name),
                show=_show_link,
                flap=flap_guard(self.policy),
            )
        self._link_why[name] = c.why
        return self._done(link.feed(c.ok, c.t), c.t)

    def _link_signal(self, name: str) -> Callable[[bool, float], BellSignal]:
        def signal(ok: bool, t: float) -> BellSignal:
            kind: BellKind = "comm_restored" if ok else "comm_fault"
            return BellSignal(kind, t, name, why=self._link_why.get(name))

        return signal

    @property
    def comm_ok(self) -> bool:
        """The input backend's link, as last reported."""
        link = self.links.get(self.comm_name)
        return link is None or link.reported

    def inject_press(self, t: float, hold_s: float) -> list[BellSignal]:
        """A press made by a command: the button reads pressed for ``hold_s`` seconds."""
        self._injected_until = t + hold_s
        return self._done(self.machine.feed(self._level(t), t), t)

    def acknowledge(self, t: float) -> list[BellSignal]:
        return self._done(self.outputs.acknowledge(t), t)

    def start_test(self, t: float, duration_s: float) -> list[BellSignal]:
        return self._done(self.machine.start_test(t, duration_s), t)

    def end_test(self, t: float) -> list[BellSignal]:
        return self._done(self.machine.end_test(t), t)

    def tick(self, t: float) -> list[BellSignal]:
        out: list[BellSignal] = []
        if self._injected_until is not None and t >= self._injected_until:
            end, self._injected_until = self._injected_until, None
            out += self.machine.feed(self._level(end), end)
        for watched in self._watched():
            out += watched.tick(t)
        if self.loop is not None:
            out += self.loop.tick(t)
        return self._done(out, t)

    def deadline(self) -> float | None:
        due = [
            self.machine.deadline(),
            self.outputs.deadline(),
            self._injected_until,
            self.loop.deadline() if self.loop else None,
            *(w.deadline() for w in self._watched()),
        ]
        times = [d for d in due if d is not None]
        return min(times) if times else None

    def _watched(self) -> list[Watched[bool]]:
        return [*self.aux.values(), *self.links.values()]

    def _level(self, t: float) -> bool:
        injected = self._injected_until is not None and t < self._injected_until
        return self._real or injected

    def _done(self, out: list[BellSignal], t: float) -> list[BellSignal]:
        out = out + self.machine.tick(t)
        if any(s.kind == "activated" for s in out):
            self.outputs.activate(max(s.t for s in out if s.kind == "activated"))
        out += self.outputs.tick(t)
        out.sort(key=lambda s: s.t)  # several sources: report in the order things happened
        test = self.machine.in_test
        return [dataclasses.replace(s, test=True) if test and not s.test else s for s in out]

    # ------------------------------------------------------------------ views
    def faults(self) -> list[str]:
        """Faults as last reported: a flapping input shows ``flapping_<input>``, not its noise."""
        m, out = self.machine, []
        if m.stuck:
            out.append("stuck")
        if m.flapping:
            out.append("flapping")
        if self.loop is not None:
            if self.loop.fault.reported != "ok":
                out.append(f"line_{self.loop.fault.reported}")
            if self.loop.fault.flap.flapping:
                out.append("flapping_loop")
        for name, link in self.links.items():
            if not link.reported:
                out.append("comm" if name == self.comm_name else f"comm_{name}")
        out += [name for name, aux in self.aux.items() if aux.active]
        return out + [f"flapping_{w.name}" for w in self._watched() if w.flap.flapping]

    def flaps(self) -> dict[str, dict[str, int | bool]]:
        """Flap counts per input (heartbeat)."""
        guards = {"button": self.machine.flap, **{w.name: w.flap for w in self._watched()}}
        if self.loop is not None:
            guards["loop"] = self.loop.fault.flap
        return {name: g.facts() for name, g in guards.items()}

    def status(self, t: float) -> tuple[str, dict[str, Any]]:
        """Retained state: active, pressed, fault, test or idle, with its detail.

        While the button flaps, its noise does not change the state (no row per bounce).
        """
        m, faults = self.machine, self.faults()
        button = "flapping" if m.flapping and not m.stuck else m.state(t)
        if self.outputs.on or button in ("active", "stuck"):
            state = "active"
        elif m.down and not m.flapping:
            state = "pressed"
        elif faults:
            state = "fault"
        elif m.in_test:
            state = "test"
        else:
            state = "idle"
        detail: dict[str, Any] = {
            "button": button,
            "outputs": self.outputs.on,
            "test": m.in_test,
            "faults": faults,
        }
        if self.loop is not None:
            detail["loop"] = "flapping" if m.flapping else self.loop.state
        return state, detail


def _show_link(ok: bool) -> str:
    return "link ok" if ok else "link down"
