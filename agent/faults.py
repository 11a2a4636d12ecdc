"""Faults of the agent itself, turned into events the centre sees (``event/system``).

The heartbeat carries every fact, but a heartbeat is a snapshot every half minute; a fault
that begins or ends is also an event, sent once per transition, at alarm priority (so it is
kept in memory while the spool's disk refuses writes).  The runner calls :meth:`check` from
its main loop; it only reads facts the stages already keep, so it never blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent import logs
from agent.outbox import Outbox
from agent.spool import Spool

__all__ = ["FaultWatch"]

log = logging.getLogger(__name__)


class FaultWatch:
    """Remembers each watched state and says when it changes."""

    def __init__(self, outbox: Callable[[], Outbox | None], spool: Spool) -> None:
        self._outbox = outbox  # the current one: a reload may replace it
        self.spool = spool
        self._spool_state = "ok"
        self._link_refusal: str | None = None
        self._log_dropped = 0

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

    def _check_spool(self) -> None:
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
