"""The bell's hardware opened with retry: a device that cannot be opened is a fault, not an exit.

A USB RS-485 adapter renumbered after a brown-out, a GPIO line held by another process, a
simulator socket in use: the bell thread reports ``comm_fault`` (``why: open_failed: ...``
naming the port or line), switches nothing it cannot, and tries again after 1 s, 2 s, 4 s
... at most 30 s apart while its loop keeps turning; ``comm_restored`` when it opens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from agent.bell.inputs import CommChange
from agent.logs import Throttle

__all__ = ["FIRST_RETRY_S", "MAX_RETRY_S", "Backoff", "Device"]

log = logging.getLogger(__name__)

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0


class Backoff:
    """Delays that double from ``first`` up to ``cap``; ``reset`` after a success."""

    def __init__(self, first: float = FIRST_RETRY_S, cap: float = MAX_RETRY_S) -> None:
        self.first, self.cap = first, cap
        self.delay = first

    def next(self) -> float:
        delay, self.delay = self.delay, min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class Device:
    """One piece of bell hardware (the input backend, the output driver) and whether it is open.

    ``link`` names it in :class:`CommChange` (None: the input backend).  Owned by the bell
    thread, except for the first :meth:`try_open`, made by ``start()`` before the thread runs.
    """

    def __init__(
        self,
        name: str,
        opener: Callable[[], None],
        *,
        link: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
    ) -> None:
        self.name, self.opener, self.link, self.clock = name, opener, link, clock
        self.backoff = backoff or Backoff()
        self.is_open = False
        self.retry_at = 0.0
        self.attempts = 0
        self.error: str | None = None
        self._log = Throttle(300.0, clock)

    def due(self) -> float | None:
        """When the next attempt to open is due; None while open."""
        return None if self.is_open else self.retry_at

    def try_open(self) -> CommChange | None:
        """Open if due. A fault on the first failure, ``ok`` on success after failures."""
        now = self.clock()
        if self.is_open or now < self.retry_at:
            return None
        self.attempts += 1
        try:
            self.opener()
        except Exception as exc:  # noqa: BLE001 - any failure to open is a fault to retry
            return self._failed(now, "open_failed", exc)
        self.is_open = True
        self.backoff.reset()
        if self.error is None:
            return None
        log.warning("bell: %s opened after %d attempts", self.name, self.attempts)
        self.error = None
        return CommChange(True, now, f"opened after {self.attempts} attempts", self.link)

    def open_now(self) -> None:
        """Open at once or raise: a reload tries a new device before the handover."""
        self.attempts += 1
        self.opener()
        self.is_open = True

    def lost(self, exc: BaseException) -> CommChange | None:
        """The open device failed in use (not an ordinary poll failure): reopen with backoff."""
        self.is_open = False
        self.attempts = 0
        return self._failed(self.clock(), "failed", exc)

    def _failed(self, now: float, what: str, exc: BaseException) -> CommChange | None:
        first = self.error is None
        self.error = f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}"
        delay = self.backoff.next()
        self.retry_at = now + delay
        if first or self._log.ready():
            log.error("bell: %s %s; retrying in %.0f s", self.name, self.error, delay)
        return CommChange(False, now, self.error, self.link) if first else None

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"open": self.is_open}
        if self.error is not None:
            out.update(error=self.error, attempts=self.attempts)
        return out
