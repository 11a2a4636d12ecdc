"""The messages between the agent and its vision process, and the frames that carry them.

Each message is a small frozen dataclass with its type in ``t``.  The agent sends
:class:`Config` first, then :class:`SnapRequest`, :class:`RuleRequest` and :class:`Stop`;
the child answers with :class:`Ready` (or :class:`Fatal`), then :class:`EventReport`,
:class:`StateReport`, :class:`Snapshot` and :class:`Facts`.

A frame on the socket pair is::

    8-byte prefix ">II": header length H, tail length B
    H bytes: the message as a JSON object (UTF-8)
    B bytes: raw binary tail (a snapshot's JPEG), or nothing

Why not pickle, as before: unpickling runs whatever code the sender names, and the child
parses untrusted network video (FFmpeg and OpenCV decoders).  A child taken over through
a crafted stream must not get code execution in the agent, which holds the bell, the
spool and the MQTT credentials.  Why JSON plus a binary tail: JSON is what the agent
already speaks (events, config), needs nothing outside the standard library and pydantic,
and reads in ``strace``; the only bulky field, a JPEG of up to 2 MB, travels as raw bytes
after the header rather than as base64 inside it (a third larger and copied twice).

Decoding validates everything before the agent acts on it: the lengths against
:data:`MAX_HEADER` and :data:`MAX_TAIL` before any byte is buffered, the JSON, the type,
each field's type in pydantic's strict mode (no ``"1"`` for ``1``), the camera and
detection config with the config's own rules, an event with the contract's models.  Any
failure is a :class:`ProtocolError` that names the field or the byte offset.  A frame
whose prefix is bad cannot be skipped reliably; :class:`FrameReader` raises
:class:`FrameError` for it, and the agent restarts the child.
"""

from __future__ import annotations

import dataclasses
import re
import select
import socket
import struct
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from agent.config import CameraConfig, DetectionConfig, LookoutConfig
from agent.config.checks import camera_problems
from agent.control.lookout import LookoutArgs
from agent.control.registry import Signer
from agent.events import Event

__all__ = [
    "MAX_HEADER",
    "MAX_TAIL",
    "TID_GAP",
    "TID_MAX",
    "Config",
    "EventReport",
    "Facts",
    "Fatal",
    "FrameError",
    "FrameReader",
    "LookoutCancel",
    "LookoutRequest",
    "ProtocolError",
    "Ready",
    "RuleRequest",
    "SnapRequest",
    "Snapshot",
    "StateReport",
    "Stop",
    "ToChild",
    "ToParent",
    "decode_to_child",
    "decode_to_parent",
    "encode",
]

PREFIX = struct.Struct(">II")
# Track ids the agent takes into account: a child that reports one above this (a bug, or a
# child taken over through a crafted stream) must not push every later child's first id
# out of range.  About a billion tracks: more than a camera makes in a lifetime.
TID_MAX = 1 << 30
TID_GAP = 1000  # more tracks than a camera makes between two facts (a second) or a handover
MAX_HEADER = 1 << 20  # the facts of many cameras fit many times over
MAX_TAIL = 4 << 20  # a snapshot is capped at 2 MB by the config
RECV_MIN = 1 << 16


class ProtocolError(ValueError):
    """A frame or message that breaks the protocol; the text says which field or byte."""


class FrameError(ProtocolError):
    """A frame prefix that cannot be trusted: the stream has no reliable boundary after it."""


class _Message:
    """Base of every message: validated strictly, unknown fields are errors."""

    t: str  # the message type, a Literal in each message
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False
    )


