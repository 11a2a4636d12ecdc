"""The wire contract between a pole and the centre: topics, event models, encoding.

The pydantic models here are the single source of truth: the JSON Schemas and the
AsyncAPI document (``pole-agent contract schema``) are generated from them, and
``pole-agent monitor`` validates every message it receives against them.

Field names are short on purpose (an object event is under 300 bytes); ``docs/contract.md``
spells each one out.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "EVENT_MODELS",
    "SCHEMA_VERSION",
    "WIRE_MODELS",
    "BellEvent",
    "CameraEvent",
    "CommandRequest",
    "CommandResultEvent",
    "Event",
    "EventStamper",
    "HealthEvent",
    "LookoutEvent",
    "ObjectEvent",
    "Priority",
    "RuleEvent",
    "StateMessage",
    "StatusMessage",
    "SystemEvent",
    "Topics",
    "decode_event",
    "encode",
    "now_ms",
]

SCHEMA_VERSION = 1


class Priority(IntEnum):
    """Replay order after an outage; lower goes first. Alarms are never dropped."""

    ALARM = 0  # bell events, command results
    RULE = 1  # rule events, camera faults
    OBJECT = 2  # object track events
    MEDIA = 3  # snapshots
    TELEMETRY = 4  # heartbeats


def now_ms() -> int:
    """Wall-clock UTC in milliseconds since the epoch (for reporting, never for durations)."""
    return time.time_ns() // 1_000_000


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Event(_Wire):
    v: Literal[1] = Field(default=1, description="Schema version.")
    id: str = Field(min_length=8, max_length=40, description="Unique event id; deduplicate on it.")
    dev: str = Field(description="Device id.")
    boot: str = Field(description="Boot id: changes at every start of the agent.")
    seq: int = Field(
        ge=1,
        description="Per-boot sequence number over all kinds. A missing one is late until the "
        "centre's reorder window passes, or lost at once when the pole says it dropped it.",
    )
    ts: int = Field(description="When it happened, UTC ms since the epoch.")
    st: int | None = Field(default=None, description="When it was sent, UTC ms (set at publish).")
    pri: Priority = Field(
        description="0 alarm, 1 rule and lookout, 2 object, 3 media, 4 telemetry."
    )
    test: Literal[True] | None = Field(default=None, description="Present during a bell test.")


class Location(_Wire):
    pole: str = Field(description="Pole number.")
    lat: float = Field(description="Latitude, WGS84.")
    lon: float = Field(description="Longitude, WGS84.")


BellKind = Literal[
    "pressed",
    "released",
    "activated",
    "stuck",
    "stuck_cleared",
    "flapping",
    "flapping_cleared",
    "tamper",
    "tamper_cleared",
    "line_open",
    "line_short",
    "line_restored",
    "comm_fault",
    "comm_restored",
    "power_fail",
    "power_restored",
    "test_started",
    "test_ended",
    "outputs_off",
]


class BellEvent(_Event):
    k: Literal["bell"] = "bell"
    ev: BellKind = Field(description="What happened to the bell.")
    inp: str = Field(
        default="button",
        description="Input: button, tamper, power, loop, outputs, or the backend (comm faults).",
    )
    held: int | None = Field(default=None, description="Milliseconds held (released, stuck).")
    loc: Location | None = Field(default=None, description="Where the pole is (alarms).")
    snap: Literal[True] | None = Field(default=None, description="A snapshot follows.")
    preset: str | None = Field(default=None, description="Camera preset the agent moved to.")
    why: str | None = Field(default=None, description="Detail for faults.")


Box = tuple[float, float, float, float]


class ObjectEvent(_Event):
    k: Literal["object"] = "object"
    ev: Literal["start", "update", "end"] = Field(description="Track lifecycle step.")
    cam: str = Field(description="Camera id.")
    tid: int = Field(ge=0, description="Track id, unique per camera and boot.")
    cls: str = Field(description="Class name, e.g. person.")
    sc: float = Field(ge=0, le=1, description="Score, two decimals.")
    box: Box = Field(description="x1, y1, x2, y2 normalised 0..1 to the frame.")
    zones: list[str] | None = Field(default=None, description="Zones the object is in.")
    why: Literal["zone_enter", "zone_leave", "stationary", "moving", "periodic"] | None = Field(
        default=None, description="Update reason."
    )
    dur: int | None = Field(default=None, description="Track duration in ms (end).")


class RuleEvent(_Event):
    k: Literal["rule"] = "rule"
    rule: str = Field(description="Rule name from the config.")
    type: Literal["intrusion", "loitering", "line_crossing", "crowding"] = Field(
        description="Rule type."
    )
    cam: str = Field(description="Camera id.")
    zone: str | None = Field(default=None, description="Zone name.")
    tids: list[int] = Field(description="Track ids involved.")
    n: int | None = Field(default=None, description="Crowding: objects counted.")
    dwell: int | None = Field(default=None, description="Loitering: ms in the zone.")
    dir: str | None = Field(default=None, description="Line crossing: direction.")
    snap: Literal[True] | None = Field(default=None, description="A snapshot follows.")


class CameraEvent(_Event):
    k: Literal["camera"] = "camera"
    ev: Literal[
        "lost", "restored", "tampered", "tamper_cleared", "flapping", "flapping_cleared"
    ] = Field(description="What; while it flaps, lost and restored are counted, not sent.")
    cam: str = Field(description="Camera id.")
    why: str | None = Field(
        default=None,
        description="stall, frozen, ended, open_failed, read_failed, capture_hung, …; "
        "for flapping(_cleared) the count",
    )


class SystemEvent(_Event):
    k: Literal["system"] = "system"
    ev: Literal["fault", "cleared", "notice", "flapping", "flapping_cleared"] = Field(
        description="A fault began, a fault ended, something the centre should know; or "
        "faults of this part come and go too often to be sent one by one, and no longer do."
    )
    what: Literal["spool", "link", "reload", "log", "vision", "commands", "clock"] = Field(
        description="The part of the agent it is about."
    )
    why: str = Field(max_length=500, description="What happened, in one line.")
    data: dict[str, Any] | None = Field(default=None, description="Counts and details.")


class HealthEvent(_Event):
    k: Literal["health"] = "health"
    up: int = Field(ge=0, description="Uptime in seconds.")
    ver: str = Field(description="Software version.")
    cfg: str = Field(description="Config hash.")
    cams: dict[str, dict[str, Any]] = Field(default={}, description="Per camera facts.")
    det: dict[str, Any] | None = Field(
        default=None,
        description="Detector and vision process: model, latency, restarts, drops; "
        "'lookouts': the active lookouts [{id, left_s, sent}].",
    )
    bell: dict[str, Any] = Field(default={}, description="Bell facts.")
    spool: dict[str, Any] = Field(default={}, description="Spool depth and drops.")
    link: dict[str, Any] = Field(default={}, description="Broker link facts.")
    cmds: dict[str, Any] | None = Field(default=None, description="Command counts and drops.")
    sys: dict[str, Any] = Field(default={}, description="Load, memory, disk, temperature.")


class SlotHow(_Wire):
    m: float = Field(ge=0, le=1, description="How well the slot matched, 0..1.")
    how: str = Field(
        max_length=40,
        description="What matched: the colour seen, 'asked~seen' through the confusion "
        "tolerance, ' 2nd' for a second colour; the size seen; items found of asked.",
    )


class LookoutEvent(_Event):
    k: Literal["lookout"] = "lookout"
    look: str = Field(description="Lookout id.")
    cam: str = Field(description="Camera id.")
    tid: int = Field(ge=0, description="Track id (as in the track's object events).")
    t0: int = Field(description="First seen, UTC ms.")
    t1: int = Field(description="Last seen, UTC ms.")
    sc: float = Field(ge=0, le=1, description="Score, three decimals.")
    live: bool = Field(description="Seen after the lookout arrived (else found looking back).")
    m: dict[str, SlotHow] = Field(
        description="Per asked slot (upper, lower, size, items, riding; vehicle_colour, "
        "vehicle_type; histogram when similar): how it matched."
    )
    seen: dict[str, Any] = Field(
        description="Attributes seen: upper, lower ([name, share] best first), size, items, "
        "riding, heading, speed, frames; a vehicle's colour and type instead of the garments "
        "and size."
    )
    hist: str = Field(description="The track's colour histogram, base64 of 128 bytes.")
    snap: Literal[True] | None = Field(
        default=None, description="A body thumbnail follows on snapshot/<id>."
    )


class CommandResultEvent(_Event):
    k: Literal["cmd_result"] = "cmd_result"
    req: str = Field(description="Request id of the command.")
    cmd: str = Field(description="Command name.")
    res: Literal["ok", "rejected", "failed"] = Field(description="Outcome.")
    why: str | None = Field(default=None, description="Reason when not ok.")
    data: dict[str, Any] | None = Field(default=None, description="Result data.")


Event = Annotated[
    BellEvent
    | ObjectEvent
    | RuleEvent
    | CameraEvent
    | SystemEvent
    | HealthEvent
    | CommandResultEvent
    | LookoutEvent,
    Field(discriminator="k"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_MODELS: tuple[type[_Wire], ...] = (
    BellEvent,
    ObjectEvent,
    RuleEvent,
    CameraEvent,
    SystemEvent,
    HealthEvent,
    CommandResultEvent,
    LookoutEvent,
)
EVENT_PRIORITY: dict[str, Priority] = {
    "bell": Priority.ALARM,
    "cmd_result": Priority.ALARM,
    "rule": Priority.RULE,
    "camera": Priority.RULE,
    # Faults of the agent itself are rare and decide whether the centre trusts the pole; at
    # alarm priority they are also kept in memory while the spool's disk refuses writes.
    "system": Priority.ALARM,
    # Between alarms and rules was asked for; RULE is as close as the wire allows without
    # renumbering ``pri`` (which the centre stores): after alarms, with rule events, in order.
    "lookout": Priority.RULE,
    "object": Priority.OBJECT,
    "health": Priority.TELEMETRY,
}


class StatusMessage(_Wire):
    """Retained on ``status``: birth on every connect, last will and clean stop say offline."""

    v: Literal[1] = 1
    dev: str = Field(description="Device id.")
    state: Literal["online", "offline"] = Field(description="Link state.")
    why: Literal["birth", "stopped", "lost"] = Field(description="Birth, clean stop, or will.")
    boot: str = Field(description="Boot id.")
    ts: int = Field(description="UTC ms.")
    ver: str | None = Field(default=None, description="Software version (birth).")
    cfg: str | None = Field(default=None, description="Config hash (birth).")
    site: str | None = Field(default=None, description="Site id (birth).")
    pole: str | None = Field(default=None, description="Pole number (birth).")
    place: str | None = Field(default=None, description="Human-readable location (birth).")
    addr: str | None = Field(default=None, description="Road address (birth).")
    lat: float | None = Field(default=None, description="Latitude (birth).")
    lon: float | None = Field(default=None, description="Longitude (birth).")
    broker: str | None = Field(
        default=None, description="The broker this connection is to, host:port (birth)."
    )


class StateMessage(_Wire):
    """Retained on ``state/<name>``: the current state of a part, replaced on every change."""

    v: Literal[1] = 1
    dev: str = Field(description="Device id.")
    ts: int = Field(description="UTC ms of the change.")
    state: str = Field(description="e.g. idle, pressed, active, fault, test.")
    since: int = Field(description="UTC ms since when this state holds.")
    detail: dict[str, Any] | None = Field(default=None, description="Extra facts.")


class CommandRequest(_Wire):
    """What the centre sends on ``cmd/<name>``."""

    req: str = Field(min_length=1, max_length=64, description="Request id, unique per command.")
    ts: int = Field(description="When the centre sent it, UTC ms.")
    args: dict[str, Any] = Field(default={}, description="Arguments of the command.")
    mac: str | None = Field(default=None, description="HMAC-SHA256 hex over the signed text.")


@dataclass(frozen=True)
class Topics:
    """The topic tree of one device: ``<prefix>/<site>/<device>/…``."""

    prefix: str
    site: str
    device: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.device}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def heartbeat(self) -> str:
        return f"{self.base}/heartbeat"

    @property
    def cmd_result(self) -> str:
        return f"{self.base}/cmd-result"

    def event(self, kind: str) -> str:
        if kind == "health":
            return self.heartbeat
        if kind == "cmd_result":
            return self.cmd_result
        return f"{self.base}/event/{kind}"

    def state(self, name: str) -> str:
        return f"{self.base}/state/{name}"

    def snapshot(self, event_id: str) -> str:
        return f"{self.base}/snapshot/{event_id}"

    def cmd(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    @property
    def cmd_filters(self) -> tuple[str, str]:
        """This device's commands and the site-wide broadcast."""
        return f"{self.base}/cmd/+", f"{self.prefix}/{self.site}/_site/cmd/+"


