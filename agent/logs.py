"""Logging for a unit nobody watches: one line per event, journald priorities, no floods.

Under systemd (``$JOURNAL_STREAM`` set) each line starts with ``<N>``, the syslog priority
journald reads from stdout; in a terminal the level name is shown instead.  A message
repeated more than a few times a minute is held back and counted, so a stuck input or a
reconnect loop cannot fill the disk.

Logging never blocks the thread that logs (the bell's above all): records go into a
bounded queue, and one thread, ``log-writer``, writes them to stdout.  When journald
stalls and the queue is full, records are dropped and counted (:func:`stats`), and the
writer says how many when it can write again.  Call :func:`shutdown` at exit to flush.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["QUEUE_SIZE", "RateLimit", "Throttle", "setup", "shutdown", "stats"]

QUEUE_SIZE = 10_000

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


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """Puts records on a bounded queue; never waits: a full queue drops and counts."""

    def __init__(self, q: queue.Queue[Any]) -> None:
        super().__init__(q)
        self.dropped = 0
        self._lock_dropped = threading.Lock()

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            with self._lock_dropped:
                self.dropped += 1


class _Writer(logging.Handler):
    """In the ``log-writer`` thread: says how many records were dropped, then writes."""

    def __init__(self, out: logging.Handler, source: DroppingQueueHandler) -> None:
        super().__init__()
        self.out, self.source = out, source
        self.reported = 0

    def handle(self, record: logging.LogRecord) -> bool:
        dropped = self.source.dropped
        if dropped > self.reported:
            note = logging.LogRecord(
                "agent.logs", logging.WARNING, __file__, 0,
                "%d log lines dropped: the log output was blocked (%d in all)",
                (dropped - self.reported, dropped), None,
            )  # fmt: skip
            self.reported = dropped
            self.out.handle(note)
        return bool(self.out.handle(record))

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() is used
        self.out.emit(record)


class _Listener(logging.handlers.QueueListener):
    """A QueueListener with a named thread (``log-writer``) and a stop that never hangs."""

    def __init__(self, q: queue.Queue[Any], handler: logging.Handler) -> None:
        super().__init__(q, handler)
        self.records = q
        self.writer: threading.Thread | None = None

    def start(self) -> None:
        self.writer = threading.Thread(target=self._write, name="log-writer", daemon=True)
        self.writer.start()

    def _write(self) -> None:
        while (record := self.dequeue(True)) is not None:
            self.handle(record)

    def stop_within(self, timeout: float) -> bool:
        """Flush and end the writer; False if stdout stayed blocked for ``timeout``."""
        writer, self.writer = self.writer, None
        if writer is None:
            return True
        try:
            self.records.put(None, timeout=timeout)
        except queue.Full:
            return False
        writer.join(timeout)
        return not writer.is_alive()


_active: tuple[DroppingQueueHandler, _Listener] | None = None
_exit_hook: list[Callable[..., Any]] = []


def setup(
    level: str = "info", *, queue_size: int = QUEUE_SIZE, stream: TextIO | None = None
) -> None:
    """Configure the root logger once for the agent process (again: replaces the last).

    Lines go to ``stream`` (default: stdout, which journald reads) from the writer thread.
    """
    shutdown()
    out = logging.StreamHandler(stream or sys.stdout)
    out.setFormatter(JournalFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
    handler = DroppingQueueHandler(q)
    handler.addFilter(RateLimit())  # here, where the message template is still known
    listener = _Listener(q, _Writer(out, handler))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    listener.start()
    global _active  # noqa: PLW0603 - one logging setup per process, made by setup()
    if _active is None and not _exit_hook:
        _exit_hook.append(atexit.register(shutdown))  # a normal exit flushes by itself
    _active = (handler, listener)


def shutdown(timeout: float = 2.0) -> None:
    """Write what is queued (at most ``timeout`` seconds) and stop the writer thread."""
    global _active  # noqa: PLW0603 - see setup()
    if _active is None:
        return
    _, listener = _active
    _active = None
    if not listener.stop_within(timeout):
        lost = listener.records.qsize()
        sys.stderr.write(f"pole-agent: log output blocked; {lost} lines not written\n")


def stats() -> dict[str, int]:
    """Heartbeat numbers: log lines dropped because the output was blocked, and queued now."""
    if _active is None:
        return {"dropped": 0, "queued": 0}
    handler, listener = _active
    return {"dropped": handler.dropped, "queued": listener.records.qsize()}
