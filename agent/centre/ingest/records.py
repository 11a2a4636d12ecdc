"""What one MQTT message means for the centre's tables: pure, no database, no network.

``parse(prefix, topic, payload)`` validates with the contract's models and returns one record;
a payload that does not validate is a :class:`Reject` (counted and logged, never retried).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from agent import events as ev

__all__ = [
    "EventRecord",
    "Ignore",
    "Record",
    "Reject",
    "SnapshotRecord",
    "StateRecord",
    "StatusRecord",
    "parse",
    "utc",
]

_ENVELOPE = frozenset({"v", "id", "dev", "boot", "seq", "k", "ts", "st", "pri", "test", "ev"})


def utc(ms: int) -> datetime:
    """The contract's UTC milliseconds as an aware datetime (timestamptz)."""
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class EventRecord:
    site: str
    event: ev.Event

    def row(self) -> tuple[Any, ...]:
        """(id, dev, site, boot, seq, kind, ev, ts, st, pri, test, body) for ``events``."""
        e = self.event
        body = e.model_dump(mode="json", exclude_none=True, exclude=set(_ENVELOPE))
        return (
            e.id, e.dev, self.site, e.boot, e.seq, e.k, getattr(e, "ev", None), utc(e.ts),
            utc(e.st) if e.st is not None else None, int(e.pri), bool(e.test), body,
        )  # fmt: skip

    @property
    def opens_alarm(self) -> bool:
        e = self.event
        return isinstance(e, ev.BellEvent) and e.ev == "activated" and not e.test

    @property
    def closes_alarms(self) -> bool:
        e = self.event
        if isinstance(e, ev.BellEvent):
            return e.ev == "outputs_off" and e.why == "ack"
        return isinstance(e, ev.CommandResultEvent) and e.cmd == "bell-ack" and e.res == "ok"


@dataclass(frozen=True)
class StatusRecord:
    site: str
    msg: ev.StatusMessage


@dataclass(frozen=True)
class StateRecord:
    name: str
    msg: ev.StateMessage


@dataclass(frozen=True)
class SnapshotRecord:
    dev: str
    site: str
    event_id: str
    jpeg: bytes


@dataclass(frozen=True)
class Reject:
    """A message that breaks the contract: why, in one line."""

    topic: str
    why: str


@dataclass(frozen=True)
class Ignore:
    """A message on the tree that the ingest does not store (commands to poles)."""

    topic: str


Record = EventRecord | StatusRecord | StateRecord | SnapshotRecord | Reject | Ignore

_EVENT_LEAVES = frozenset({"event", "heartbeat", "cmd-result"})


def parse(prefix: str, topic: str, payload: bytes) -> Record:
    """One message on ``<prefix>/<site>/<dev>/...`` as a record for the tables."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != prefix:
        return Reject(topic, "not under <prefix>/<site>/<device>/")
    site, dev, leaf = parts[1], parts[2], parts[3]
    try:
        if leaf in _EVENT_LEAVES:
            event = ev.decode_event(payload)
            if event.dev != dev:
                return Reject(topic, f"event of device {event.dev!r} on {dev!r}'s topic")
            return EventRecord(site, event)
        if leaf == "status":
            return StatusRecord(site, ev.StatusMessage.model_validate_json(payload))
        if leaf == "state" and len(parts) == 5:
            return StateRecord(parts[4], ev.StateMessage.model_validate_json(payload))
        if leaf == "snapshot" and len(parts) == 5:
            if not payload.startswith(b"\xff\xd8"):
                return Reject(topic, "snapshot is not a JPEG")
            return SnapshotRecord(dev, site, parts[4], payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(message)"
        return Reject(topic, f"{loc}: {err['msg']} ({exc.error_count()} problem(s))")
    if leaf == "cmd" or dev == "_site":
        return Ignore(topic)
    return Reject(topic, f"unknown topic leaf {leaf!r}")
