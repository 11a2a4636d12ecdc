"""Helpers shared by the spool tests: fill a spool, read what it would send, read the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from agent.events import Priority
from agent.spool import Spool

P = Priority


def fill(spool: Spool, *pris: Priority, size: int = 10) -> list[int]:
    """Put one row per priority given, payload ``size`` bytes naming its order."""
    ids = []
    for i, pri in enumerate(pris):
        body = f"{pri.name}-{i}".encode().ljust(size, b".")
        ids.append(spool.put(f"t/{pri.name.lower()}", body, pri))
    return ids


def pending(spool: Spool) -> list[tuple[Priority, bytes]]:
    return [(r.priority, r.payload.rstrip(b".")) for r in spool.next_batch(10_000)]


def on_disk(path: Path) -> list[int]:
    """Row ids read with a separate connection, as another process would see them."""
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT id FROM outbox ORDER BY id")]