# ---------------------------------------------------------------------------- to the child
@dataclass(frozen=True, kw_only=True)
class Config(_Message):
    """First message: what to watch and how, and the stamper's ids (replaced by the agent)."""

    t: Literal["config"] = "config"
    cameras: tuple[CameraConfig, ...]
    detection: DetectionConfig
    device_id: str
    boot_id: str
    lookout: LookoutConfig | None = None  # index_path resolved by the agent
    # per camera, the first track id to give: a restarted child carries on from the ids
    # its predecessor gave, so that object events, rules and lookout candidates (and the
    # appearance index) name a track by one id, unique per camera and boot
    first_tids: dict[str, Annotated[int, Field(ge=1, le=TID_MAX + TID_GAP + 1)]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        # The same cross-key rules as a config file: the child trusts nothing it is sent.
        problems = [p for i, cam in enumerate(self.cameras) for p in camera_problems(i, cam)]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class SnapRequest(_Message):
    """A snapshot for ``event_id`` from ``camera`` (None: the first with a frame)."""

    t: Literal["snap"] = "snap"
    event_id: str
    camera: str | None


@dataclass(frozen=True, kw_only=True)
class RuleRequest(_Message):
    """Arm or disarm a rule or zone, for ``remaining_s`` from now (None: until changed).

    A duration, not a monotonic instant: right whatever the two processes' clocks are.
    """

    t: Literal["rule"] = "rule"
    name: str
    armed: bool
    remaining_s: float | None


@dataclass(frozen=True, kw_only=True)
class LookoutRequest(_Message):
    """Take a lookout on for ``remaining_s`` from now (a duration, as for rules): search the
    index at once, then match live.  ``signer`` and ``site`` are for the audit log;
    ``replayed`` when the agent re-sends it to a restarted child."""

    t: Literal["lookout"] = "lookout"
    spec: LookoutArgs
    remaining_s: float = Field(gt=0)
    signer: Signer
    req: str = Field(max_length=64)
    site: bool
    replayed: bool = False


@dataclass(frozen=True, kw_only=True)
class LookoutCancel(_Message):
    """End the lookout ``id`` (nothing more is sent for it)."""

    t: Literal["lookout-cancel"] = "lookout-cancel"
    id: str = Field(max_length=40)


@dataclass(frozen=True, kw_only=True)
class Stop(_Message):
    """Stop the service and exit."""

    t: Literal["stop"] = "stop"


# ---------------------------------------------------------------------------- to the agent
@dataclass(frozen=True, kw_only=True)
class Ready(_Message):
    """The service started; ``priority`` is what the child got (None: it was refused)."""

    t: Literal["ready"] = "ready"
    pid: int
    priority: str | None


@dataclass(frozen=True, kw_only=True)
class EventReport(_Message):
    """An event stamped by the child; the agent re-stamps it."""

    t: Literal["event"] = "event"
    event: Event


@dataclass(frozen=True, kw_only=True)
class StateReport(_Message):
    """A retained ``state/<name>`` message to publish."""

    t: Literal["state"] = "state"
    name: str
    state: str
    since: int
    detail: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class Snapshot(_Message):
    """A JPEG for the event ``event_id``; the JPEG is the frame's binary tail."""

    BLOB: ClassVar[str] = "jpeg"
    t: Literal["snap"] = "snap"
    event_id: str
    jpeg: bytes = b""


@dataclass(frozen=True, kw_only=True)
class Facts(_Message):
    """Per-camera facts, the detector's, the age of the last vision turn, drop counters."""

    t: Literal["facts"] = "facts"
    cameras: dict[str, dict[str, Any]]
    detector: dict[str, Any]
    progress_age_s: float
    counters: dict[str, int]
    # Capture threads stuck in one native call past their bound: only a restart ends that.
    stuck: dict[str, float] = field(default_factory=dict)
    # Per camera, the id its tracker gives next: a restarted child starts above it, also
    # for tracks that were recorded in the index but never reported.
    next_tids: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Fatal(_Message):
    """The child could not start; why."""

    t: Literal["fatal"] = "fatal"
    text: str


ToChild = Config | SnapRequest | RuleRequest | LookoutRequest | LookoutCancel | Stop
ToParent = Ready | EventReport | StateReport | Snapshot | Facts | Fatal

M = TypeVar("M", bound=_Message)

_TO_CHILD: TypeAdapter[ToChild] = TypeAdapter(Annotated[ToChild, Field(discriminator="t")])
_TO_PARENT: TypeAdapter[ToParent] = TypeAdapter(Annotated[ToParent, Field(discriminator="t")])


# ---------------------------------------------------------------------------- frames
def encode(msg: ToChild | ToParent) -> bytes:
    """One frame: prefix, JSON header, binary tail (the snapshot's JPEG)."""
    blob: str | None = getattr(msg, "BLOB", None)
    tail: bytes = getattr(msg, blob) if blob else b""
    exclude = {blob} if blob else None
    header = TypeAdapter(type(msg)).dump_json(msg, exclude=exclude)
    if len(header) > MAX_HEADER or len(tail) > MAX_TAIL:
        raise ProtocolError(f"{msg.t}: {len(header)} + {len(tail)} bytes is too large to send")
    return PREFIX.pack(len(header), len(tail)) + header + tail


def decode_to_child(frame: bytes) -> ToChild:
    """Validate a frame sent to the child; ProtocolError when it breaks the protocol."""
    return _decode(frame, _TO_CHILD)


def decode_to_parent(frame: bytes) -> ToParent:
    """Validate a frame sent to the agent; ProtocolError when it breaks the protocol."""
    return _decode(frame, _TO_PARENT)


def _lengths(prefix: bytes) -> tuple[int, int]:
    """Header and tail length from a prefix; FrameError when either is out of bounds."""
    header, tail = PREFIX.unpack(prefix)
    if not 0 < header <= MAX_HEADER:
        raise FrameError(f"bytes 0-3: header length {header} is not in 1..{MAX_HEADER}")
    if tail > MAX_TAIL:
        raise FrameError(f"bytes 4-7: tail length {tail} is over {MAX_TAIL}")
    return header, tail


def _decode(frame: bytes, adapter: TypeAdapter[M]) -> M:
    if len(frame) < PREFIX.size:
        raise FrameError(
            f"frame of {len(frame)} bytes is shorter than its {PREFIX.size}-byte prefix"
        )
    h, b = _lengths(frame[: PREFIX.size])
    if len(frame) != PREFIX.size + h + b:
        raise FrameError(f"frame of {len(frame)} bytes, its prefix says {PREFIX.size + h + b}")
    header, tail = frame[PREFIX.size : PREFIX.size + h], frame[PREFIX.size + h :]
    try:
        msg = adapter.validate_json(header, strict=True)
    except ValidationError as exc:
        raise ProtocolError(_describe(exc)) from None
    blob: str | None = getattr(msg, "BLOB", None)
    if blob is None:
        if tail:
            raise ProtocolError(
                f"{msg.t}: unexpected {len(tail)}-byte tail at byte {PREFIX.size + h}"
            )
        return msg
    if getattr(msg, blob):
        raise ProtocolError(f"{msg.t}.{blob}: belongs in the binary tail, not the header")
    if not tail:
        raise ProtocolError(f"{msg.t}.{blob}: empty binary tail")
    return dataclasses.replace(msg, **{blob: tail})  # type: ignore[type-var]


def _describe(exc: ValidationError) -> str:
    """The first problem, with its field path, or its byte offset in the frame (bad JSON)."""
    err = exc.errors(include_url=False)[0]
    if err["type"] == "json_invalid":
        # pydantic counts lines and columns; the header is one line from encode().
        pos = re.search(r"line (\d+) column (\d+)", err["msg"])
        at = PREFIX.size + int(pos[2]) - 1 if pos and pos[1] == "1" else PREFIX.size
        return f"frame byte {at}: {err['msg']}"
    if not err["loc"] and err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return f"unknown message type: {err['msg']}"
    where = ".".join(str(p) for p in err["loc"]) or "message"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


class FrameReader:
    """Whole frames from a blocking stream socket, waiting at most a timeout for bytes.

    A peer that stops half-way through a frame never blocks the reader past its timeout,
    so the agent's hang watch keeps running.  Lengths are checked as soon as the prefix is
    in, before the rest is buffered.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)

    def readable(self, timeout: float | None = 0.0) -> bool:
        """Bytes (or the end) are waiting; a whole frame is already buffered."""
        if self._complete() is not None:
            return True
        ms = None if timeout is None else max(0, int(timeout * 1000))
        return bool(self._poll.poll(ms))

    def read(self, timeout: float | None) -> bytes | None:
        """The next whole frame; None when none completed in ``timeout`` (None: wait).

        EOFError when the peer closed its end; FrameError for a prefix out of bounds.
        """
        frame = self._complete()
        if frame is not None or not self.readable(timeout):
            return frame
        want = self._wanted()
        data = self._sock.recv(max(RECV_MIN, want - len(self._buf)))
        if not data:
            raise EOFError("the other side closed the socket")
        self._buf += data
        return self._complete()

    def _wanted(self) -> int:
        if len(self._buf) < PREFIX.size:
            return PREFIX.size
        h, b = _lengths(bytes(self._buf[: PREFIX.size]))
        return PREFIX.size + h + b

    def _complete(self) -> bytes | None:
        want = self._wanted()
        if len(self._buf) < want:
            return None
        frame = bytes(self._buf[:want])
        del self._buf[:want]
        return frame
