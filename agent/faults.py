"""Faults of the agent itself, turned into events the centre sees (``event/system``).

The heartbeat carries every fact, but a heartbeat is a snapshot every half minute; a fault
that begins or ends is also an event, sent once per transition, at alarm priority (so it is
kept in memory while the spool's disk refuses writes).  The runner calls :meth:`check` from
its main loop; it only reads facts the stages already keep, so it never blocks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from agent import logs
from agent.outbox import Outbox
from agent.spool import Spool
from agent.spool.dead import DeadNote

__all__ = ["FaultWatch"]

EVICTED_EVERY_S = 10.0
MAX_RANGES = 200  # an event stays small; the centre's reorder window covers any rest
DEAD_NOTICES = 10  # set-aside rows said one by one per DEAD_WINDOW_S; the rest in one sum
DEAD_WINDOW_S = 60.0

log = logging.getLogger(__name__)


class FaultWatch:
    """Remembers each watched state and says when it changes."""

    def __init__(self, outbox: Callable[[], Outbox | None], spool: Spool) -> None:
        self._outbox = outbox  # the current one: a reload may replace it
        self.spool = spool
        self._spool_state = "ok"
        self._link_refusal: str | None = None
        self._log_dropped = 0
        self._evicted: list[int] = []  # seqs of this boot dropped by the spool, not yet said
        self._evicted_said = 0.0
        self._dead_window = -DEAD_WINDOW_S  # start of the current notice window (monotonic)
        self._dead_said = 0  # notices said in it
        self._dead_unsaid = 0  # rows set aside and not said one by one

    def say(self, ev: str, what: str, why: str, data: dict[str, Any] | None = None) -> None:
        """Send one system event (and log it)."""
        out = self._outbox()
        level = logging.ERROR if ev == "fault" else logging.INFO
        log.log(level, "%s %s: %s", what, ev, why)
        if out is not None:
            out.emit(out.stamper.system(ev=ev, what=what, why=why[:500], data=data))

    def check(self, link_facts: dict[str, Any] | None = None) -> None:
        """Compare with what was last said; one event per change."""
        self._check_spool()
        if link_facts is not None:
            self._check_link(link_facts)
        self._check_log()

    def _check_evicted(self, now: float) -> None:
        # Which seqs are gone for good, so that the centre tells loss from delay at once.
        # Said at most every EVICTED_EVERY_S, all ranges together.
        out = self._outbox()
        boot = out.stamper.boot_id if out is not None else None
        self._evicted += [seq for b, seq in self.spool.take_evicted() if b == boot]
        if not self._evicted or now - self._evicted_said < EVICTED_EVERY_S:
            return
        ranges = _ranges(sorted(set(self._evicted)))
        self._evicted, self._evicted_said = [], now
        n = sum(b - a + 1 for a, b in ranges)
        why = f"the spool dropped {n} event(s) to make room or at their time to live"
        self.say("notice", "spool", why, {"dropped": [list(r) for r in ranges[:MAX_RANGES]]})

    def _check_dead(self, now: float) -> None:
        # One notice per set-aside row, at most DEAD_NOTICES a minute; the rest are summed up
        # in one notice when the next window opens (the heartbeat's spool.dead counts them).
        notes, missed = self.spool.take_dead()
        self._dead_unsaid += missed
        if now - self._dead_window >= DEAD_WINDOW_S:
            self._dead_window, self._dead_said = now, 0
        for note in notes:
            if note.own_notice:  # such a notice set aside: saying it again could loop
                continue
            if self._dead_said < DEAD_NOTICES:
                self._dead_said += 1
                self._say_dead(note)
            else:
                self._dead_unsaid += 1
        if self._dead_unsaid and self._dead_said < DEAD_NOTICES:
            self._dead_said += 1
            n, self._dead_unsaid = self._dead_unsaid, 0
            why = f"set aside {n} more message(s) the broker will never take (not said one by one)"
            self.say("notice", "spool", why, {"dead_unsaid": n})

    def _say_dead(self, note: DeadNote) -> None:
        # Small on purpose (no payload, topic and reason cut): it must never be poison itself.
        kind = f"{note.event['k']} event, " if "k" in note.event else ""
        why = (
            f"set aside a message on {note.topic[:200]} ({kind}{note.size} bytes):"
            f" {note.reason[:150]}; {note.kept}"
        )
        data: dict[str, Any] = {
            "dead": {"topic": note.topic[:200], "pri": note.priority, "bytes": note.size,
                     "reason": note.reason[:200], "kept": note.kept, "row": note.row_id},
        }  # fmt: skip
        if "id" in note.event:
            data["dead"]["event"] = note.event["id"]
        out = self._outbox()
        seq = note.event.get("seq")
        if out is not None and note.event.get("boot") == out.stamper.boot_id and seq:
            data["dropped"] = [[seq, seq]]  # the centre counts it lost at once, not late
        self.say("notice", "spool", why, data)

    def _check_spool(self) -> None:
        now = time.monotonic()
        self._check_evicted(now)
        self._check_dead(now)
        report = self.spool.take_salvage_report()
        if report is not None:
            ev = "fault" if report.lost else "notice"
            self.say(ev, "spool", f"damaged spool file salvaged: {report.why}", report.facts())
        state = self.spool.state
        if state != self._spool_state:
            error = self.spool.last_error
            if state == "ok":
                self.say("cleared", "spool", "the spool takes writes again", None)
            else:
                why = f"spool {state}: {error}" if error else f"spool {state}"
                self.say("fault", "spool", why, {"state": state})
            self._spool_state = state

    def _check_link(self, facts: dict[str, Any]) -> None:
        refusal = facts.get("refusal") if facts.get("state") == "refused" else None
        if refusal != self._link_refusal:
            if refusal is not None:
                # Sent when the link works again: the centre learns why it was refused.
                self.say("fault", "link", f"the broker refused the link: {refusal}", None)
            else:
                self.say("cleared", "link", "the link is accepted again", None)
            self._link_refusal = refusal

    def _check_log(self) -> None:
        dropped = logs.stats().get("dropped", 0)
        if dropped > self._log_dropped:
            why = f"{dropped - self._log_dropped} log lines dropped: the journal did not keep up"
            self.say("notice", "log", why, {"dropped": dropped})
            self._log_dropped = dropped


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct seqs as inclusive ranges: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out
