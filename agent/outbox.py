"""The one door through which stages send anything: stamp, encode, spool.

Stages (bell, vision, commands, health) hold an :class:`Outbox`; they never see the
broker.  Every message is durable in the spool when ``emit`` returns, and the link
publishes it from there.  Vision holds an :class:`EventSink`, the Outbox's interface: in
the vision process, the sink is the socket to the agent, whose Outbox spools for it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
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
from agent.logs import Throttle
from agent.spool import Spool, SpoolError

__all__ = ["EventSink", "Outbox"]

PACKET_OVERHEAD = 64  # fixed header, packet id, properties of a QoS 1 PUBLISH, with room

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
    ) -> bool | None:
        """Replace the retained ``state/<name>`` message (False: not kept)."""
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
        self._log = Throttle(60.0)  # a degraded spool refuses every object event: log rarely
        # The broker's maximum packet size once the link has learnt it (MQTT 5 CONNACK).
        self.packet_limit: Callable[[], int | None] = lambda: None
        self.shrunk = 0

    def _put(self, what: str, topic: str, body: bytes, pri: Priority, retain: bool = False) -> bool:
        # The spool raises only SpoolError; the rest is here so that a bug there cannot end
        # the bell thread through this door, which promises never to raise.
        try:
            self.spool.put(topic, body, pri, retain=retain)
        except (SpoolError, sqlite3.Error, OSError) as exc:
            self.failed += 1
            if self._log.ready(what.split(" ", maxsplit=1)[0]):
                log.error("could not spool %s (%d failed so far): %s", what, self.failed, exc)
            return False
        return True

    def emit(self, event: Event) -> bool:
        """Spool an event; True once it is stored (durable, or an alarm held in memory while
        the disk refuses writes). Never raises: a refusal is counted and logged."""
        what = f"{event.k} event {event.id}"
        return self._put(what, self.topics.event(event.k), encode(event), event.pri)

    def state(
        self, name: str, state: str, since: int, detail: dict[str, Any] | None = None
    ) -> bool:
        """Replace the retained ``state/<name>`` message; False when the spool refused it."""
        msg = StateMessage(
            dev=self.stamper.device_id, ts=now_ms(), state=state, since=since, detail=detail
        )
        # The bell's state is an alarm's; a camera's is not (a flapping stream must not
        # crowd alarms out of a full spool).
        pri = Priority.ALARM if name == "bell" else Priority.RULE
        return self._put(f"state/{name}", self.topics.state(name), encode(msg), pri, True)

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        """Spool a JPEG on ``snapshot/<event_id>`` (droppable under pressure), made smaller
        first when the broker has said it takes no packet that large."""
        topic = self.topics.snapshot(event_id)
        limit = self.packet_limit()
        room = None if limit is None else limit - len(topic) - PACKET_OVERHEAD
        if room is not None and len(jpeg) > room:
            from agent.video.snapshot import SnapshotError, shrink_jpeg  # rare: cv2 on demand

            try:
                jpeg = shrink_jpeg(jpeg, room)
                self.shrunk += 1
            except SnapshotError as exc:
                log.error(
                    "snapshot %s does not fit the broker's %d bytes: %s", event_id, limit, exc
                )
                return
        self._put(f"snapshot {event_id}", topic, jpeg, Priority.MEDIA)
