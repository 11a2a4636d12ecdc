"""Where and when the link connects next: the broker list and the reconnect backoff.

The link stays on the broker that works and moves to the next one in ``mqtt.hosts`` after a
failed attempt.  The backoff grows with every failure and with every connection that did
not stay up for ``stable_after_s``: a reset on every CONNACK would let two units with the
same client id (a cloned SD card) throw each other off about once a second for ever.
"""

from __future__ import annotations

import random
from typing import Any

from agent.config.mqtt import Broker

__all__ = ["Backoff", "HostRing", "Outage"]


class HostRing:
    """The brokers in order; ``current`` until ``advance()`` moves to the next."""

    def __init__(self, brokers: tuple[Broker, ...]) -> None:
        if not brokers:
            raise ValueError("at least one broker is needed")
        self._brokers = brokers
        self._i = 0

    @property
    def current(self) -> Broker:
        return self._brokers[self._i]

    def advance(self) -> bool:
        """Move to the next broker; True when that is another one (more than one broker)."""
        self._i = (self._i + 1) % len(self._brokers)
        return len(self._brokers) > 1

    def __len__(self) -> int:
        return len(self._brokers)


class Backoff:
    """Exponential backoff with equal jitter, reset only by a connection that stayed up."""

    def __init__(self, min_s: float, max_s: float, stable_after_s: float) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.stable_after_s = stable_after_s
        self.failures = 0
        self.next_at = 0.0
        self._up_since: float | None = None

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def retry_now(self) -> None:
        self.next_at = 0.0

    def failed(self, now: float, *, longest: bool = False) -> float:
        """Count a failure and schedule the next attempt; returns the delay in seconds."""
        self._up_since = None
        self.failures += 1
        exp = min(self.failures, 20)
        base = self.max_s if longest else min(self.max_s, self.min_s * 2**exp)
        delay = base * random.uniform(0.5, 1.0)  # "equal jitter": poles don't reconnect in step
        self.next_at = now + delay
        return delay

    def up(self, now: float) -> None:
        """A connection was accepted: the backoff resets only if it stays up."""
        self._up_since = now

    def uptime(self, now: float) -> float | None:
        """Seconds the current connection has been up; None when down."""
        return None if self._up_since is None else now - self._up_since

    def tick(self, now: float) -> None:
        up = self.uptime(now)
        if up is not None and up >= self.stable_after_s:
            self.failures = 0


class Outage:
    """How long the link has been without a connection, and where it connected in the end.

    The heartbeat's ``link.down_s``, ``attempts``, ``failovers``, ``failover_from``; the
    agent's fault watch (``agent.faults``) turns them into ``event/system`` link events.
    """

    def __init__(self, first: str, now: float) -> None:
        self.since: float | None = now  # down since (monotonic); None while connected
        self.attempts = 0  # failed attempts since the last connection
        self.failovers = 0  # connections to another broker than the one before
        self.failover_from: str | None = None
        self._last = first  # the broker of the last connection (the first one before any)

    def failed(self, now: float, *, attempt: bool = True) -> None:
        """Down from ``now`` on; ``attempt`` False for an established connection that
        dropped (no attempt has failed yet: the fault watch counts attempts)."""
        if attempt:
            self.attempts += 1
        if self.since is None:
            self.since = now

    def connected(self, broker: str) -> None:
        self.since, self.attempts = None, 0
        if broker != self._last:
            self.failovers += 1
            self.failover_from = self._last
        self._last = broker

    def facts(self, now: float) -> dict[str, Any]:
        down = None if self.since is None else round(now - self.since, 1)
        return {
            "down_s": down,
            "attempts": self.attempts,
            "failovers": self.failovers,
            "failover_from": self.failover_from,
        }
