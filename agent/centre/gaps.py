"""Sequence gaps that mean losses, and only losses.

A pole sends by priority, so a rule event may overtake an object event stamped before it: a
missing ``seq`` is first *pending*; only when it has not arrived within the reorder window is
it *lost*.  A lost seq that still arrives is *late*.  A pole that reports its own evictions
(``system`` notice ``what: spool`` with ``data.dropped``) makes those seqs lost at once.

Pure and clock-injected: the monitor and the ingest's gap sweeper share it, the tests drive it
with a fake clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DEFAULT_WINDOW_S", "Gap", "SeqTracker", "dropped_ranges"]

DEFAULT_WINDOW_S = 30.0

Span = tuple[int, int, float]  # first seq, last seq, deadline (pending) or forget-after (lost)


@dataclass(frozen=True)
class Gap:
    """A range of one boot's seqs that was lost, or one seq that came after all."""

    dev: str
    boot: str
    first: int
    last: int
    state: Literal["lost", "late"]
    why: Literal["window", "dropped_by_pole", "arrived"]


@dataclass
class _Boot:
    high: int
    seen_at: float
    pending: list[Span] = field(default_factory=list)
    lost: list[Span] = field(default_factory=list)


def _cut(spans: list[Span], first: int, last: int) -> tuple[list[Span], list[Span]]:
    """(the spans outside first..last, the pieces inside it)."""
    kept: list[Span] = []
    taken: list[Span] = []
    for a, b, t in spans:
        if b < first or a > last:
            kept.append((a, b, t))
            continue
        if a < first:
            kept.append((a, first - 1, t))
        if b > last:
            kept.append((last + 1, b, t))
        taken.append((max(a, first), min(b, last), t))
    return kept, taken


def dropped_ranges(data: object) -> list[tuple[int, int]]:
    """The ``[[from_seq, to_seq], ...]`` of a spool notice's ``data.dropped``; [] if malformed."""
    if not isinstance(data, dict):
        return []
    raw = data.get("dropped")
    if not isinstance(raw, list):
        return []
    return [
        (int(item[0]), int(item[1]))
        for item in raw
        if isinstance(item, list | tuple)
        and len(item) == 2
        and all(isinstance(x, int) and not isinstance(x, bool) for x in item)
        and 1 <= item[0] <= item[1]
    ]


class SeqTracker:
    """Per (device, boot): the highest seq seen, the missing ones pending, the recently lost.

    ``see`` each event's seq, call ``expire`` now and then (once a second is plenty); both
    return the :class:`Gap` outcomes to report.  A boot first seen while the tracker is younger
    than the window starts at that seq (what came before was not ours to see); one first seen
    later is expected from seq 1, since a new boot of a pole we listen to starts there.
    """

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        remember_lost_s: float = 3600.0,
        forget_idle_s: float = 6 * 3600.0,
    ) -> None:
        self.window_s = window_s
        self.clock = clock
        self.remember_lost_s = remember_lost_s
        self.forget_idle_s = forget_idle_s
        self.started = clock()
        self._boots: dict[tuple[str, str], _Boot] = {}

    def _boot(self, dev: str, boot: str, seq: int, now: float) -> _Boot:
        b = self._boots.get((dev, boot))
        if b is None:
            warm = now - self.started >= self.window_s
            b = self._boots[dev, boot] = _Boot(high=0 if warm else seq - 1, seen_at=now)
        b.seen_at = now
        return b

    def see(self, dev: str, boot: str, seq: int) -> list[Gap]:
        """One event arrived; a ``late`` Gap if it had been reported lost."""
        now = self.clock()
        b = self._boot(dev, boot, seq, now)
        if seq > b.high:
            if seq > b.high + 1:
                b.pending.append((b.high + 1, seq - 1, now + self.window_s))
            b.high = seq
            return []
        b.pending, filled = _cut(b.pending, seq, seq)
        if filled:
            return []
        b.lost, late = _cut(b.lost, seq, seq)
        return [Gap(dev, boot, seq, seq, "late", "arrived")] if late else []

    def dropped(self, dev: str, boot: str, ranges: Iterable[tuple[int, int]]) -> list[Gap]:
        """The pole says it dropped these seqs: lost at once, whatever we knew of them."""
        now = self.clock()
        out: list[Gap] = []
        for first, last in ranges:
            b = self._boot(dev, boot, first, now)
            if first > b.high + 1:
                b.pending.append((b.high + 1, first - 1, now + self.window_s))
            b.high = max(b.high, last)
            b.pending, _ = _cut(b.pending, first, last)
            b.lost, _ = _cut(b.lost, first, last)
            b.lost.append((first, last, now + self.remember_lost_s))
            out.append(Gap(dev, boot, first, last, "lost", "dropped_by_pole"))
        return out

    def expire(self) -> list[Gap]:
        """Pending seqs whose window has passed become lost; idle boots are forgotten."""
        now = self.clock()
        out: list[Gap] = []
        for key, b in list(self._boots.items()):
            due = [s for s in b.pending if s[2] <= now]
            if due:
                b.pending = [s for s in b.pending if s[2] > now]
                for a, z, _ in sorted(due):
                    out.append(Gap(key[0], key[1], a, z, "lost", "window"))
                    b.lost.append((a, z, now + self.remember_lost_s))
            b.lost = [s for s in b.lost if s[2] > now]
            if not b.pending and now - b.seen_at > self.forget_idle_s:
                del self._boots[key]
        return out

    @property
    def pending(self) -> int:
        """How many seqs are missing but still inside their window."""
        return sum(z - a + 1 for b in self._boots.values() for a, z, _ in b.pending)
