"""The spool's SQLite file while it takes writes: rows, bounds, eviction, coalescing, ballast.

Raises sqlite3 and OS errors as they come; :class:`agent.spool.core.Spool` is the fault
boundary that turns them into degraded mode or ``SpoolError``.  Not thread-safe: the Spool
holds its lock around every call.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from agent.events import Priority
from agent.logs import Throttle
from agent.spool import dead
from agent.spool.rows import EXPIRED, LIVE, Now, Row, SpoolRow, fault_kind

__all__ = ["BALLAST_BYTES", "Disk"]

log = logging.getLogger("agent.spool")

BALLAST_BYTES = 4 * 1024 * 1024
CHUNK = 500  # ids per statement: SQLite limits the number of bound variables
T = TypeVar("T")
_PRIORITIES = frozenset(int(p) for p in Priority)


MAX_EVICTED = 100_000  # seqs remembered between two reports; beyond, the centre's window says it


class Disk:
    """One open spool file and its row and byte counts per priority."""

    def __init__(
        self, db: sqlite3.Connection, path: Path, *, max_rows: int, max_bytes: int
    ) -> None:
        self.db = db
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.rows: dict[int, int] = {int(p): 0 for p in Priority}
        self.bytes: dict[int, int] = {int(p): 0 for p in Priority}
        self.dropped: dict[int, int] = {int(p): 0 for p in Priority}
        # (boot, seq) of the events dropped by the bounds or expired, for the centre to be told
        # that these seqs are gone for good (and not merely late); taken by Spool.take_evicted.
        self.evicted: list[tuple[str, int]] = []
        self.coalesced = 0
        self.dead_rows = self.dead_dropped = 0  # the dead-letter table
        self.disk_full = False
        self.full_episodes = 0
        self._full_log = Throttle(60.0)  # a full disk must not flood the journal
        self.ballast = path.with_name(path.name + ".ballast")
        self.recount()

    # ------------------------------------------------------------------ writing
    def probe(self) -> None:
        """One durable write, to learn whether the file takes writes at all."""
        self._write(lambda: self._set_counter("opens", self._counter("opens") + 1))
        self.make_ballast()

    def insert(self, rows: list[Row]) -> list[int]:
        """Commit ``rows`` in one transaction (making room on a full disk); their ids."""
        for attempt in range(3):
            try:
                ids = self._write(lambda: self._add_bounded(rows))
            except sqlite3.OperationalError as exc:
                if fault_kind(exc) != "full" or attempt == 2:
                    raise
                self._make_room(sum(len(r[2]) for r in rows))
            else:
                if self.disk_full and attempt == 0:
                    self.disk_full = False
                    self.make_ballast()
                return ids
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _add_bounded(self, rows: list[Row]) -> list[int]:
        ids = [self._add(row) for row in rows]
        self._evict_over_bounds()  # inside the transaction, so the bound holds on disk too
        return ids

    def _add(self, row: Row) -> int:
        if row[3]:  # retained: only the newest value of a topic matters, drop older unsent ones
            old = self.db.execute(
                "SELECT id, pri, LENGTH(payload) FROM outbox WHERE topic = ? AND retain = 1",
                (row[1],),
            ).fetchall()
            self._delete_counted([(r[0], r[1], r[2]) for r in old])
            self.coalesced += len(old)
        cur = self.db.execute(
            "INSERT INTO outbox (pri, topic, payload, retain, created, expires, boot, mono)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        self.rows[row[0]] += 1
        self.bytes[row[0]] += len(row[2])
        assert cur.lastrowid is not None
        return cur.lastrowid

    def delete(self, ids: list[int]) -> None:
        """Forget rows the broker has (unknown ids are ignored)."""
        # Losing an ack to a crash only causes a duplicate, so no fsync is needed here; the
        # next durable put syncs the WAL including these deletes.
        self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            for i in range(0, len(ids), CHUNK):
                part = ids[i : i + CHUNK]
                marks = ",".join("?" * len(part))
                found = self.db.execute(
                    f"SELECT id, pri, LENGTH(payload) FROM outbox WHERE id IN ({marks})",  # noqa: S608
                    part,
                ).fetchall()
                self._delete_counted(found)
        finally:
            self.db.execute("PRAGMA synchronous=FULL")

    def set_aside(self, row_id: int, reason: str, now_ms: int) -> bool:
        """Move a row the broker will never take into the dead table, in one transaction;
        False when the row is no longer queued."""
        # Like an ack, no fsync: lost to a crash, the row is still queued and set aside again.
        self.db.execute("PRAGMA synchronous=NORMAL")
        try:
            return self._write(lambda: self._move_dead(row_id, reason, now_ms))
        finally:
            self.db.execute("PRAGMA synchronous=FULL")

    def _queued(self, row_id: int) -> list[tuple[int, int, int]]:
        """(id, pri, bytes) of ``row_id`` while it is queued, for :meth:`_delete_counted`."""
        found: list[tuple[int, int, int]] = self.db.execute(
            "SELECT id, pri, LENGTH(payload) FROM outbox WHERE id = ?", (row_id,)
        ).fetchall()
        return found

    def _move_dead(self, row_id: int, reason: str, now_ms: int) -> bool:
        found = self._queued(row_id)
        if not found or not dead.move(self.db, row_id, reason, now_ms):
            return False
        self._delete_counted(found)
        dropped, self.dead_rows = dead.trim(self.db, dead.MAX_DEAD_ROWS, dead.MAX_DEAD_BYTES)
        if dropped:
            self.dead_dropped += dropped
            self._set_counter(dead.DROPPED, self.dead_dropped)
        return True

    def drop_unkept(self, row_id: int) -> bool:
        """Delete a row that cannot be kept in the dead table (no room), counted as dropped;
        False (and nothing counted) when it is no longer queued."""

        def drop() -> bool:
            found = self._queued(row_id)
            if not found:
                return False  # acked meanwhile: nothing was dropped
            self._delete_counted(found)
            self.dead_dropped += 1
            self._set_counter(dead.DROPPED, self.dead_dropped)
            return True

        return self._write(drop)

    def purge(self, now: Now) -> int:
        """Delete telemetry past its time to live; returns how many."""
        self._note_evicted(f"WHERE {EXPIRED}", now.params())
        n = self.db.execute(f"DELETE FROM outbox WHERE {EXPIRED}", now.params()).rowcount  # noqa: S608
        if n:
            self.recount()
        return int(n)

    def _write(self, fn: Callable[[], T]) -> T:
        coalesced = self.coalesced
        try:
            self.db.execute("BEGIN IMMEDIATE")
            out = fn()
            self.db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # no transaction was open
                self.db.execute("ROLLBACK")
            self.coalesced = coalesced  # the rollback undid those deletes
            with contextlib.suppress(sqlite3.Error):  # and the drops counted during it
                self.recount()
            raise
        return out

    def _delete_counted(self, found: list[tuple[int, int, int]]) -> None:
        if not found:
            return
        ids = [r[0] for r in found]
        self.db.execute(
            f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(ids))})",  # noqa: S608
            ids,
        )
        for _, pri, size in found:
            self.rows[pri] -= 1
            self.bytes[pri] -= size

    # ------------------------------------------------------------------ bounds
    def _evict_over_bounds(self) -> None:
        for pri in sorted((p for p in self.rows if p != Priority.ALARM), reverse=True):
            while self.rows[pri] and (
                sum(self.rows.values()) > self.max_rows or sum(self.bytes.values()) > self.max_bytes
            ):
                self._drop_oldest(pri, 1)

    def _note_evicted(self, where: str, params: Any) -> None:
        # Event payloads are JSON with boot and seq; snapshots (JPEG) are not, and are skipped.
        query = (  # ``where`` is one of this module's own clauses, never outside text
            "SELECT json_extract(t, '$.boot'), json_extract(t, '$.seq') FROM"  # noqa: S608
            f" (SELECT CAST(payload AS TEXT) AS t FROM outbox {where})"
            " WHERE json_valid(t) AND json_type(t, '$.seq') = 'integer'"
        )
        found = self.db.execute(query, params).fetchall()
        if len(self.evicted) < MAX_EVICTED:
            self.evicted.extend((str(b), int(s)) for b, s in found[:MAX_EVICTED])

    def _drop_oldest(self, pri: int, n: int) -> int:
        rows = self.db.execute(
            "SELECT id, pri, LENGTH(payload) FROM outbox WHERE pri = ? ORDER BY id LIMIT ?",
            (pri, n),
        ).fetchall()
        if rows:
            marks = ",".join("?" * len(rows))
            self._note_evicted(f"WHERE id IN ({marks})", [r[0] for r in rows])
        self._delete_counted(rows)
        self.dropped[pri] += len(rows)
        self._set_counter(f"dropped.{pri}", self.dropped[pri])
        return int(sum(r[2] for r in rows))

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
        self.ballast.unlink(missing_ok=True)
        target = max(need * 4, 256 * 1024)
        freed = 0
        for pri in sorted((p for p in self.rows if p != Priority.ALARM), reverse=True):
            while freed < target and self.rows[pri] > 0:
                freed += self._drop_oldest(pri, 64)
        # TRUNCATE gives the WAL's blocks back to the file system; the ballast takes them on
        # the next good put, so the next full disk again finds room to delete in.
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def make_ballast(self) -> bool:
        """Reserve room to release when the disk fills; False while there is none to spare."""
        if self.ballast.exists():
            return True
        try:
            # statvfs first: a write doomed to fail would only cost the bell thread time.
            if shutil.disk_usage(self.ballast.parent).free < BALLAST_BYTES + 65536:
                return False
            with self.ballast.open("wb") as f:
                f.write(b"\0" * BALLAST_BYTES)
        except OSError:
            with contextlib.suppress(OSError):
                self.ballast.unlink(missing_ok=True)
            return False
        return True

    # ------------------------------------------------------------------ reading
    def select(self, limit: int, exclude: set[int], now: Now) -> list[SpoolRow]:
        """Up to ``limit`` live rows not in ``exclude``, alarms first, oldest first."""
        skip = ",".join(str(int(i)) for i in exclude if i > 0) or "-1"
        rows = self.db.execute(
            "SELECT id, pri, topic, payload, retain FROM outbox"  # noqa: S608
            f" WHERE id NOT IN ({skip}) AND {LIVE} ORDER BY pri, id LIMIT :limit",
            {**now.params(), "limit": limit},
        ).fetchall()
        # A row SQLite could not tell was garbage must not stop the link: it is skipped.
        return [
            SpoolRow(r[0], Priority(r[1]), r[2], bytes(r[3]), bool(r[4]))
            for r in rows
            if r[1] in _PRIORITIES and isinstance(r[2], str) and isinstance(r[3], bytes)
        ]

    def recount(self) -> None:
        """Counts from the file (after a rollback, the drops counted during it did not happen)."""
        for name, value in self.db.execute("SELECT name, value FROM counters"):
            if name.startswith("dropped."):
                self.dropped[int(name.split(".")[1])] = value
            elif name == dead.DROPPED:
                self.dead_dropped = value
        self.dead_rows = dead.count(self.db)
        for p in self.rows:
            self.rows[p], self.bytes[p] = 0, 0
        for pri, n, size in self.db.execute(
            "SELECT pri, COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox GROUP BY pri"
        ):
            self.rows[pri], self.bytes[pri] = n, size

    def _counter(self, name: str) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _set_counter(self, name: str, value: int) -> None:
        self.db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def close(self) -> None:
        """Checkpoint when possible and close; never raises."""
        # Another process may hold a reader, or the disk may be gone: the WAL stays consistent.
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.Error):
            self.db.close()
