"""Durable outbox on SQLite: every message is on disk before anyone tries to send it.

* ``put`` returns only after the row is committed with ``synchronous=FULL`` in WAL mode,
  so a crash or a power cut after ``put`` returns loses nothing.
* ``next_batch`` hands out rows by priority (alarms first), oldest first within a priority.
* ``ack`` deletes a row once the broker acknowledged it.  A lost ack means a duplicate
  later, never a loss: delivery is at least once.
* Bounds in rows and bytes: when full, the oldest rows of the lowest priority go first and
  are counted; alarms are never dropped and never expire.
* A full file system is met with a ballast file released to make room, then eviction.

One connection, one lock: SQLite serialises writers anyway, and a lock held for one
commit (one fsync) is the bound on how long the bell thread can wait here.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import SpoolError
from agent.events import Priority
from agent.logs import Throttle

__all__ = ["Spool", "SpoolError", "SpoolRow"]

log = logging.getLogger(__name__)

BALLAST_BYTES = 4 * 1024 * 1024
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pri INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    expires INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (pri, id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class SpoolRow:
    id: int
    priority: Priority
    topic: str
    payload: bytes
    retain: bool


class Spool:
    """The outbox. Thread-safe; open one per process."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_rows: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        telemetry_ttl_s: int = 3600,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.telemetry_ttl_ms = telemetry_ttl_s * 1000
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        self._rows: dict[int, int] = {int(p): 0 for p in Priority}
        self._bytes: dict[int, int] = {int(p): 0 for p in Priority}
        for pri, n, size in self._db.execute(
            "SELECT pri, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox GROUP BY pri"
        ):
            self._rows[pri], self._bytes[pri] = n, size
        self.dropped: dict[int, int] = {int(p): 0 for p in Priority}
        self._load_dropped()
        self.disk_full = False
        self.full_episodes = 0
        self._full_log = Throttle(60.0)  # a full disk must not flood the journal
        self._ballast = self.path.with_name(self.path.name + ".ballast")
        self._make_ballast()

    # ------------------------------------------------------------------ opening
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_s
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            ok = db.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(ok)
            db.executescript(_SCHEMA)
        except sqlite3.OperationalError as exc:
            # Locked by another process, read-only, I/O error, disk full: the file itself
            # may hold alarms, so it is never discarded for these.
            raise SpoolError(f"spool {self.path} cannot be opened: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            # A file that is not a database at all (not a torn write: SQLite recovers those
            # by itself). Keep it for inspection and start empty rather than never sending.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("spool %s is unreadable (%s); moved aside to %s", self.path, exc, aside)
            self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            db = self._connect()
            db.executescript(_SCHEMA)
        return db

    def _make_ballast(self) -> bool:
        """Reserve room to release when the disk fills; False while there is none to spare."""
        if self._ballast.exists():
            return True
        try:
            # statvfs first: a write doomed to fail would only cost the bell thread time.
            if shutil.disk_usage(self._ballast.parent).free < BALLAST_BYTES + 65536:
                return False
            with self._ballast.open("wb") as f:
                f.write(b"\0" * BALLAST_BYTES)
        except OSError:
            self._ballast.unlink(missing_ok=True)
            return False
        return True

    # ------------------------------------------------------------------ writing
    def add_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` after every put (the link uses it to wake up); must not block."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        """Stop calling ``fn`` (a stopped link); unknown listeners are ignored."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    def put(self, topic: str, payload: bytes, priority: Priority, *, retain: bool = False) -> int:
        """Store a message durably and return its row id; raises SpoolError if impossible."""
        now = int(time.time() * 1000)
        expires = now + self.telemetry_ttl_ms if priority == Priority.TELEMETRY else None
        row = (int(priority), topic, payload, int(retain), now, expires)
        with self._lock:
            rowid = self._insert(row)
        for fn in self._listeners:
            fn()
        return rowid

    def _insert(self, row: tuple[int, str, bytes, int, int, int | None]) -> int:
        for attempt in range(3):
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cur = self._db.execute(
                    "INSERT INTO outbox (pri, topic, payload, retain, created, expires)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
                self._rows[row[0]] += 1
                self._bytes[row[0]] += len(row[2])
                self._evict_over_bounds()
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._rollback()
                self._recount()
                if "full" not in str(exc) or attempt == 2:
                    raise SpoolError(f"spool {self.path}: {exc}") from exc
                try:
                    self._make_room(len(row[2]))
                except sqlite3.OperationalError as again:
                    raise SpoolError(
                        f"spool {self.path}: the disk is full and no room could be made: {again}"
                    ) from again
            else:
                if self.disk_full and attempt == 0:
                    self.disk_full = False
                    self._make_ballast()
                assert cur.lastrowid is not None
                return cur.lastrowid
        raise SpoolError(f"spool {self.path}: no room")  # pragma: no cover - loop returns

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # no transaction was open
            self._db.execute("ROLLBACK")

    def _load_dropped(self) -> None:
        for name, value in self._db.execute("SELECT name, value FROM counters"):
            if name.startswith("dropped."):
                self.dropped[int(name.split(".")[1])] = value

    def _recount(self) -> None:
        # After a rollback: the drops counted in memory during it did not happen either.
        self._load_dropped()
        for p in self._rows:
            self._rows[p], self._bytes[p] = 0, 0
        for pri, n, size in self._db.execute(
            "SELECT pri, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox GROUP BY pri"
        ):
            self._rows[pri], self._bytes[pri] = n, size

    def _make_room(self, need: int) -> None:
        """The file system is full: release the ballast, drop the least important rows."""
        self.disk_full = True
        self.full_episodes += 1
        if self._full_log.ready():
            log.error(
                "spool: the file system of %s is full (%d times so far); dropping low-priority"
                " rows",
                self.path,
                self.full_episodes,
            )
        self._ballast.unlink(missing_ok=True)
        target = max(need * 4, 256 * 1024)
        freed = 0
        for pri in sorted((p for p in self._rows if p != Priority.ALARM), reverse=True):
            while freed < target and self._rows[pri] > 0:
                freed += self._drop_oldest(pri, 64)
        # TRUNCATE gives the WAL's blocks back to the file system; the ballast takes them on
        # the next good put, so the next full disk again finds room to delete in.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _drop_oldest(self, pri: int, n: int) -> int:
        rows = self._db.execute(
            "SELECT id, LENGTH(payload) FROM outbox WHERE pri = ? ORDER BY id LIMIT ?", (pri, n)
        ).fetchall()
        if not rows:
            return 0
        self._db.execute(
            f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(rows))})",
            [r[0] for r in rows],
        )
        size = int(sum(r[1] for r in rows))
        self._rows[pri] -= len(rows)
        self._bytes[pri] -= size
        self.dropped[pri] += len(rows)
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (f"dropped.{pri}", self.dropped[pri]),
        )
        return size

    def _evict_over_bounds(self) -> None:
        # Runs inside the insert's transaction, so the bound holds on disk too.
        for pri in sorted((p for p in self._rows if p != Priority.ALARM), reverse=True):
            while self._rows[pri] and (
                sum(self._rows.values()) > self.max_rows
                or sum(self._bytes.values()) > self.max_bytes
            ):
                self._drop_oldest(pri, 1)

    # ------------------------------------------------------------------ reading
    def next_batch(
        self, limit: int, exclude: set[int] | frozenset[int] = frozenset()
    ) -> list[SpoolRow]:
        """Up to ``limit`` rows not in ``exclude``, alarms first, oldest first."""
        now = int(time.time() * 1000)
        skip = ",".join(str(int(i)) for i in exclude) or "-1"
        with self._lock:
            rows = self._db.execute(
                "SELECT id, pri, topic, payload, retain FROM outbox"
                f" WHERE id NOT IN ({skip}) AND (expires IS NULL OR expires > ?)"
                " ORDER BY pri, id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [SpoolRow(r[0], Priority(r[1]), r[2], bytes(r[3]), bool(r[4])) for r in rows]

    def ack(self, rowid: int) -> None:
        """The broker has the message: forget it."""
        self.ack_many([rowid])

    def ack_many(self, rowids: list[int]) -> None:
        if not rowids:
            return
        marks = ",".join("?" * len(rowids))
        with self._lock:
            # Losing an ack to a crash only causes a duplicate, so no fsync is needed here;
            # the next durable put syncs the WAL including these deletes.
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                found = self._db.execute(
                    f"SELECT pri, LENGTH(payload) FROM outbox WHERE id IN ({marks})",
                    rowids,
                ).fetchall()
                self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", rowids)
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
            for pri, size in found:
                self._rows[pri] -= 1
                self._bytes[pri] -= size

    def purge_expired(self) -> int:
        """Delete telemetry past its time to live; returns how many."""
        now = int(time.time() * 1000)
        with self._lock:
            n = self._db.execute(
                "DELETE FROM outbox WHERE expires IS NOT NULL AND expires <= ?", (now,)
            ).rowcount
            if n:
                self._recount()
        return n

    # ------------------------------------------------------------------ facts
    def depth(self) -> dict[str, int]:
        """Rows waiting per priority name."""
        with self._lock:
            return {Priority(p).name.lower(): n for p, n in self._rows.items()}

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "depth": {Priority(p).name.lower(): n for p, n in self._rows.items() if n},
                "bytes": sum(self._bytes.values()),
                "dropped": {Priority(p).name.lower(): n for p, n in self.dropped.items() if n},
                "disk_full": self.disk_full,
            }

    def __len__(self) -> int:
        with self._lock:
            return int(sum(self._rows.values()))

    def close(self) -> None:
        with self._lock:
            # Another process may hold a reader; the WAL stays consistent without it.
            with contextlib.suppress(sqlite3.OperationalError):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
