"""Flap suppression for one input: a chattering contact or link gives a bounded number of events.

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

__all__ = ["MAX_QUIET_S", "FlapGuard"]

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
