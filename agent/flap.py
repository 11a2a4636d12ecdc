"""Flap suppression for one input: a chattering contact or link gives a bounded number of events.

Used by the bell's inputs (through :class:`agent.bell.supervision.Watched`, which adds the
debounce), a camera's ``lost``/``restored`` and the agent's own faults (``event/system``),
the last two through :class:`FlapFilter`.

Pure: time is an argument.  Every accepted change of an input is counted; ``changes``
changes within ``window_s`` start an episode (one ``flapping``), during which the changes
are counted, not reported, until the input has been quiet for the episode's quiet time
(one ``flapping_cleared`` with the count).  An episode that starts again soon after the
previous one ended (within that one's quiet time) needs twice as long a quiet time, up to
``max_quiet_s``, so a contact that chatters in bursts cannot write an episode every few
seconds: per input, at most a few dozen events an hour, however it chatters.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["MAX_QUIET_S", "FlapFilter", "FlapGuard", "Told", "show_told"]

MAX_QUIET_S = 900.0  # at worst one episode per quarter of an hour per input, once it escalated


class FlapGuard:
    """Counts one input's changes; says when an episode starts and when it may end."""

    def __init__(self, changes: int, window_s: float, max_quiet_s: float = MAX_QUIET_S) -> None:
        self.changes = changes
        self.window_s = window_s
        self.max_quiet_s = max(max_quiet_s, window_s)
        self.flapping = False
        self.suppressed = 0  # changes not reported in the current episode
        self.episodes = 0
        self.total_suppressed = 0
        self.quiet_s = window_s  # the quiet time that ends the current (or last) episode
        self._times: deque[float] = deque()
        self._last = -math.inf
        self._probation_until = -math.inf

    def change(self, t: float) -> str | None:
        """Count a change at ``t``; the ``why`` of an episode that starts with it, if one does.

        While ``flapping`` is true afterwards, the change is not to be reported.
        """
        self._last = t
        times = self._times
        times.append(t)
        while times and (times[0] < t - self.window_s or len(times) > self.changes):
            times.popleft()
        if self.flapping:
            self.suppressed += 1
            return None
        if len(times) < self.changes:
            return None
        self.flapping, self.suppressed = True, 1
        self.episodes += 1
        again = t < self._probation_until
        self.quiet_s = min(self.quiet_s * 2, self.max_quiet_s) if again else self.window_s
        why = f"{len(times)} changes in {self.window_s:g}s"
        return f"{why}; again, {self.quiet_s:g}s quiet ends it" if again else why

    def deadline(self) -> float | None:
        """When the episode ends if nothing changes meanwhile."""
        return self._last + self.quiet_s if self.flapping else None

    def clear(self, when: float) -> int:
        """End the episode at ``when``; returns how many changes it did not report."""
        n, self.suppressed = self.suppressed, 0
        self.flapping = False
        self.total_suppressed += n
        self._probation_until = when + self.quiet_s
        self._times.clear()
        return n

    def facts(self) -> dict[str, int | bool]:
        return {
            "flapping": self.flapping,
            "episodes": self.episodes,
            "suppressed": self.total_suppressed + self.suppressed,
        }


@dataclass(frozen=True)
class Told:
    """One thing to report: a source's own change, or ``flapping`` / ``flapping_cleared``."""

    ev: str
    why: str | None
    t: float
    data: dict[str, Any] | None = None


class FlapFilter:
    """The changes of one source, each reported unless the source flaps.

    The bell's rules (:class:`agent.bell.supervision.Watched`) without the debounce: every
    change of ``state`` counts on the guard; the change that starts an episode gives
    ``flapping`` and nothing more is reported until the episode ends; then
    ``flapping_cleared`` (how many changes were not reported, and the state now) and, when
    the state is not the one last reported, that change after all.  Pure: time is an
    argument (``tick`` ends an episode whose quiet time is over); not thread-safe.
    """

    def __init__(
        self, guard: FlapGuard, state: str, show: Callable[[Told], str] | None = None
    ) -> None:
        self.guard = guard
        self.state = state  # the source's state now
        self.reported = state  # as the centre was last told
        self._show = show or (lambda told: told.ev)
        self._latest: Told | None = None  # the change that made ``state``

    def change(self, state: str, told: Told) -> list[Told]:
        """The source is now ``state`` (a repeat is no change); ``told`` says it."""
        if state == self.state:
            return []
        end = self.guard.deadline()
        out = self._cleared(end) if end is not None and end < told.t else []
        self.state, self._latest = state, told
        started = self.guard.change(told.t)
        if started is not None:
            out.append(Told("flapping", started, told.t))
        return out if self.guard.flapping else out + self._report(told.t)

    def tick(self, t: float) -> list[Told]:
        """``flapping_cleared`` (and the state the centre lacks) once the quiet time is over."""
        end = self.guard.deadline()
        return self._cleared(end) if end is not None and end <= t else []

    def deadline(self) -> float | None:
        return self.guard.deadline()

    def withheld(self, state: str) -> None:
        """The report just made was not sent: as far as the centre knows the source is still
        ``state``, and it is that until its next change (which is then reported)."""
        self.state = self.reported = state

    def _cleared(self, when: float) -> list[Told]:
        n = self.guard.clear(when)
        now = self._show(self._latest) if self._latest is not None else self.state
        why = f"{n} changes not reported; now {now}"
        return [Told("flapping_cleared", why, when), *self._report(when)]

    def _report(self, t: float) -> list[Told]:
        if self.state == self.reported or self._latest is None:
            return []
        self.reported = self.state
        return [replace(self._latest, t=t)]


def show_told(told: Told) -> str:
    """``lost (why)``: how a ``flapping_cleared`` names the state of a source with reasons."""
    return f"{told.ev} ({told.why})" if told.why else told.ev
