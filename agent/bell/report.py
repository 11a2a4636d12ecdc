"""The bell's reports, carried to the outbox by their own thread so the bell never waits on disk.

The bell thread switches its outputs, then hands each event to :meth:`Reporter.put` (never
blocks) and the retained state to :meth:`Reporter.put_state` (only the newest counts).  The
``bell-report`` thread writes them to the outbox in order: events first, then the state.
When the outbox refuses (``emit`` returns False, or anything raises: a read-only card, a
damaged spool, a bug) the events stay in memory, in order, and delivery is tried again every
``retry_s``.  Memory is bounded: past ``capacity`` events the oldest event that is not an
alarm (pressed, activated, released) is dropped first, then the oldest alarm; every drop is
counted in :meth:`facts`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from agent.events import BellEvent
from agent.logs import Throttle
from agent.outbox import Outbox
from agent.worker import Worker

__all__ = ["ALARM_KINDS", "CAPACITY", "Reporter"]

log = logging.getLogger(__name__)

CAPACITY = 1000
RETRY_S = 1.0
ALARM_KINDS = frozenset({"pressed", "activated", "released"})  # kept the longest

State = tuple[str, int, dict[str, Any]]


class Reporter(Worker):
    """The ``bell-report`` thread and the bounded memory queue in front of the outbox."""

    def __init__(
        self, outbox: Outbox, *, capacity: int = CAPACITY, retry_s: float = RETRY_S
    ) -> None:
        super().__init__("bell-report")
        self.outbox = outbox
        self.capacity = capacity
        self.retry_s = retry_s
        self._cond = threading.Condition()
        self._queue: deque[BellEvent] = deque()
        self._state: State | None = None
        self._retry_at = 0.0
        self._log = Throttle(60.0)
        self.delivered = 0
        self.refused = 0  # delivery attempts the outbox refused
        self.overflowed = 0
        self.overflowed_alarms = 0
        self.failing = False

    # ------------------------------------------------------------------ the bell's side
    def put(self, event: BellEvent) -> None:
        """Queue an event for the outbox; never blocks (drops the least urgent when full)."""
        with self._cond:
            if len(self._queue) >= self.capacity:
                self._drop_one()
            self._queue.append(event)
            self._cond.notify()

    def put_state(self, state: str, since: int, detail: dict[str, Any]) -> None:
        """The retained ``state/bell`` to write; replaces one not yet written."""
        with self._cond:
            self._state = (state, since, detail)
            self._cond.notify()

    def facts(self) -> dict[str, Any]:
        with self._cond:
            kept = len(self._queue)
        return {
            "delivered": self.delivered,
            "refused": self.refused,
            "kept": kept,
            "overflowed": self.overflowed,
            "overflowed_alarms": self.overflowed_alarms,
            "outbox": "failing" if self.failing else "ok",
        }

    def stop(self, timeout: float) -> bool:
        """Deliver what is queued (at most ``timeout`` seconds), then end the thread."""
        if super().stop(timeout):
            return True
        log.error("bell: the outbox did not take the last %d bell events", len(self._queue))
        return False

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _crashed(self, exc: Exception) -> None:
        log.error(
            "bell-report crashed; bell events stay in memory (outputs unaffected): %s",
            exc,
            exc_info=exc,
        )

    def _counts(self) -> tuple[int, int]:
        return len(self._queue), self.overflowed

    def _drop_one(self) -> None:
        for i, ev in enumerate(self._queue):
            if ev.ev not in ALARM_KINDS:
                del self._queue[i]
                break
        else:
            self._queue.popleft()
            self.overflowed_alarms += 1
        self.overflowed += 1
        if self._log.ready("overflow"):
            log.error("bell: %d events in memory; dropped one (%d so far)", *self._counts())

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            self.progress()
            with self._cond:
                item = self._next()
                if item is None:
                    return
            ok = self._deliver(item)
            with self._cond:
                if isinstance(item, BellEvent):
                    if ok and self._queue and self._queue[0] is item:
                        self._queue.popleft()  # (an overflow may have dropped it meanwhile)
                elif not ok and self._state is None:
                    self._state = item
                if not ok:
                    if self._stop.is_set():
                        return  # the outbox refuses: what is left is lost, and logged by stop
                    self._retry_at = time.monotonic() + self.retry_s

    def _next(self) -> BellEvent | State | None:
        """The next thing to deliver (an event stays queued until delivered); None to end."""
        while True:
            wait: float | None = self._retry_at - time.monotonic()
            stopping = self._stop.is_set()
            if stopping or (wait is not None and wait <= 0):
                if self._queue:
                    return self._queue[0]
                if self._state is not None:
                    state, self._state = self._state, None
                    return state
                if stopping:
                    return None
                wait = None  # nothing to do: until woken
            self._cond.wait(wait)

    def _deliver(self, item: BellEvent | State) -> bool:
        try:
            if isinstance(item, BellEvent):
                ok = self.outbox.emit(item)
            else:
                self.outbox.state("bell", *item)
                ok = True
        except Exception as exc:  # noqa: BLE001 - whatever the spool does, the bell keeps its events
            ok = False
            why = f"{type(exc).__name__}: {exc}"
        else:
            why = "refused"
        if ok:
            self.delivered += isinstance(item, BellEvent)
            if self.failing:
                self.failing = False
                log.warning("bell: the outbox takes events again")
            return True
        self.refused += 1
        self.failing = True
        if self._log.ready("refused"):
            log.error(
                "bell: the outbox failed (%s); %d events kept in memory", why, len(self._queue)
            )
        return False
