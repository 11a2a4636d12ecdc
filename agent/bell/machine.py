"""The bell button's state machine: debounce, activation policy, stuck and flapping, test mode.

Pure logic: time is an argument (monotonic seconds), nothing sleeps, nothing does I/O.
``feed(level, t)`` takes the logical contact level (True = pressed, after the
normally-closed inversion) whenever a sample or an edge arrives; ``tick(t)`` performs the
transitions that time alone causes (debounce settled, hold reached, stuck, windows and
lockouts ending).  Both return the :class:`BellSignal` list of what happened, in order.

Debounce is separate from the policy: a level counts once it stayed put for
``debounce_ms`` (stable-time debounce, so a single spike never makes a press), and the
pressed/released times are those of the edge that started the stable level, so held
durations and hold thresholds are measured from the real press.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent.config import BellConfig
from agent.events import BellKind
from agent.flap import FlapGuard

__all__ = ["BellMachine", "BellSignal", "Debouncer"]

T = TypeVar("T")
EPS = 1e-9  # float slack so that 1.0 + 0.03 counts as reached at t = 1.03
# A flapping episode ends only once its quiet time has passed beyond the float slack: a
# change right at the end (within EPS) extends the episode, whether a tick came just
# before it or not (a late tick must give what a punctual one does).
FLAP_SLACK = 2 * EPS


@dataclass(frozen=True, slots=True)
class BellSignal:
    """One thing that happened to the bell, at monotonic time ``t``."""

    kind: BellKind
    t: float
    inp: str = "button"
    held_ms: int | None = None
    why: str | None = None
    test: bool = False


class Debouncer(Generic[T]):
    """Stable-time debounce: a new value counts once it held for ``period`` seconds."""

    def __init__(self, period: float, initial: T) -> None:
        self.period = period
        self.value = initial
        self._pending: tuple[T, float] | None = None
        self.rejected = 0  # changes that did not last (contact bounce, spikes)

    def deadline(self) -> float | None:
        """When the pending change will count, if one is pending."""
        return None if self._pending is None else self._pending[1] + self.period

    def feed(self, value: T, t: float) -> list[tuple[T, float]]:
        """Accepted changes as (value, edge time); the sample at ``t`` may settle now."""
        out = self.tick(t)
        if self._pending is not None:
            if value == self._pending[0]:
                return out
            self.rejected += 1
            self._pending = None
        if value != self.value:
            self._pending = (value, t)
        return out + self.tick(t)

    def tick(self, t: float) -> list[tuple[T, float]]:
        if self._pending is None or t + EPS < self._pending[1] + self.period:
            return []
        value, since = self._pending
        self._pending = None
        self.value = value
        return [(value, since)]


class BellMachine:
    """The button: pressed / activated / released, held time, stuck, flapping, test window."""

    def __init__(self, cfg: BellConfig, *, debounce_s: float | None = None) -> None:
        self.policy = cfg.policy
        period = cfg.debounce_ms / 1000 if debounce_s is None else debounce_s
        self.debounce = Debouncer(period, False)
        self.down = False
        self.down_since = 0.0
        self.activated_press = False  # this press already activated
        self.stuck = False
        self._hold_at: float | None = None
        self._first_press: float | None = None  # double mode: the first press of a pair
        self.lockout_until = -math.inf
        self.flap = FlapGuard(cfg.policy.flap_changes, cfg.policy.flap_window_s)
        self.test_until: float | None = None
        self.presses = 0
        self.activations = 0
        self.last_activation: float | None = None
        self._out: list[BellSignal] = []

    # ------------------------------------------------------------------ inputs
    def feed(self, level: bool, t: float) -> list[BellSignal]:
        """A sample or edge of the logical level at monotonic time ``t``."""
        self._run_until(t)
        for value, since in self.debounce.feed(level, t):
            self._change(value, since)
        self._run_until(t)
        return self._take()

    def tick(self, t: float) -> list[BellSignal]:
        """Transitions caused by time alone, up to ``t``."""
        self._run_until(t)
        return self._take()

    def start_test(self, t: float, duration_s: float) -> list[BellSignal]:
        """Open (or extend) a test window: signals in it carry ``test=True``."""
        self._run_until(t)
        was = self.test_until is not None
        self.test_until = t + duration_s
        if not was:
            self._emit("test_started", t, why=f"{duration_s:g}s")
        return self._take()

    def end_test(self, t: float) -> list[BellSignal]:
        self._run_until(t)
        if self.test_until is not None:
            self._emit("test_ended", t, why="ended")
            self.test_until = None
        return self._take()

    # ------------------------------------------------------------------ views
    @property
    def flapping(self) -> bool:
        return self.flap.flapping

    @property
    def in_test(self) -> bool:
        return self.test_until is not None

    def deadline(self) -> float | None:
        """The next time ``tick`` has something to do."""
        ready = [r for _, r, _ in self._schedule()]
        return min(ready) if ready else None

    def state(self, t: float) -> str:
        """stuck, active, pressed, lockout or idle."""
        if self.down:
            return "stuck" if self.stuck else "active" if self.activated_press else "pressed"
        return "lockout" if t < self.lockout_until else "idle"

    # ------------------------------------------------------------------ timers
    def _schedule(self) -> list[tuple[float, float, Callable[[float], None]]]:
        """Pending timers as (logical time, time it may fire, action)."""
        pol = self.policy
        # (logical time, slack before it may fire, action)
        timers: list[tuple[float | None, float, Callable[[float], None]]] = [
            (self._hold_at, 0.0, self._hold_reached),
            (self.down_since + pol.stuck_s if self.down and not self.stuck else None, 0.0,
             self._stuck),
            (_plus(self._first_press, pol.double_window_s), 0.0, self._double_expired),
            (self.flap.deadline(), FLAP_SLACK, self._flap_ended),
            (self.test_until, 0.0, self._test_expired),
        ]  # fmt: skip
        out = [(d, d + slack, fn) for d, slack, fn in timers if d is not None]
        settle = self.debounce.deadline()
        if settle is None:
            return out
        # A change is pending since its edge: timers after that edge wait for the debounce,
        # or a release at 2.99 s would lose to a 3 s hold timer while being debounced.
        edge = settle - self.debounce.period
        held = [(d, max(d, settle) if d >= edge else r, fn) for d, r, fn in out]
        return [(edge, settle, self._settle), *held]

    def _run_until(self, t: float) -> None:
        # Fire due timers one at a time in logical order, each at its own time, so a late
        # tick gives the same signals as a punctual one.
        while True:
            due = [x for x in self._schedule() if x[1] <= t + EPS]
            if not due:
                return
            when, _, fn = min(due, key=lambda x: x[0])
            fn(when)

    def _settle(self, when: float) -> None:
        settle = self.debounce.deadline()
        assert settle is not None
        for value, since in self.debounce.tick(settle):
            self._change(value, since)

    def _hold_reached(self, when: float) -> None:
        self._hold_at = None
        if when + EPS < self.lockout_until:
            # Still held when the lockout ends: a duress hold must not be lost to it.
            self._hold_at = self.lockout_until
            return
        self._activate(when)

    def _stuck(self, when: float) -> None:
        self.stuck = True
        self._emit("stuck", when, held_ms=_ms(when - self.down_since))

    def _double_expired(self, when: float) -> None:
        self._first_press = None

    def _flap_ended(self, when: float) -> None:
        n = self.flap.clear(when)
        level = "down" if self.down else "up"
        self._emit("flapping_cleared", when, why=f"{n} changes not reported; button {level}")

    def _test_expired(self, when: float) -> None:
        self._emit("test_ended", when, why="expired")
        self.test_until = None

    # ------------------------------------------------------------------ changes
    def _change(self, level: bool, t: float) -> None:
        started = self.flap.change(t)
        if started is not None:
            self._emit("flapping", t, why=started)
        if level:
            self._press(t)
        else:
            self._release(t)

    def _press(self, t: float) -> None:
        self.down, self.down_since = True, t
        self.activated_press, self.stuck = False, False
        self.presses += 1
        if not self.flapping:  # while flapping the guard counts it instead
            self._emit("pressed", t, why="lockout" if t < self.lockout_until else None)
        mode = self.policy.mode
        if mode == "immediate":
            self._activate(t)
        elif mode == "hold":
            self._hold_at = t + self.policy.hold_s
        elif (
            self._first_press is not None
            and t - self._first_press <= self.policy.double_window_s + EPS
        ):
            self._first_press = None
            self._activate(t)
        else:
            self._first_press = t

    def _release(self, t: float) -> None:
        held = _ms(t - self.down_since)
        self.down, self._hold_at = False, None
        if self.stuck:
            self.stuck = False
            self._emit("stuck_cleared", t, held_ms=held)
        if self.flapping:
            return
        why = None
        if self.policy.mode == "hold" and not self.activated_press:
            why = "short"
        self._emit("released", t, held_ms=held, why=why)

    def _activate(self, t: float) -> None:
        if t + EPS < self.lockout_until:
            return
        self.activated_press = True
        self.lockout_until = t + self.policy.lockout_s
        self.activations += 1
        self.last_activation = t
        self._emit("activated", t)

    # ------------------------------------------------------------------ output
    def _emit(
        self, kind: BellKind, t: float, *, held_ms: int | None = None, why: str | None = None
    ) -> None:
        self._out.append(BellSignal(kind, t, "button", held_ms, why, self.in_test))

    def _take(self) -> list[BellSignal]:
        out, self._out = self._out, []
        return out


def _plus(t: float | None, dt: float) -> float | None:
    return None if t is None else t + dt


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
