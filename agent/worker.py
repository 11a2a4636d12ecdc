"""One shape for every thread service: a named thread, a stop event, a join with a timeout.

A service subclasses :class:`Worker` and writes one loop turn (:meth:`Worker._turn`), or
its own loop (:meth:`Worker._run`) when the shape of the turn does not fit.  The runner
sees the same four methods on every service: ``start``, ``stop``, ``threads`` and
``last_progress``.

``stop`` returns False when the thread did not end in time (a read that hangs, a camera
that does not answer).  The owner must then leave the thread's file descriptors open: a
closed number is soon reused by another file, and the hung thread would read or write
that one when it wakes.  The thread is a daemon, so it never keeps the process alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Worker"]

log = logging.getLogger(__name__)


class Worker:
    """Owns one named thread; subclasses fill in :meth:`_turn` or :meth:`_run`.

    ``self._stop`` is the stop event: loops wait on it (``self._stop.wait(delay)``) rather
    than sleeping, so that a stop is seen at once.
    """

    def __init__(self, name: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress = clock()

    # ------------------------------------------------------------------ the owner's side
    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Ask the thread to stop and wait ``timeout`` for it; False: it is still running."""
        self.request_stop()
        return self.join(timeout)

    def request_stop(self) -> None:
        """Set the stop event and wake the thread; does not wait."""
        self._stop.set()
        self._wake()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; False (logged) when it did not stop: leave its fds alone."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(max(0.0, timeout))
        if thread.is_alive():
            log.error("%s did not stop within %.1f s; its files are left open", self.name, timeout)
            return False
        return True

    def threads(self) -> list[threading.Thread]:
        """The threads the runner watches (owners of sub-workers add theirs)."""
        return [self._thread] if self._thread is not None else []

    def last_progress(self) -> float:
        """The clock's time of the last loop turn (a stuck loop stops moving it)."""
        return self._progress

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ the thread's side
    def progress(self, t: float | None = None) -> None:
        """Note a loop turn now (or at ``t``, on this worker's clock)."""
        self._progress = self._clock() if t is None else t

    def _main(self) -> None:
        try:
            self._run()
        except Exception as exc:  # noqa: BLE001 - said once, in the subclass's words
            self._crashed(exc)
        finally:
            self._finish()

    def _run(self) -> None:
        """The loop: note progress, take one turn, until stopped."""
        while not self._stop.is_set():
            self.progress()
            self._turn()

    def _turn(self) -> None:
        """One turn of the loop; it should wait (on ``self._stop`` or a queue), never spin."""
        raise NotImplementedError

    def _wake(self) -> None:
        """Unblock the thread's wait (a pipe byte, a queue item); nothing by default."""

    def _crashed(self, exc: Exception) -> None:
        """Called in the thread with the exception that ended ``_run``."""
        log.error("%s thread crashed: %s", self.name, exc, exc_info=exc)

    def _finish(self) -> None:
        """Called in the thread as it ends, stopped or crashed (close what it owns)."""
