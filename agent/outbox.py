"""The one door through which stages send anything: stamp, encode, spool.

Stages (bell, vision, commands, health) hold an :class:`Outbox`; they never see the
broker.  Every message is durable in the spool when ``emit`` returns, and the link
publishes it from there.  Vision holds an :class:`EventSink`, the Outbox's interface: in
the vision process, the sink is the socket to the agent, whose Outbox spools for it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from agent.events import (
    Event,
    EventStamper,
    Priority,
    StateMessage,
    Topics,
    encode,
    now_ms,
)
from agent.spool import Spool, SpoolError

__all__ = ["EventSink", "Outbox"]

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where a stage's events, states and snapshots go; implemented by :class:`Outbox`."""

    @property
    def stamper(self) -> EventStamper:
        """Makes the events this sink takes (ids, ``seq``, time, priority)."""
        ...

    def emit(self, event: Event) -> bool:
        """Take an event; False when it was not kept (counted and logged by the sink)."""
        ...

    def state(
        self, name: str, state: str, since: int, detail: dict[str, Any] | None = None
    ) -> None:
        """Replace the retained ``state/<name>`` message."""
        ...

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        """Send a JPEG that belongs to the event ``event_id``."""
        ...


class Outbox:
    """The :class:`EventSink` of the agent: every message into the spool."""

    def __init__(self, spool: Spool, topics: Topics, stamper: EventStamper) -> None:
        self.spool = spool
        self.topics = topics
        self.stamper = stamper
        self.failed = 0

    def emit(self, event: Event) -> bool:
        """Spool an event; True once it is durable. Never raises: a full disk is logged."""
        try:
            self.spool.put(self.topics.event(event.k), encode(event), event.pri)
        except SpoolError as exc:
            self.failed += 1
            log.error("could not spool %s event %s: %s", event.k, event.id, exc)
            return False
        return True

    def state(
        self, name: str, state: str, since: int, detail: dict[str, Any] | None = None
    ) -> None:
        """Replace the retained ``state/<name>`` message."""
        msg = StateMessage(
            dev=self.stamper.device_id, ts=now_ms(), state=state, since=since, detail=detail
        )
        try:
            self.spool.put(self.topics.state(name), encode(msg), Priority.ALARM, retain=True)
        except SpoolError as exc:
            self.failed += 1
            log.error("could not spool state/%s: %s", name, exc)

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        """Spool a JPEG on ``snapshot/<event_id>`` (droppable under pressure)."""
        try:
            self.spool.put(self.topics.snapshot(event_id), jpeg, Priority.MEDIA)
        except SpoolError as exc:
            self.failed += 1
            log.error("could not spool snapshot %s: %s", event_id, exc)
