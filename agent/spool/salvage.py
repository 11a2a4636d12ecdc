"""Salvage a damaged spool file: keep every row SQLite can still read, alarms first.

The table is walked by rowid ranges.  A range that fails is split in two until the failing
part is a single rowid, which is skipped; so a few garbage pages cost the rows on them and
no more.  The ``(pri, id)`` index is walked the same way to learn which rows existed, so
that what could not be read is counted (``lost``, and how many of those were alarms).  When
parts of the index are unreadable too, ``lost`` is a lower bound and ``complete`` is False.
The rows go into a fresh file next to the damaged one, which is then moved aside with a
timestamp, and the fresh file takes its place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.events import Priority
from agent.spool.rows import DamagedError, connect, fault_kind, prepare

__all__ = ["SalvageReport", "check", "open_checked", "salvage"]

log = logging.getLogger("agent.spool")

MAX_FAILED_PROBES = 20_000  # bounds the time spent on a badly damaged file
TOP_ID = 2**62
_COLS = "id, pri, topic, payload, retain, created, expires"
_DEAD_COLS = "id, row_id, pri, topic, payload, retain, created, dead_at, reason"
_DEAD_INSERT = (
    "INSERT OR IGNORE INTO dead (id, row_id, pri, topic, payload, retain, created, dead_at,"
    " reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class SalvageReport:
    """What a salvage kept and lost; ``aside`` is where the damaged file went."""

    salvaged: int
    lost: int
    lost_alarms: int
    complete: bool
    aside: str
    why: str

    def facts(self) -> dict[str, Any]:
        out: dict[str, Any] = {"salvaged": self.salvaged, "lost": self.lost}
        if self.lost_alarms:
            out["lost_alarms"] = self.lost_alarms
        if not self.complete:
            out["lost_complete"] = False  # parts of the file could not even be counted
        return out


def check(db: sqlite3.Connection) -> None:
    """Raise :class:`DamagedError` unless ``PRAGMA quick_check`` says ok."""
    first = db.execute("PRAGMA quick_check").fetchone()[0]
    if first != "ok":
        raise DamagedError(str(first))


@dataclass
class _Walk:
    failed: int = 0
    skipped: int = 0
    gave_up: bool = False
    seen: dict[int, int] = field(default_factory=dict)  # id -> pri, from the index


def _ranges(db: sqlite3.Connection, sql: str, lo: int, hi: int, w: _Walk) -> Iterator[Any]:
    """Rows of ``sql`` (ordered by id, params ``lo, hi``) over [lo, hi], skipping bad pages."""
    stack = [(lo, hi)]
    while stack:
        a, b = stack.pop()
        last = a - 1
        # Python's cursor steps to the next row before it hands out this one, so a row just
        # before a bad page is lost with the step; LIMIT 1 keeps a single-id probe from
        # stepping at all.
        try:
            for row in db.execute(sql + (" LIMIT 1" if a == b else ""), (a, b)):
                last = row[0]
                yield row
            continue
        except sqlite3.DatabaseError:
            w.failed += 1
        if w.failed > MAX_FAILED_PROBES:
            w.gave_up = True
            return
        if last >= a:
            stack.append((last + 1, b))  # read up to a bad page: go on after the last good row
        elif a == b:
            w.skipped += 1
        else:
            mid = (a + b) // 2
            stack += [(mid + 1, b), (a, mid)]  # the lower half first: ids stay in order


def _valid(r: tuple[Any, ...]) -> bool:
    # Garbage that SQLite did not notice still has to look like a row.
    return (
        isinstance(r[0], int)
        and r[1] in {int(p) for p in Priority}
        and isinstance(r[2], str)
        and isinstance(r[3], bytes)
        and r[4] in (0, 1)
        and isinstance(r[5], int)
        and (r[6] is None or isinstance(r[6], int))
    )


def _copy(src: sqlite3.Connection, dst: sqlite3.Connection) -> tuple[set[int], _Walk, _Walk]:
    index = _Walk()
    for p in Priority:
        sql = f"SELECT id, pri FROM outbox INDEXED BY outbox_order WHERE pri = {int(p)} AND id BETWEEN ? AND ? ORDER BY id"  # noqa: S608, E501
        for rid, pri in _ranges(src, sql, 1, TOP_ID, index):
            index.seen[rid] = pri
    table = _Walk()
    kept: set[int] = set()
    for which in ("pri = 0", "pri <> 0"):  # alarms first, each part committed on its own
        sql = f"SELECT {_COLS} FROM outbox NOT INDEXED WHERE id BETWEEN ? AND ? AND {which} ORDER BY id"  # noqa: S608, E501
        dst.execute("BEGIN IMMEDIATE")
        for r in _ranges(src, sql, 1, TOP_ID, table):
            if _valid(r) and r[0] not in kept:
                dst.execute(f"INSERT INTO outbox ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)", r)  # noqa: S608
                kept.add(r[0])
        dst.execute("COMMIT")
    with contextlib.suppress(sqlite3.DatabaseError):
        counters = src.execute("SELECT name, value FROM counters").fetchall()
        dst.executemany("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", counters)
    _copy_dead(src, dst)
    return kept, index, table


def _copy_dead(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    """The dead-letter table's readable rows (what a technician reads with ``pole-agent spool
    dead``), after the queue, bounded like the queue's walk; best effort."""
    try:
        src.execute("SELECT 1 FROM dead NOT INDEXED LIMIT 1").fetchall()
    except sqlite3.DatabaseError:
        return  # an older file without the table, or its root page is gone
    sql = f"SELECT {_DEAD_COLS} FROM dead NOT INDEXED WHERE id BETWEEN ? AND ? ORDER BY id"  # noqa: S608
    dst.execute("BEGIN IMMEDIATE")
    try:
        for r in _ranges(src, sql, 1, TOP_ID, _Walk()):
            # OR IGNORE: a garbled b-tree may hand out an id twice (the queue's copy checks
            # ``kept`` for the same reason)
            if _valid_dead(r):
                dst.execute(_DEAD_INSERT, r)
    except sqlite3.DatabaseError as exc:  # best effort: never worth the queue's salvage
        if dst.in_transaction:  # SQLite may have rolled back by itself (disk full, I/O)
            dst.execute("ROLLBACK")
        log.warning("spool salvage: the dead-letter table could not be copied: %s", exc)
        return
    dst.execute("COMMIT")


