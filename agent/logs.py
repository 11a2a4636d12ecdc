"""Logging for a unit nobody watches: one line per event, journald priorities, no floods.

Under systemd (``$JOURNAL_STREAM`` set) each line starts with ``<N>``, the syslog priority
journald reads from stdout; in a terminal the level name is shown instead.  A message
repeated more than a few times a minute is held back and counted, so a stuck input or a
reconnect loop cannot fill the disk.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

__all__ = ["RateLimit", "Throttle", "setup"]

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        super().__init__("%(name)s: %(message)s")
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record).replace("\n", " | ")
        if self.journald:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname:<7} {text}"


class RateLimit(logging.Filter):
    """At most ``burst`` copies of one message template per ``window`` seconds."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        start, count = self._seen.get(key, (now, 0))
        if now - start > self.window:
            if count > self.burst:
                record.msg = f"{record.msg} (and {count - self.burst} more like it held back)"
            start, count = now, 0
        self._seen[key] = (start, count + 1)
        if len(self._seen) > 1000:
            self._seen.clear()
        return count < self.burst


class Throttle:
    """Says whether a repeated condition should be logged again: once per key per ``every_s``.

    For loops that meet the same fault many times a second (a broker down, a full disk, a
    command flood): the caller logs when :meth:`ready` says so, usually with a count.
    """

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._last: dict[str, float] = {}

    def ready(self, key: str = "") -> bool:
        """True the first time ``key`` is seen and then at most once per ``every_s``."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            return False
        if len(self._last) > 256:  # keys come from outside text at worst: stay bounded
            self._last.clear()
        self._last[key] = now
        return True

    def reset(self, key: str = "") -> None:
        """Forget ``key``, so that the next occurrence is logged at once."""
        self._last.pop(key, None)


def setup(level: str = "info") -> None:
    """Configure the root logger once for the agent process."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JournalFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
