"""What the agent asks of its vision process, and the "vision-tx" worker that sends it.

The bell and command threads only ever queue here (bounded, never blocking on the child);
"vision-tx" sends each request to whichever child is current.  An arm/disarm is kept as an
:class:`Override` on the parent's clock and converted to a remaining duration at the moment
it is sent, so that time spent in the queue (or waiting for a restarted child) counts.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.vision.launch import ChildProcess
from agent.vision.protocol import LookoutCancel, LookoutRequest, RuleRequest, SnapRequest, Stop
from agent.worker import Worker

__all__ = ["POLL_S", "TX_MAX", "Override", "Queued", "Sender"]

log = logging.getLogger(__name__)

TX_MAX = 32  # requests waiting for the child
POLL_S = 0.5


@dataclass(frozen=True)
class Override:
    """An arm/disarm in force; ``until`` on this process's clock, sent as a duration."""

    name: str
    armed: bool
    until: float | None

    def request(self) -> RuleRequest:
        # Converted at the last moment: the time spent in the queue counts.
        left = None if self.until is None else self.until - time.monotonic()
        return RuleRequest(name=self.name, armed=self.armed, remaining_s=left)


Queued = SnapRequest | Override | LookoutRequest | LookoutCancel


class Sender(Worker):
    """ "vision-tx": requests from a bounded queue to whichever child is current."""

    def __init__(self, child: Callable[[], ChildProcess | None]) -> None:
        super().__init__("vision-tx")
        self.queue: queue.Queue[Queued | Stop] = queue.Queue(maxsize=TX_MAX)
        self._current = child

    def put(self, item: Queued) -> bool:
        """Queue ``item``; False (logged) when :data:`TX_MAX` requests already wait."""
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            what = getattr(item, "t", "rule")
            log.warning("vision: %s request refused, %d already waiting", what, TX_MAX)
            return False
        return True

    def request_stop(self) -> None:
        # "stop" first: queued before the event is set, it is sent before the loop ends.
        # When vision-tx is stuck on a hung child, the owner's kill of the child frees it.
        with contextlib.suppress(queue.Full):
            self.queue.put(Stop(), timeout=0.2)
        super().request_stop()

    def _run(self) -> None:
        while True:
            self.progress()
            try:
                item = self.queue.get(timeout=POLL_S)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            msg = item.request() if isinstance(item, Override) else item
            child = self._current()
            if child is not None:
                child.send(msg)  # no child: a snapshot is moot, overrides get replayed
            if isinstance(msg, Stop):
                return

    def _crashed(self, exc: Exception) -> None:
        log.error(
            "vision-tx crashed; requests no longer reach the vision process: %s",
            exc,
            exc_info=exc,
        )
