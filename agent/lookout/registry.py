"""The lookouts in force on a pole: what the agent's process keeps to answer and replay.

Light on purpose (no numpy, no OpenCV): the agent's own process holds this registry to
answer a ``lookout`` command and to hand the lookouts to a restarted vision process; the
matching itself (:mod:`agent.lookout.active`) runs where the records are, in vision.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.control.lookout import LookoutArgs
from agent.control.registry import Signer

__all__ = ["Active", "Lookouts"]


@dataclass
class Active:
    """One lookout in force: what it asks, until when (monotonic), who signed it."""

    spec: LookoutArgs
    until: float
    signer: Signer
    req: str
    site: bool = False
    looked_back: bool = False  # live matching starts once the look-back has run
    sent: int = 0
    # (cam, tid, first seen ms) -> score
    reported: dict[tuple[str, int, int], float] = field(default_factory=dict)


class Lookouts:
    """The lookouts in force, at most ``max_active``; thread-safe."""

    def __init__(self, max_active: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_active = max_active
        self._clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, Active] = {}

    def add(
        self, spec: LookoutArgs, remaining_s: float, signer: Signer, req: str, site: bool = False
    ) -> Active | str:
        """Take a lookout on (a known id is renewed); why not, when the table is full."""
        with self._lock:
            self._expire(self._clock())
            old = self._by_id.get(spec.id)
            if old is None and len(self._by_id) >= self.max_active:
                return (
                    f"already {len(self._by_id)} lookouts active (lookout.max_active); "
                    "cancel one first"
                )
            active = Active(spec, self._clock() + remaining_s, signer, req, site)
            if old is not None and old.spec.model_dump() == spec.model_dump():
                active.sent, active.reported = old.sent, old.reported  # renewed: same tracks
                active.looked_back = old.looked_back
            self._by_id[spec.id] = active
            return active

    def cancel(self, lookout_id: str) -> Active | None:
        with self._lock:
            return self._by_id.pop(lookout_id, None)

    def expire(self) -> list[Active]:
        """Remove and return the lookouts whose time is up."""
        with self._lock:
            return self._expire(self._clock())

    def _expire(self, now: float) -> list[Active]:
        gone = [a for a in self._by_id.values() if a.until <= now]
        for a in gone:
            del self._by_id[a.spec.id]
        return gone

    def get(self, lookout_id: str) -> Active | None:
        with self._lock:
            return self._by_id.get(lookout_id)

    def active(self) -> list[Active]:
        with self._lock:
            return list(self._by_id.values())

    def summary(self, *, sent: bool = True) -> list[dict[str, Any]]:
        """[{id, left_s, sent}] for the heartbeat and the command's answer (``sent`` left out
        where it is not known: the agent's mirror of the vision process's table)."""
        now = self._clock()
        out = []
        for a in self.active():
            one: dict[str, Any] = {"id": a.spec.id, "left_s": round(max(0.0, a.until - now))}
            if sent:
                one["sent"] = a.sent
            out.append(one)
        return out
