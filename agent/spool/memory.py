"""Alarms held in memory while the disk refuses writes.

Only ALARM-priority rows are admitted, and the newest telemetry row per topic (the
heartbeat: it is how the centre learns that the spool is degraded, so it must still go out;
each one replaces the previous, so it never takes more than one place per topic).
Everything else is refused while degraded, so no alarm is dropped for something less
important.  When the queue is full the
newest alarm is refused and counted: the first alarms of an incident are the ones that
matter, and retained state rows replace their own older value instead of taking room.
Rows get negative ids, so they never collide with the file's ids in the link's tables.
"""

from __future__ import annotations

from agent.events import Priority
from agent.spool.rows import Row, SpoolRow

__all__ = ["MemoryQueue"]


class MemoryQueue:
    """A bounded, ordered queue of alarm rows with ids -1, -2, ..."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.overflow = 0
        self.coalesced = 0
        self._rows: dict[int, Row] = {}  # insertion order is the order of sending
        self._next = -1

    def put(self, row: Row) -> int | None:
        """Hold ``row``; its (negative) id, or None when the queue is full (counted)."""
        telemetry = row[0] == Priority.TELEMETRY
        if row[3] or telemetry:
            old = [
                i
                for i, r in self._rows.items()
                if r[1] == row[1] and (r[3] if row[3] else r[0] == Priority.TELEMETRY)
            ]
            for i in old:
                del self._rows[i]
            self.coalesced += len(old)
        if len(self._rows) >= self.limit:
            self.overflow += 1
            return None
        rowid, self._next = self._next, self._next - 1
        self._rows[rowid] = row
        return rowid

    def rows(self, exclude: set[int], limit: int) -> list[SpoolRow]:
        """Up to ``limit`` held rows not in ``exclude``, oldest first."""
        out: list[SpoolRow] = []
        for i, r in self._rows.items():
            if len(out) >= limit:
                break
            if i not in exclude:
                out.append(SpoolRow(i, Priority(r[0]), r[1], r[2], bool(r[3])))
        return out

    def ack(self, ids: list[int]) -> list[int]:
        """Drop the held rows among ``ids``; returns the others that are file ids (positive)."""
        for i in ids:
            self._rows.pop(i, None)
        return [i for i in ids if i > 0]

    def items(self) -> list[tuple[int, Row]]:
        """Every held row with its id, oldest first (to move them to disk)."""
        return list(self._rows.items())

    def clear(self) -> None:
        self._rows.clear()

    def nbytes(self) -> int:
        return sum(len(r[2]) for r in self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)
