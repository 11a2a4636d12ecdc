"""The local appearance index: one SQLite row per person or vehicle track, kept for hours.

A file of its own next to the spool (never inside it: the spool is the outbox, and nothing
here is ever sent by itself).  The slots a lookout asks about are columns (class, the two
upper and two lower colours with their shares, size class, items, riding, a vehicle's type;
a vehicle's colour is in the upper columns); the rest is JSON,
the histogram and the thumbnail are blobs.  Rows are bounded by age (``retention_h``), by
count (``max_rows``) and by bytes (``max_bytes``), pruned on every insert batch: a delete
through the ``last_ms`` index, then the oldest rows beyond the bounds; freed pages are
returned to the file system (``auto_vacuum=INCREMENTAL``), so a deleted thumbnail is gone
from the disk too.

For the matcher: :meth:`AppearanceIndex.query` (by slots, scored) and
:meth:`AppearanceIndex.similar` (by histogram).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from agent.lookout.colour import similarity
from agent.lookout.record import AppearanceRecord

__all__ = ["AppearanceIndex", "Hit", "Scorer", "Slots"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS appearance (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL, track INTEGER NOT NULL,
    first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
    cls TEXT NOT NULL,
    upper1 TEXT, upper1_p REAL, upper2 TEXT, upper2_p REAL,
    lower1 TEXT, lower1_p REAL, lower2 TEXT, lower2_p REAL,
    size TEXT NOT NULL, items TEXT NOT NULL, riding TEXT,
    attrs TEXT NOT NULL, hist BLOB NOT NULL, thumb BLOB, bytes INTEGER NOT NULL,
    vtype TEXT,
    UNIQUE (camera, track, first_ms)
);
CREATE INDEX IF NOT EXISTS appearance_last ON appearance (last_ms);
"""
COLUMNS: Final = (
    "camera, track, first_ms, last_ms, cls, upper1, upper1_p, upper2, upper2_p, lower1, "
    "lower1_p, lower2, lower2_p, size, items, riding, attrs, hist, thumb, bytes, vtype"
)
N_COLUMNS: Final = COLUMNS.count(",") + 1


@dataclass(frozen=True)
class Slots:
    """What a lookout asks for; an empty slot is not asked.  Colours: any of them."""

    cls: str = "person"
    upper: tuple[str, ...] = ()
    lower: tuple[str, ...] = ()
    size: str | None = None
    items: tuple[str, ...] = ()
    riding: str | None = None
    vtype: str | None = None  # a vehicle's type (cls "vehicle"; its colour is in upper)


@dataclass(frozen=True)
class Hit:
    record: AppearanceRecord
    score: float
    matched: dict[str, float] = field(default_factory=dict)  # per asked slot, 0..1


Scorer = Callable[[Slots, AppearanceRecord], tuple[float, dict[str, float]]]


def _row(rec: AppearanceRecord) -> tuple[Any, ...]:
    def pair(cs: Sequence[tuple[str, float]], k: int) -> tuple[str | None, float | None]:
        return (cs[k][0], cs[k][1]) if len(cs) > k else (None, None)

    attrs = json.dumps(rec.attrs(), separators=(",", ":"))
    items = "," + ",".join(rec.items) + "," if rec.items else ""
    size = len(attrs) + len(rec.histogram) + len(rec.thumbnail or b"") + 200
    return (
        rec.camera, rec.track, rec.first_ms, rec.last_ms, rec.cls,
        *pair(rec.upper, 0), *pair(rec.upper, 1), *pair(rec.lower, 0), *pair(rec.lower, 1),
        rec.size, items, rec.riding, attrs, rec.histogram, rec.thumbnail, size, rec.vtype,
    )  # fmt: skip


def _record(row: sqlite3.Row) -> AppearanceRecord:
    attrs = json.loads(row["attrs"])
    return AppearanceRecord(
        camera=row["camera"],
        track=row["track"],
        cls=row["cls"],
        first_ms=row["first_ms"],
        last_ms=row["last_ms"],
        upper=tuple((str(n), float(p)) for n, p in attrs["upper"]),
        lower=tuple((str(n), float(p)) for n, p in attrs["lower"]),
        items=tuple(i for i in row["items"].split(",") if i),
        riding=row["riding"],
        size=row["size"],
        height_ratio=attrs["height_ratio"],
        heading=attrs["heading"],
        speed=attrs["speed"],
        frames=attrs["frames"],
        histogram=bytes(row["hist"]),
        thumbnail=None if row["thumb"] is None else bytes(row["thumb"]),
        vtype=row["vtype"],
    )


