"""Faults of the agent itself, turned into events the centre sees (``event/system``).

The heartbeat carries every fact, but a heartbeat is a snapshot every half minute; a fault
that begins or ends is also an event, sent once per transition, at alarm priority (so it is
kept in memory while the spool's disk refuses writes).  The runner calls :meth:`check` from
its main loop; it only reads facts the stages already keep, so it never blocks.

A part whose faults come and go (``FLAP_CHANGES`` transitions within ``FLAP_WINDOW_S``)
says ``flapping`` once and then nothing until it has been quiet (``flapping_cleared``, then
its state if the centre was last told otherwise; :mod:`agent.flap`).  The link is a fault
when the broker refuses it, or when it has had no connection for ``LINK_DOWN_S`` or
``LINK_ATTEMPTS`` failed attempts (why: timeout, dns, unreachable, tls...); ``cleared`` when
it connects again.  Both are sent through the spool, so they arrive once the link is back:
the centre learns when and why.  A connection to another broker than the last one is a
``notice``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from agent import logs
from agent.flap import FlapFilter, FlapGuard, Told
from agent.outbox import Outbox
from agent.spool import Spool
from agent.spool.dead import DeadNote

__all__ = ["FaultWatch"]

EVICTED_EVERY_S = 10.0
LOG_EVERY_S = 60.0  # a stalled journal drops lines for a while: one notice a minute at most
MAX_RANGES = 200  # an event stays small; the centre's reorder window covers any rest
DEAD_NOTICES = 10  # set-aside rows said one by one per DEAD_WINDOW_S; the rest in one sum
DEAD_WINDOW_S = 60.0
FLAP_CHANGES = 6  # three faults that came and went...
FLAP_WINDOW_S = 600.0  # ...within ten minutes: flapping, until ten quiet minutes
LINK_DOWN_S = 30.0
TAKEOVER_EVERY_S = 600.0  # at most one takeover notice per ten minutes
LINK_ATTEMPTS = 5

log = logging.getLogger(__name__)


class FaultWatch:
    """Remembers each watched state and says when it changes."""

    def __init__(self, outbox: Callable[[], Outbox | None], spool: Spool) -> None:
        self._outbox = outbox  # the current one: a reload may replace it
        self.spool = spool
        # Per part, its state as a flap filter: "spool", "link", and "broker" (the broker
        # the link is on; its changes are failovers, said as link notices).
        self._parts: dict[str, FlapFilter] = {}
        self._down: dict[str, Any] = {}  # the link's facts when it was last seen down
        self._failovers = 0
        self._took_over = 0  # the link's took_over when last said
        self._took_over_said = -math.inf
        self._log_dropped = 0
        self._log_said = -math.inf
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

    def check(self, link_facts: dict[str, Any] | None = None, now: float | None = None) -> None:
        """Compare with what was last said; one event per change (a flapping part: one)."""
        now = time.monotonic() if now is None else now
        for part in list(self._parts):
            self._tell(part, self._parts[part].tick(now))
        self._check_spool(now)
        if link_facts is not None:
            self._check_link(link_facts, now)
        self._check_log(now)

    def _change(self, part: str, state: str, told: Told) -> None:
        """``part`` is now in ``state``; ``told`` is what says so, sent unless it flaps."""
        f = self._parts.get(part)
        if f is None:
            show = _on_broker if part == "broker" else None
            guard = FlapGuard(FLAP_CHANGES, FLAP_WINDOW_S)
            f = self._parts[part] = FlapFilter(guard, "ok", show)
        self._tell(part, f.change(state, told))

    def _tell(self, part: str, told: list[Told]) -> None:
        if part != "broker":
            for t in told:
                self.say(t.ev, part, t.why or t.ev, t.data)
            return
        # Failovers are link notices; when they flap, the centre must tell that from a
        # connection that comes and goes (also ``what: link``): the why and data say so.
        for t in told:
            why, data = t.why or t.ev, t.data
            if t.ev in ("flapping", "flapping_cleared"):
                why, data = f"failovers between brokers: {why}", {**(data or {}), "of": "broker"}
            self.say(t.ev, "link", why, data)

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

    def _check_spool(self, now: float) -> None:
        self._check_evicted(now)
        self._check_dead(now)
        report = self.spool.take_salvage_report()
        if report is not None:
            ev = "fault" if report.lost else "notice"
            self.say(ev, "spool", f"damaged spool file salvaged: {report.why}", report.facts())
        state = self.spool.state
        part = self._parts.get("spool")
        if state == (part.state if part is not None else "ok"):
            return
        if state == "ok":
            told = Told("cleared", "the spool takes writes again", now)
        else:
            error = self.spool.last_error
            why = f"spool {state}: {error}" if error else f"spool {state}"
            told = Told("fault", why, now, {"state": state})
        self._change("spool", state, told)

    def _check_link(self, facts: dict[str, Any], now: float) -> None:
        self._check_takeover(facts, now)
        state = facts.get("state")
        if state == "connected":
            self._link_up(facts, now)
        elif state == "refused":
            # Sent when the link works again: the centre learns why it was refused.
            self._down = facts
            why = f"the broker refused the link: {facts.get('refusal')}"
            self._change("link", "down", Told("fault", why, now, _down_data(facts)))
        elif facts.get("attempts", 0) and _long(facts):
            self._down = facts
            why = f"no connection for {facts.get('down_s', 0):.0f} s"
            why += f" ({facts['attempts']} failed attempts), {facts.get('why')}: "
            told = Told("fault", why + str(facts.get("detail")), now, _down_data(facts))
            self._change("link", "down", told)

    def _link_up(self, facts: dict[str, Any], now: float) -> None:
        down = self._down
        if down:
            self._down = {}
            why = f"connected to {facts.get('broker')} after {down.get('down_s', 0):.0f} s"
            why += f" without a connection ({down.get('attempts')} failed attempts)"
            self._change("link", "ok", Told("cleared", why, now, {"broker": facts.get("broker")}))
        failovers = int(facts.get("failovers") or 0)
        if failovers > self._failovers:
            was, broker = facts.get("failover_from"), str(facts.get("broker"))
            why = f"moved to broker {broker} (from {was})"
            told = Told("notice", why, now, {"broker": broker, "from": was})
            self._change("broker", broker, told)
        self._failovers = failovers  # a reload's new link counts from 0 again

    def _check_takeover(self, facts: dict[str, Any], now: float) -> None:
        # Another unit with this client id (a cloned card) takes the session over and over:
        # each takeover ends a connection that worked, so no attempt count ever makes it a
        # link fault; it is a notice of its own, at most one per TAKEOVER_EVERY_S.
        took = int(facts.get("took_over") or 0)
        self._took_over = min(self._took_over, took)  # a reload's new link counts from 0
        if took > self._took_over and now - self._took_over_said >= TAKEOVER_EVERY_S:
            n, self._took_over, self._took_over_said = took - self._took_over, took, now
            broker = facts.get("broker")
            why = f"session taken over {n} time(s) at {broker}: another unit uses this client id?"
            self.say("notice", "link", why, {"took_over": took, "broker": broker})

    def _check_log(self, now: float) -> None:
        dropped = logs.stats().get("dropped", 0)
        if dropped > self._log_dropped and now - self._log_said >= LOG_EVERY_S:
            why = f"{dropped - self._log_dropped} log lines dropped: the journal did not keep up"
            self.say("notice", "log", why, {"dropped": dropped})
            self._log_dropped, self._log_said = dropped, now


def _on_broker(told: Told) -> str:
    """How a failover episode's end names where the link is: ``on host:port``."""
    broker = (told.data or {}).get("broker")
    return f"on {broker}" if broker else told.ev


def _long(facts: dict[str, Any]) -> bool:
    """The link has been down long enough, or failed often enough, to be a fault."""
    down = facts.get("down_s") or 0.0
    return bool(down >= LINK_DOWN_S or facts.get("attempts", 0) >= LINK_ATTEMPTS)


def _down_data(facts: dict[str, Any]) -> dict[str, Any]:
    keys = ("why", "broker", "down_s", "attempts", "file")
    return {k: facts.get(k) for k in keys if facts.get(k) is not None}


def _ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct seqs as inclusive ranges: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for s in seqs:
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out
