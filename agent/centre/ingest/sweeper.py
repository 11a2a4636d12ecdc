"""The gap sweeper and the silence judge: one per ingest group, elected by an advisory lock.

Shared subscriptions spread one pole's events over every worker, so no worker alone can see
a pole's seqs.  The sweeper reads what all of them committed (by the ``rx`` column, in
insertion order), feeds a :class:`SeqTracker`, and writes its lost and late outcomes to
``gaps``.  Rows committed out of ``rx`` order are caught by reading a little behind the last
position (an overlap of a few seconds; the tracker ignores what it has seen).

It is also the ingest's silence judge: a broker that dies with the pole's session publishes
no last will, so an ``online`` pole whose last heartbeat (or birth) arrived longer ago than
``max(silent_after, FACTOR x its heartbeat period)`` is marked offline, why ``silent`` -- the
monitor's rule (:mod:`agent.centre.liveness`), with ``silent_after`` as the floor and the
period learnt from the pole's heartbeats by :mod:`agent.centre.ingest.store` (``poles.
heartbeat_period_s``; until two were seen, the floor alone).  The age is ``heard_at``, the
arrival of the last heartbeat, not ``last_seen``: a pole whose events still come but whose
heartbeats stopped is judged silent too (its health loop is stuck or its heartbeats are
lost: worth an operator's look), as the monitor judges it.  Its next heartbeat revives it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import psycopg

from agent.centre.gaps import Gap, SeqTracker, dropped_ranges
from agent.centre.liveness import FACTOR

__all__ = ["GapSweeper", "write_gaps"]

log = logging.getLogger(__name__)

_LEADER = 0x706F6C66  # advisory lock id: the one sweeper of a database
_READ = """
SELECT rx, dev, boot, seq,
       CASE WHEN kind = 'system' AND body->>'what' = 'spool' THEN body->'data' END
FROM events WHERE rx > %s ORDER BY rx LIMIT 50000
"""
_SILENT = """
UPDATE poles SET status = 'offline', status_why = 'silent', status_at = now()
WHERE status = 'online' AND heard_at < now() - make_interval(
    secs => greatest(%(floor)s, %(factor)s * coalesce(heartbeat_period_s, 0)))
"""
_OVERLAPPING = """
SELECT first_seq, last_seq, state, why FROM gaps
WHERE dev = %s AND boot = %s AND first_seq <= %s AND last_seq >= %s FOR UPDATE
"""
_DELETE = "DELETE FROM gaps WHERE dev = %s AND boot = %s AND first_seq = %s"
_INSERT = """
INSERT INTO gaps (dev, boot, first_seq, last_seq, state, why) VALUES (%s, %s, %s, %s, %s, %s)
"""


def write_gaps(conn: psycopg.Connection[tuple[Any, ...]], gaps: list[Gap]) -> None:
    """Each gap replaces what overlapped it; the parts of old rows outside it are kept."""
    with conn.transaction():
        for g in gaps:
            old = conn.execute(_OVERLAPPING, (g.dev, g.boot, g.last, g.first)).fetchall()
            for first, last, state, why in old:
                conn.execute(_DELETE, (g.dev, g.boot, first))
                if first < g.first:
                    conn.execute(_INSERT, (g.dev, g.boot, first, g.first - 1, state, why))
                if last > g.last:
                    conn.execute(_INSERT, (g.dev, g.boot, g.last + 1, last, state, why))
            conn.execute(_INSERT, (g.dev, g.boot, g.first, g.last, g.state, g.why))


class GapSweeper:
    """A thread: try to lead; while leading, once a second read new rows and judge gaps."""

    def __init__(
        self,
        url: str,
        *,
        window_s: float,
        silent_after_s: float = 90.0,
        period_s: float = 1.0,
        overlap_s: float = 3.0,
    ) -> None:
        self.url = url
        self.tracker = SeqTracker(window_s)
        self.silent_after_s = silent_after_s
        self.period_s = period_s
        self.overlap_s = overlap_s
        self.leading = False
        self.gaps_written = 0
        self._marks: deque[tuple[float, int]] = deque()  # (when, last rx read then)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-sweeper", daemon=True)

    def start(self) -> GapSweeper:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    self._lead(conn)
            except psycopg.Error as exc:
                log.warning("gap sweeper: %s; retrying in 5 s", exc)
            self.leading = False
            self._stop.wait(5.0)

    def _lead(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        while not self._stop.is_set():
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LEADER,)).fetchone()
            if row and row[0]:
                break
            self._stop.wait(5.0)  # another worker sweeps; take over if it goes
        else:
            return
        self.leading = True
        row = conn.execute("SELECT coalesce(max(rx), 0) FROM events").fetchone()
        self._marks.append((time.monotonic(), int(row[0]) if row else 0))
        last_silent = 0.0
        every = min(5.0, max(self.period_s, self.silent_after_s / 2))
        while not self._stop.wait(self.period_s):
            self.sweep(conn)
            if time.monotonic() - last_silent >= every:
                if n := self.judge_silent(conn):
                    log.info("%d poles silent (no heartbeat in time): offline", n)
                last_silent = time.monotonic()

    def judge_silent(self, conn: psycopg.Connection[tuple[Any, ...]]) -> int:
        """Mark the poles unheard for too long offline, why ``silent``; how many."""
        cur = conn.execute(_SILENT, {"floor": self.silent_after_s, "factor": FACTOR})
        return cur.rowcount

    def sweep(self, conn: psycopg.Connection[tuple[Any, ...]]) -> list[Gap]:
        """Read what was committed since a little before the last read; write the outcomes."""
        now = time.monotonic()
        while len(self._marks) > 1 and self._marks[1][0] <= now - self.overlap_s:
            self._marks.popleft()
        since = self._marks[0][1]
        top = self._marks[-1][1]
        gaps: list[Gap] = []
        for rx, dev, boot, seq, data in conn.execute(_READ, (since,)).fetchall():
            top = max(top, int(rx))
            gaps += self.tracker.see(dev, boot, int(seq))
            if data is not None:
                gaps += self.tracker.dropped(dev, boot, dropped_ranges(data))
        self._marks.append((now, top))
        gaps += self.tracker.expire()
        if gaps:
            write_gaps(conn, gaps)
            self.gaps_written += len(gaps)
            for g in gaps:
                log.info("gap: %s boot %s seq %d..%d %s (%s)", g.dev, g.boot, g.first, g.last,
                         g.state, g.why)  # fmt: skip
        return gaps