class AppearanceIndex:
    """The index file; safe to share between threads (one connection, one lock)."""

    def __init__(
        self,
        path: str | Path,
        *,
        retention_h: float = 6.0,
        max_rows: int = 20_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.retention_ms = int(retention_h * 3_600_000)
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before the first table
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # losing the last rows is harmless
        self._db.executescript(SCHEMA)
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(appearance)")}
        if "vtype" not in have:  # an index written by an agent before vehicle records
            self._db.execute("ALTER TABLE appearance ADD COLUMN vtype TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def insert(self, records: Iterable[AppearanceRecord]) -> int:
        """Write (or refresh: same camera, track, first seen) records, then prune."""
        rows = [_row(r) for r in records]
        with self._lock:
            with self._db:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO appearance ({COLUMNS}) "  # noqa: S608 - constant
                    f"VALUES ({','.join('?' * N_COLUMNS)})",
                    rows,
                )
                gone = self._prune()
            self._vacuum(gone)
        return len(rows)

    def prune(self) -> int:
        """Apply the bounds now (also done by every insert); how many rows were deleted."""
        with self._lock:
            with self._db:
                gone = self._prune()
            self._vacuum(gone)
        return gone

    def _prune(self) -> int:
        cur = self._db.execute(
            "DELETE FROM appearance WHERE last_ms < ?", (self.now_ms() - self.retention_ms,)
        )
        gone = cur.rowcount
        n, size = self._db.execute("SELECT COUNT(*), TOTAL(bytes) FROM appearance").fetchone()
        if n > self.max_rows or size > self.max_bytes:
            # the oldest go first; by bytes: drop whole rows until under the bound
            keep, total = 0, 0.0
            for (b,) in self._db.execute("SELECT bytes FROM appearance ORDER BY last_ms DESC"):
                if keep >= self.max_rows or total + b > self.max_bytes:
                    break
                keep, total = keep + 1, total + b
            gone += self._db.execute(
                "DELETE FROM appearance WHERE id NOT IN "
                "(SELECT id FROM appearance ORDER BY last_ms DESC LIMIT ?)",
                (keep,),
            ).rowcount
        return gone

    def _vacuum(self, gone: int) -> None:
        # Outside the transaction; executescript steps the pragma to its end (one
        # execute() step frees a single page).
        if gone:
            self._db.executescript("PRAGMA incremental_vacuum;")

    def stats(self) -> dict[str, int]:
        """Rows and bytes in all, and rows per class (``person``, ``vehicle``)."""
        with self._lock:
            n, size = self._db.execute("SELECT COUNT(*), TOTAL(bytes) FROM appearance").fetchone()
            per = self._db.execute("SELECT cls, COUNT(*) FROM appearance GROUP BY cls").fetchall()
        return {"rows": int(n), "bytes": int(size), **{str(c): int(k) for c, k in per}}

    def _rows(self, where: str, args: Sequence[Any]) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(
                f"SELECT * FROM appearance WHERE {where} ORDER BY last_ms DESC",  # noqa: S608
                args,
            ).fetchall()

    def query(
        self,
        slots: Slots,
        since_ms: int,
        until_ms: int | None = None,
        min_score: float = 0.0,
        *,
        score: Scorer | None = None,
    ) -> list[Hit]:
        """Tracks of ``slots.cls`` seen between ``since_ms`` and ``until_ms`` (wall ms),
        scored by ``score`` (default: the lookout's, :func:`agent.lookout.match.lookout_score`),
        best first, those below ``min_score`` left out."""
        if score is None:
            from agent.lookout.match import lookout_score  # it imports Slots from here

            score = lookout_score
        until = self.now_ms() if until_ms is None else until_ms
        rows = self._rows(
            "cls = ? AND last_ms >= ? AND first_ms <= ?", (slots.cls, since_ms, until)
        )
        hits = []
        for row in rows:
            rec = _record(row)
            s, matched = score(slots, rec)
            if s >= min_score:
                hits.append(Hit(rec, round(s, 3), matched))
        hits.sort(key=lambda h: -h.score)
        return hits

    def similar(
        self, histogram: bytes, since_ms: int, k: int = 10, cls: str = "person"
    ) -> list[Hit]:
        """The ``k`` tracks of ``cls`` seen since ``since_ms`` whose histogram is most like
        this one (Bhattacharyya coefficient as the score), best first.  People and vehicles
        are never compared: their histograms are of different parts."""
        want = np.frombuffer(histogram, np.uint8)
        hits = []
        for row in self._rows("cls = ? AND last_ms >= ?", (cls, since_ms)):
            rec = _record(row)
            s = similarity(want, np.frombuffer(rec.histogram, np.uint8))
            hits.append(Hit(rec, round(s, 4), {"histogram": s}))
        hits.sort(key=lambda h: -h.score)
        return hits[:k]
