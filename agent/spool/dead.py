"""The dead-letter table: messages the broker will never take, kept for a technician.

A row the link sets aside (larger than the broker's maximum packet size, or one after which
the broker keeps dropping the connection) moves from ``outbox`` to ``dead`` in one
transaction, with its topic, payload, priority, original id, the reason and the time.  The
table is bounded (the newest ``MAX_DEAD_ROWS`` rows and ``MAX_DEAD_BYTES`` of payload; the
newest row is always kept); older rows are dropped and counted (``dead.dropped``).  It lives
in the spool's own file, created in place on an older file (``CREATE TABLE IF NOT EXISTS``).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEAD_SCHEMA",
    "MAX_DEAD_BYTES",
    "MAX_DEAD_ROWS",
    "DeadLetters",
    "DeadNote",
    "DeadRow",
    "move",
    "read_dead",
    "trim",
]

MAX_DEAD_ROWS = 1000
MAX_DEAD_BYTES = 16 * 1024 * 1024
MAX_PENDING = 1000  # moves waiting for a disk that refuses writes; the link skips them anyway
MAX_NOTES = 100  # notes not yet taken for a notice; beyond, only counted
DROPPED = "dead.dropped"  # the counters row

DEAD_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    row_id INTEGER NOT NULL,
    pri INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    created INTEGER NOT NULL,
    dead_at INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""

# Events are encoded {"v":1,"id":…,"dev":…,"boot":…,"seq":…,"ts":…,"pri":…,"k":…}: the head
# names the event without parsing a payload that may be megabytes.
_HEAD = 512
_FIELDS = {
    "id": re.compile(rb'"id":"([0-9A-Za-z_-]{1,64})"'),
    "boot": re.compile(rb'"boot":"([0-9A-Za-z_-]{1,64})"'),
    "seq": re.compile(rb'"seq":(\d{1,18})[,}]'),
    "k": re.compile(rb'"k":"([a-z_]{1,32})"'),
}
_OWN_NOTICE = b'"k":"system","ev":"notice","what":"spool","why":"set aside'


@dataclass(frozen=True, slots=True)
class DeadNote:
    """One set-aside row, for the system notice (never the payload: it stays small)."""

    row_id: int
    topic: str
    priority: int
    size: int
    reason: str
    kept: str  # "kept", "pending" (the disk refuses writes now), or why it was not kept
    event: dict[str, Any]  # id, boot, seq, k of an event; {} for anything else
    own_notice: bool  # a notice about a set-aside row, itself set aside: not said again

    @classmethod
    def of(
        cls, row_id: int, topic: str, pri: int, payload: bytes, *, reason: str, kept: str
    ) -> DeadNote:
        head = payload[:_HEAD]
        event: dict[str, Any] = {}
        if head.startswith(b'{"v":1,'):
            for name, pattern in _FIELDS.items():
                m = pattern.search(head)
                if m is not None:
                    text = m.group(1).decode()
                    event[name] = int(text) if name == "seq" else text
        return cls(row_id, topic, pri, len(payload), reason, kept, event, _OWN_NOTICE in head)


@dataclass(frozen=True, slots=True)
class DeadRow:
    """A row of the dead table as a technician sees it (without its payload)."""

    id: int
    row_id: int
    priority: int
    topic: str
    size: int
    retain: bool
    created_ms: int
    dead_ms: int
    reason: str


class DeadLetters:
    """The spool's side of set-aside rows that is not in the file: moves waiting for the disk,
    rows that could not be kept (held only in memory), and the notes not yet said."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[str, int]] = {}  # row id -> reason, when (wall ms)
        self.unkept = 0  # set aside but only in memory: dropped (since start)
        self._notes: list[DeadNote] = []
        self._missed = 0

    def wait(self, row_id: int, reason: str, now_ms: int) -> bool:
        """Remember a move for when the disk takes writes; False past the bound."""
        if len(self.pending) >= MAX_PENDING and row_id not in self.pending:
            return False
        self.pending[row_id] = (reason, now_ms)
        return True

    def note(self, note: DeadNote) -> None:
        if len(self._notes) < MAX_NOTES:
            self._notes.append(note)
        else:
            self._missed += 1

    def take(self) -> tuple[list[DeadNote], int]:
        """The notes since the last call, and how many more were not kept."""
        notes, missed = self._notes, self._missed
        self._notes, self._missed = [], 0
        return notes, missed


def move(db: sqlite3.Connection, row_id: int, reason: str, now_ms: int) -> bool:
    """Copy outbox row ``row_id`` into ``dead`` (inside the caller's transaction).

    False when there is no such row (acked or dropped meanwhile).  The caller deletes it
    from ``outbox`` in the same transaction.
    """
    cur = db.execute(
        "INSERT INTO dead (row_id, pri, topic, payload, retain, created, dead_at, reason)"
        " SELECT id, pri, topic, payload, retain, created, ?, ? FROM outbox WHERE id = ?",
        (now_ms, reason[:500], row_id),
    )
    return cur.rowcount > 0


def trim(db: sqlite3.Connection, max_rows: int, max_bytes: int) -> tuple[int, int]:
    """Drop the oldest dead rows past the bounds (the newest always stays); how many were
    dropped, and how many are kept."""
    rows = db.execute("SELECT id, LENGTH(payload) FROM dead ORDER BY id DESC").fetchall()
    keep, total = 0, 0
    for _, size in rows:
        if keep and (keep >= max_rows or total + size > max_bytes):
            break
        keep += 1
        total += size
    if keep >= len(rows):
        return 0, keep
    oldest_kept = rows[keep - 1][0]
    return int(db.execute("DELETE FROM dead WHERE id < ?", (oldest_kept,)).rowcount), keep


def count(db: sqlite3.Connection) -> int:
    """Rows in the dead table (0 before the table exists)."""
    try:
        (n,) = db.execute("SELECT COUNT(*) FROM dead").fetchone()
    except sqlite3.OperationalError:  # an older file opened read-only: no table yet
        return 0
    return int(n)


def read_dead(path: Path, timeout_s: float = 5.0) -> tuple[list[DeadRow], int]:
    """The dead rows (oldest first) and how many were dropped past the bound.

    Opens the file read-only (SQLite URI ``mode=ro``): a running agent is not disturbed and
    nothing is changed.  Raises sqlite3.Error when the file cannot be read.
    """
    uri = Path(path).absolute().as_uri() + "?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=timeout_s)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "outbox" not in tables:
            raise sqlite3.DatabaseError(f"{path} is not a spool file (no outbox table)")
        if "dead" not in tables:
            return [], 0
        rows = [
            DeadRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8])
            for r in db.execute(
                "SELECT id, row_id, pri, topic, LENGTH(payload), retain, created, dead_at,"
                " reason FROM dead ORDER BY id"
            )
        ]
        found = db.execute("SELECT value FROM counters WHERE name = ?", (DROPPED,)).fetchone()
        return rows, int(found[0]) if found else 0
    finally:
        db.close()
