"""The Spool: the fault boundary around the SQLite file, and its degraded mode.

Every public method raises nothing but :class:`SpoolError`, and only ``Spool()`` (the file is
locked by another process) and ``put`` (a row that cannot be taken) raise at all; reading,
acks, purging, facts and close report trouble through ``facts()`` instead.

Degraded mode: when the disk refuses a write (read-only file system, I/O error, a full disk
with nothing left to evict, a file damaged while running), the spool stops writing.  ALARM
rows go to a bounded memory queue that ``next_batch`` still hands out after the alarms on
disk; acks of memory rows drop them, acks of file rows are remembered and applied later;
lower priorities are refused and counted.  Every ``retry_s`` (monotonic) the next ``put``,
``purge_expired`` or ``recover`` reopens the file (salvaging it if damaged), proves it
takes a durable write, moves the memory rows to disk in order and leaves degraded mode.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import SpoolError
from agent.events import Priority
from agent.logs import Throttle
from agent.spool.dead import DeadLetters, DeadNote
from agent.spool.disk import Disk
from agent.spool.memory import MemoryQueue
from agent.spool.rows import DamagedError, Now, Row, SpoolRow, fault_kind, kernel_boot_id, prepare
from agent.spool.salvage import SalvageReport, open_checked

__all__ = ["Spool"]

log = logging.getLogger("agent.spool")

DEAD_MOVES = 16  # dead-letter moves per call under the lock (a bell's put waits for it)
ACKED_LIMIT = 10_000  # file rows acked while degraded; past it no more file rows go out


class Spool:
    """The outbox. Thread-safe; open one per process.

    Time to live (telemetry only): a row records the wall clock, the machine's boot id and
    the monotonic clock when it is put.  A row put during this boot expires by monotonic
    age, so a clock step either way changes nothing; a row from an earlier boot expires by
    wall-clock age, and one whose wall time is in the future has an unknown age and is never
    expired by age, only evicted by the row and byte bounds.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_rows: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        telemetry_ttl_s: int = 3600,
        busy_timeout_s: float = 10.0,
        mem_rows: int = 1000,
        retry_s: float = 5.0,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        boot_id: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.telemetry_ttl_ms = telemetry_ttl_s * 1000
        self.retry_s = retry_s
        self._wall, self._mono = wall, mono
        self._boot = boot_id or kernel_boot_id()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._mem = MemoryQueue(mem_rows)
        self._acked: set[int] = set()  # file rows the broker has, not yet deleted
        self._moved: dict[int, int] = {}  # memory id -> file id, from the last move to disk
        self._dead = DeadLetters()
        self.refused: dict[int, int] = {int(p): 0 for p in Priority}
        self.state = "ok"
        self.last_error: str | None = None
        self._retry_at = 0.0
        self._disk: Disk | None = None
        self._counts: Disk | None = None  # the last file opened: counts survive a failure
        self.salvage_report: SalvageReport | None = None
        self._unreported: SalvageReport | None = None
        self._log = Throttle(60.0, clock=mono)
        try:
            self._open()
        except (sqlite3.Error, OSError, DamagedError) as exc:
            if fault_kind(exc) == "busy":
                self._close_disk()
                raise SpoolError(f"spool {self.path} cannot be opened: {exc}") from exc
            self._degrade(exc, "open")

    # ------------------------------------------------------------------ opening
    def _open(self) -> None:
        """(Re)open the file, salvaging it if damaged, and prove it takes a durable write.

        Raises sqlite3/OS errors; ``self._disk`` is left readable whenever the file could be
        read, so that rows already on a read-only disk are still sent.
        """
        self._close_disk()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db, report = open_checked(self.path, self.busy_timeout_s, self._wall())
        if report is not None:
            self.salvage_report = self._unreported = report
        try:
            prepare(db)
        except sqlite3.Error:
            self._attach(db)  # the file may still be readable
            raise
        self._attach(db)
        assert self._disk is not None
        self._disk.probe()

    def _attach(self, db: sqlite3.Connection) -> None:
        try:
            self._disk = self._counts = Disk(
                db, self.path, max_rows=self.max_rows, max_bytes=self.max_bytes
            )
        except sqlite3.Error:
            db.close()
            raise

    def _close_disk(self) -> None:
        if self._disk is not None:
            self._disk.close()
            self._disk = None

    # ------------------------------------------------------------------ faults
    def _degrade(self, exc: BaseException, during: str) -> None:
        kind = fault_kind(exc)
        entering = self.state == "ok"
        self.state = "full" if kind == "full" else "degraded"
        self.last_error = f"{during}: {exc}"
        if entering:
            self._retry_at = self._mono() + self.retry_s
        if entering or self._log.ready("degraded"):
            log.error(
                "spool %s is %s (%s): alarms are held in memory (%d now), other rows refused;"
                " retrying every %.0f s",
                self.path,
                self.state,
                self.last_error,
                len(self._mem),
                self.retry_s,
            )

    def _failed(self, exc: BaseException, during: str) -> None:
        """A read, ack or purge failed: degrade, or just note a lock held elsewhere."""
        if fault_kind(exc) == "busy":
            if self._log.ready("busy"):
                log.warning("spool %s: %s failed, the file is locked: %s", self.path, during, exc)
            return
        self._degrade(exc, during)

    def _maybe_recover(self) -> None:
        if self.state == "ok" or self._mono() < self._retry_at:
            return
        self._retry_at = self._mono() + self.retry_s
        held = self._mem.items()
        try:
            self._open()
            assert self._disk is not None
            ids = self._disk.insert([row for _, row in held]) if held else []
        except (sqlite3.Error, OSError, DamagedError) as exc:
            kind = fault_kind(exc)
            self.state = "full" if kind == "full" else "degraded"
            self.last_error = f"retry: {exc}"
            if self._log.ready("retry"):
                log.warning("spool %s is still %s: %s", self.path, self.state, exc)
            return
        self._moved = dict(zip((i for i, _ in held), ids, strict=True))
        self._mem.clear()
        self.state = "ok"
        log.warning(
            "spool %s takes writes again; %d alarm(s) moved from memory to disk",
            self.path,
            len(held),
        )
        self._log.reset("degraded")
        if self._acked:
            self._delete([])
        # Waiting dead-letter moves are left to recover() (the runner's tick): this may be a
        # bell's put.

    def recover(self) -> bool:
        """Retry the disk if degraded and the retry timer is due; True when healthy.

        Cheap when there is nothing to do; the runner may call it on every tick so that the
        retry does not wait for the next put.
        """
        with self._lock:
            self._maybe_recover()
            if self._dead.pending:
                self._move_dead()
            return self.state == "ok"

    def take_evicted(self) -> list[tuple[str, int]]:
        """(boot, seq) of the events the spool dropped or expired since the last call."""
        with self._lock:
            if self._disk is None:
                return []
            taken, self._disk.evicted = self._disk.evicted, []
            return taken

    def take_salvage_report(self) -> SalvageReport | None:
        """The last salvage not yet taken (once), for the runner to turn into an event."""
        with self._lock:
            report, self._unreported = self._unreported, None
            return report

    # ------------------------------------------------------------------ writing
    def add_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` after every put (the link uses it to wake up); must not block."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        """Stop calling ``fn`` (a stopped link); unknown listeners are ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    def _now(self) -> Now:
        return Now(int(self._wall() * 1000), int(self._mono() * 1000), self._boot)

    def put(self, topic: str, payload: bytes, priority: Priority, *, retain: bool = False) -> int:
        """Store a message and return its row id (negative: held in memory while degraded).

        Durable on disk when the spool is ok.  A retained message replaces the older unsent
        retained messages of its topic.  Raises SpoolError when the row cannot be taken: a
        lower priority while degraded, an alarm when the memory queue is full, a lock held
        elsewhere past the busy timeout.
        """
        now = self._now()
        expires = now.wall_ms + self.telemetry_ttl_ms if priority == Priority.TELEMETRY else None
        row: Row = (
            int(priority), topic, bytes(payload), int(retain), now.wall_ms, expires,
            now.boot, now.mono_ms,
        )  # fmt: skip
        with self._lock:
            rowid = self._put(row)
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:  # a listener must not turn a stored row into an error
                if self._log.ready("listener"):
                    log.exception("spool listener %r failed", fn)
        return rowid

    def _put(self, row: Row) -> int:
        self._maybe_recover()
        if self.state == "ok" and self._disk is not None:
            try:
                return self._disk.insert([row])[0]
            except (sqlite3.Error, OSError) as exc:
                if fault_kind(exc) == "busy":
                    raise SpoolError(f"spool {self.path}: {exc}") from exc
                self._degrade(exc, "put")
        pri = Priority(row[0])
        if pri not in (Priority.ALARM, Priority.TELEMETRY):  # the heartbeat: newest only
            self.refused[pri] += 1
            raise SpoolError(
                f"spool {self.path} is {self.state} ({self.last_error});"
                f" {pri.name.lower()} message refused"
            )
        rowid = self._mem.put(row)
        if rowid is None:
            raise SpoolError(
                f"spool {self.path} is {self.state} and its memory queue is full"
                f" ({self._mem.limit} alarms); alarm refused"
            )
        return rowid

    def ack(self, rowid: int) -> None:
        """The broker has the message: forget it."""
        self.ack_many([rowid])

    def ack_many(self, rowids: list[int]) -> None:
        """Forget messages the broker has; never raises (a failed delete is retried later)."""
        with self._lock:
            ids = self._mem.ack([self._moved.pop(i, i) for i in rowids])
            if not ids and not self._acked:
                return
            # No retry here: a reopen (quick_check, perhaps a salvage) must not run on the
            # link's loop, which the watchdog trusts; put, purge and recover() retry.
            self._delete(ids)

    def _delete(self, ids: list[int]) -> None:
        if self.state == "ok" and self._disk is not None:
            try:
                self._disk.delete([*self._acked, *ids])
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc, "ack")
            else:
                self._acked.clear()
                return
        for i in ids:  # past the limit: a duplicate later, never a loss
            if len(self._acked) < ACKED_LIMIT:
                self._acked.add(i)

    # ------------------------------------------------------------------ dead letters
    def set_aside(self, row: SpoolRow, reason: str) -> None:
        """The link's dead-letter hook: a row the broker will never take leaves the queue for
        the dead table (one transaction). Never raises.

        A row held only in memory (degraded, negative id) cannot be written: it is dropped
        and counted (``dead_dropped``).  While the disk refuses writes the move waits and the
        row is not handed out; it is made once the disk takes writes again.
        """
        with self._lock:
            rowid = self._moved.pop(row.id, row.id)
            if rowid < 0:
                self._mem.ack([rowid])
                self._dead.unkept += 1
                kept = "not kept: held in memory while the disk refuses writes"
            elif self._dead.wait(rowid, reason, self._now().wall_ms):
                kept = self._move_dead(first=rowid).get(rowid, "pending")
            else:
                kept = "pending"  # past the bound: still queued, the link skips it
            note = DeadNote.of(
                rowid, row.topic, int(row.priority), row.payload, reason=reason, kept=kept
            )
            self._dead.note(note)

    def _move_dead(self, first: int | None = None) -> dict[int, str]:
        """Make waiting moves while the disk takes writes (``first`` first, then the oldest),
        at most ``DEAD_MOVES`` per call; what became of each.

        Each move is a transaction under the spool's lock, which a bell's put waits for: the
        moves a long refusal left waiting (up to ``MAX_PENDING``) are made a few per call,
        the rest by the next calls (every :meth:`recover`, every set-aside).
        """
        done: dict[int, str] = {}
        if self.state != "ok" or self._disk is None:
            return done
        pending = self._dead.pending
        order = [first] if first is not None and first in pending else []
        order += [r for r in itertools.islice(pending, DEAD_MOVES) if r != first]
        for rowid in order[:DEAD_MOVES]:
            reason, when = pending[rowid]
            try:
                try:
                    done[rowid] = "kept" if self._disk.set_aside(rowid, reason, when) else "gone"
                except sqlite3.OperationalError as exc:
                    if fault_kind(exc) != "full":
                        raise
                    self._disk.drop_unkept(rowid)  # no room to copy it: at least unblock
                    done[rowid] = "not kept: the file system is full"
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc, "set aside")
                break
            del self._dead.pending[rowid]
        return done

    def take_dead(self) -> tuple[list[DeadNote], int]:
        """The rows set aside since the last call (for notices), and how many more there were."""
        with self._lock:
            return self._dead.take()

    def purge_expired(self) -> int:
        """Delete telemetry past its time to live; returns how many (0 while degraded)."""
        with self._lock:
            self._maybe_recover()
            if self.state != "ok" or self._disk is None:
                return 0
            try:
                return self._disk.purge(self._now())
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc, "purge")
                return 0

    # ------------------------------------------------------------------ reading
    def next_batch(
        self, limit: int, exclude: set[int] | frozenset[int] = frozenset()
    ) -> list[SpoolRow]:
        """Up to ``limit`` rows not in ``exclude``: alarms on disk, alarms in memory, the rest.

        Oldest first within a priority; never raises (an unreadable disk yields memory rows).
        """
        with self._lock:
            skip = set(exclude) | {self._moved[i] for i in exclude if i in self._moved}
            rows: list[SpoolRow] = []
            if self._disk is not None and len(self._acked) < ACKED_LIMIT:
                try:
                    rows = self._disk.select(
                        limit, skip | self._acked | self._dead.pending.keys(), self._now()
                    )
                except (sqlite3.Error, OSError) as exc:
                    self._failed(exc, "read")
            held = self._mem.rows(skip, limit)
        alarms = [r for r in rows if r.priority == Priority.ALARM]
        return [*alarms, *held, *rows[len(alarms) :]][:limit]

    # ------------------------------------------------------------------ facts
    def _depth(self) -> dict[int, int]:
        rows = dict(self._counts.rows) if self._counts else {int(p): 0 for p in Priority}
        rows[Priority.ALARM] += len(self._mem)
        return rows

    def depth(self) -> dict[str, int]:
        """Rows waiting per priority name (memory rows included)."""
        with self._lock:
            return {Priority(p).name.lower(): n for p, n in self._depth().items()}

    def facts(self) -> dict[str, Any]:
        """The heartbeat's ``spool`` section (see docs/contract.md)."""

        def named(counts: dict[int, int]) -> dict[str, int]:
            return {Priority(p).name.lower(): n for p, n in counts.items() if n}

        with self._lock:
            disk = self._counts
            out: dict[str, Any] = {
                "state": self.state,
                "depth": named(self._depth()),
                "bytes": (sum(disk.bytes.values()) if disk else 0) + self._mem.nbytes(),
                "dropped": named(disk.dropped) if disk else {},
                "disk_full": bool(disk and disk.disk_full),
                "mem": len(self._mem),
            }
            extra = {
                "refused": named(self.refused),
                "overflow": self._mem.overflow,
                "coalesced": (disk.coalesced if disk else 0) + self._mem.coalesced,
                "dead": (disk.dead_rows if disk else 0) + len(self._dead.pending),
                "dead_dropped": (disk.dead_dropped if disk else 0) + self._dead.unkept,
                "error": self.last_error,
            }
            out.update({k: v for k, v in extra.items() if v})
            if self.salvage_report is not None:
                out.update(self.salvage_report.facts())
            return out

    def stats(self) -> dict[str, Any]:
        """The same as :meth:`facts` (the name the runner used first)."""
        return self.facts()

    @property
    def full_episodes(self) -> int:
        """How many times the file system was found full."""
        return self._counts.full_episodes if self._counts else 0

    def __len__(self) -> int:
        with self._lock:
            return int(sum(self._depth().values()))

    def close(self) -> None:
        """Move held alarms to disk if it takes writes now, then close; never raises."""
        with self._lock:
            if self.state != "ok":
                self._retry_at = 0.0
                self._maybe_recover()
            left = len(self._dead.pending)
            while left and self.state == "ok":  # the bell has stopped by now
                self._move_dead()
                # a pass that moved nothing (a locked file): leave them to the next start
                left, before = len(self._dead.pending), left
                if left == before:
                    break
            if len(self._mem):
                log.error(
                    "spool %s closed with %d alarm(s) only in memory: they are lost",
                    self.path,
                    len(self._mem),
                )
            self._close_disk()