class EventStamper:
    """Gives each event its envelope: id, device, boot id, per-boot ``seq``, time, priority.

    Thread-safe: the bell, vision and command threads stamp concurrently.
    """

    def __init__(self, device_id: str, boot_id: str | None = None) -> None:
        self.device_id = device_id
        self.boot_id = boot_id or secrets.token_hex(6)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    def envelope(self, kind: str, ts: int | None = None) -> dict[str, Any]:
        with self._lock:
            seq = next(self._seq)
        return {
            "id": f"{self.boot_id}-{seq:x}-{secrets.token_hex(3)}",
            "dev": self.device_id,
            "boot": self.boot_id,
            "seq": seq,
            "ts": now_ms() if ts is None else ts,
            "pri": EVENT_PRIORITY[kind],
        }

    def restamp(self, event: Event) -> Event:
        """``event`` under this stamper's id, boot and next ``seq``; ``ts`` and fields kept.

        For events made in another process (the vision process): one ``seq`` per boot.
        """
        env = self.envelope(event.k, event.ts)
        return event.model_copy(update={k: env[k] for k in ("id", "dev", "boot", "seq")})

    def bell(self, **fields: Any) -> BellEvent:
        return BellEvent(**self.envelope("bell", fields.pop("ts", None)), **fields)

    def object(self, **fields: Any) -> ObjectEvent:
        return ObjectEvent(**self.envelope("object", fields.pop("ts", None)), **fields)

    def rule(self, **fields: Any) -> RuleEvent:
        return RuleEvent(**self.envelope("rule", fields.pop("ts", None)), **fields)

    def camera(self, **fields: Any) -> CameraEvent:
        return CameraEvent(**self.envelope("camera", fields.pop("ts", None)), **fields)

    def system(self, **fields: Any) -> SystemEvent:
        return SystemEvent(**self.envelope("system", fields.pop("ts", None)), **fields)

    def health(self, **fields: Any) -> HealthEvent:
        return HealthEvent(**self.envelope("health", fields.pop("ts", None)), **fields)

    def lookout(self, **fields: Any) -> LookoutEvent:
        return LookoutEvent(**self.envelope("lookout", fields.pop("ts", None)), **fields)

    def cmd_result(self, **fields: Any) -> CommandResultEvent:
        return CommandResultEvent(**self.envelope("cmd_result", fields.pop("ts", None)), **fields)


def encode(message: BaseModel) -> bytes:
    """Compact JSON: absent optional fields are left out."""
    return message.model_dump_json(exclude_none=True).encode()


def decode_event(payload: bytes | str) -> Event:
    """Parse and validate an event; raises pydantic.ValidationError on anything else."""
    return EVENT_ADAPTER.validate_json(payload)


# Every message model on the wire, for the contract's schemas and the centre's checks.
WIRE_MODELS: tuple[type[_Wire], ...] = (StatusMessage, StateMessage, CommandRequest, *EVENT_MODELS)
