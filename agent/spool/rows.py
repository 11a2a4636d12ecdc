"""What the spool's parts share: the row, the schema, the clock reading and the fault kinds."""

from __future__ import annotations

import errno
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent.events import Priority
from agent.spool.dead import DEAD_SCHEMA

__all__ = [
    "EXPIRED",
    "LIVE",
    "DamagedError",
    "Now",
    "Row",
    "SpoolRow",
    "connect",
    "fault_kind",
    "kernel_boot_id",
    "prepare",
]

# pri, topic, payload, retain, created (wall ms), expires (wall ms), boot, mono (ms)
Row = tuple[int, str, bytes, int, int, int | None, str | None, int | None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pri INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    expires INTEGER,
    boot TEXT,
    mono INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (pri, id);
CREATE INDEX IF NOT EXISTS outbox_retained ON outbox (topic) WHERE retain = 1;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

# A row's age is measured on the monotonic clock when it was put during this boot of the
# machine, and on the wall clock otherwise. A row whose wall time lies in the future (the
# clock stepped back since, or was wrong then) has an unknown age: it is never expired by
# age, only evicted by the row and byte bounds (telemetry goes first there).
EXPIRED = (
    "COALESCE(expires IS NOT NULL AND CASE WHEN boot = :boot"
    " THEN :mono - mono >= expires - created ELSE :wall >= expires END, 0)"
)
LIVE = f"NOT {EXPIRED}"


class DamagedError(Exception):
    """``PRAGMA quick_check`` found the file damaged."""


@dataclass(frozen=True, slots=True)
class SpoolRow:
    """A row handed to the link; ``id`` is negative for an alarm held in memory."""

    id: int
    priority: Priority
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class Now:
    """One reading of both clocks, in milliseconds, and the machine's boot id."""

    wall_ms: int
    mono_ms: int
    boot: str

    def params(self) -> dict[str, object]:
        return {"wall": self.wall_ms, "mono": self.mono_ms, "boot": self.boot}


def kernel_boot_id() -> str:
    """The machine's boot id: the monotonic clock is comparable only within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "proc-" + secrets.token_hex(8)  # then each process is its own boot: safe


def fault_kind(exc: BaseException) -> str:
    """``busy`` (another connection holds the lock), ``full``, ``damaged`` or ``io``."""
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", None) or ""
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return "busy"
        if name.startswith("SQLITE_FULL"):
            return "full"
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return "damaged"
        return "io"  # SQLITE_IOERR_*, SQLITE_READONLY*, SQLITE_CANTOPEN, a closed connection
    if isinstance(exc, DamagedError):
        return "damaged"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "full"
    return "io"


def connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous=FULL`` (a commit is on disk when it returns)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout_s)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error:
        db.close()
        raise
    return db


def prepare(db: sqlite3.Connection) -> None:
    """Create the schema, or bring an older file's up to date (adds ``boot`` and ``mono``,
    and the ``dead`` table), keeping every row."""
    have = {r[1] for r in db.execute("PRAGMA table_info(outbox)")}
    if have and "boot" not in have:
        db.execute("ALTER TABLE outbox ADD COLUMN boot TEXT")
        db.execute("ALTER TABLE outbox ADD COLUMN mono INTEGER")
    db.executescript(SCHEMA + DEAD_SCHEMA)
