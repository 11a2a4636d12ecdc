"""A self-pipe that wakes the link's ``select`` from any thread, and is safe after close."""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["WakePipe"]


class WakePipe:
    """``wake()`` from any thread never blocks; ``drain()`` on the loop; ``close()`` once."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._lock = threading.Lock()  # wake() never writes to a closed (reused) fd

    def fileno(self) -> int:
        return self._r

    def wake(self) -> None:
        # A full pipe means the loop is already woken.
        with self._lock, contextlib.suppress(BlockingIOError, OSError):
            if self._w >= 0:
                os.write(self._w, b"\0")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._r, 4096):
                pass

    def close(self) -> None:
        with self._lock:
            # A put after stop (the bell outlives the link) must not write a byte into
            # whatever file reuses these descriptor numbers.
            for fd in (self._r, self._w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._r = self._w = -1
