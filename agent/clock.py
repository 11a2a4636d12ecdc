"""Is this unit's clock to be trusted? NTP sync state from the kernel, and steps seen.

Event times (``ts``), command freshness and the centre's view of a pole all rest on the
wall clock, which a pole without an RTC gets from NTP, sometimes late and sometimes with a
big step.  The heartbeat says whether the kernel considers the clock synchronised
(``adjtimex``: not ``TIME_ERROR``) with its estimated error, and how often and how far the
wall clock jumped against the monotonic clock since the agent started.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ClockWatch", "kernel_sync"]

TIME_ERROR = 5  # adjtimex: the clock is not synchronised
STEP_S = 1.0  # a jump of the wall clock against the monotonic clock larger than this


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h>; only modes (0 = read) and the results are used.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("tv_sec", ctypes.c_long),
        ("tv_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_pad", ctypes.c_int * 11),
    ]


def kernel_sync() -> dict[str, Any]:
    """``{"sync": bool, "est_err_ms": int}`` from adjtimex, or ``{"sync": None}`` if unknown."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return {"sync": None}
    if state < 0:
        return {"sync": None}
    return {"sync": state != TIME_ERROR, "est_err_ms": int(tx.esterror // 1000)}


class ClockWatch:
    """Counts steps of the wall clock; call :meth:`facts` from one thread (the heartbeat)."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        sync: Callable[[], dict[str, Any]] = kernel_sync,
    ) -> None:
        self.wall, self.mono, self.sync = wall, mono, sync
        self._offset = wall() - mono()
        self.steps = 0
        self.last_step_s = 0.0

    def check(self) -> float:
        """The step since the last check, in seconds (0 when the clocks kept together)."""
        offset = self.wall() - self.mono()
        jump = offset - self._offset
        self._offset = offset
        if abs(jump) > STEP_S:
            self.steps += 1
            self.last_step_s = jump
            return jump
        return 0.0

    def facts(self) -> dict[str, Any]:
        """The heartbeat's ``sys.clock``: sync state, error estimate, steps seen."""
        self.check()
        out = dict(self.sync())
        out["steps"] = self.steps
        if self.steps:
            out["last_step_s"] = round(self.last_step_s, 1)
        return out