def _valid_dead(r: tuple[Any, ...]) -> bool:
    ints = (r[0], r[1], r[2], r[5], r[6], r[7])
    return (
        all(isinstance(v, int) for v in ints)
        and isinstance(r[3], str)
        and isinstance(r[4], bytes)
        and isinstance(r[8], str)
    )


def _open_damaged(path: Path) -> sqlite3.Connection | None:
    try:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        src.execute("SELECT 1 FROM outbox NOT INDEXED LIMIT 1").fetchall()
    except sqlite3.DatabaseError:
        return None  # not a database at all, or the schema page itself is gone
    return src


def _move(src: Path, dst: Path) -> None:
    if src.exists():
        src.rename(dst)


def salvage(
    path: Path, why: str, *, timeout_s: float, wall_s: float | None = None
) -> SalvageReport:
    """Rebuild ``path`` from what can be read of it; the damaged file is moved aside."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if wall_s is None else wall_s))
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    fresh = path.with_name(path.name + ".salvage")
    for p in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
        p.unlink(missing_ok=True)
    dst = connect(fresh, timeout_s)
    try:
        prepare(dst)
        src = _open_damaged(path)
        kept: set[int] = set()
        index, table = _Walk(), _Walk(gave_up=True)
        if src is not None:
            try:
                kept, index, table = _copy(src, dst)
            finally:
                src.close()
        dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        dst.close()
    _move(path, aside)
    _move(Path(f"{path}-wal"), Path(f"{aside}-wal"))
    Path(f"{path}-shm").unlink(missing_ok=True)
    fresh.rename(path)
    Path(f"{fresh}-wal").unlink(missing_ok=True)
    Path(f"{fresh}-shm").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the renames are durable once the directory is
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    lost = [i for i in index.seen if i not in kept]
    report = SalvageReport(
        salvaged=len(kept),
        lost=len(lost),
        lost_alarms=sum(1 for i in lost if index.seen[i] == Priority.ALARM),
        complete=src is not None and not (index.failed or index.gave_up or table.gave_up),
        aside=str(aside),
        why=why,
    )
    log.error(
        "spool %s was damaged (%s): %d row(s) salvaged, %d lost (%d alarms)%s; the damaged"
        " file is kept as %s",
        path,
        why,
        report.salvaged,
        report.lost,
        report.lost_alarms,
        "" if report.complete else ", more may be lost",
        aside,
    )
    return report


def _connect_checked(path: Path, timeout_s: float) -> sqlite3.Connection:
    db = connect(path, timeout_s)
    try:
        check(db)
    except BaseException:
        db.close()
        raise
    return db


def open_checked(
    path: Path, timeout_s: float, wall_s: float
) -> tuple[sqlite3.Connection, SalvageReport | None]:
    """A connection to a file that passed ``quick_check``, salvaging a damaged one first.

    Raises sqlite3/OS errors other than damage (locked, read-only, I/O).
    """
    try:
        return _connect_checked(path, timeout_s), None
    except (sqlite3.DatabaseError, DamagedError) as exc:
        if fault_kind(exc) != "damaged":
            raise
        report = salvage(path, str(exc), timeout_s=timeout_s, wall_s=wall_s)
    return _connect_checked(path, timeout_s), report
