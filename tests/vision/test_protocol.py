"""The agent <-> vision process messages: round trips, and every malformed frame refused."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from agent.config import CameraConfig, DetectionConfig
from agent.events import EventStamper
from agent.vision.protocol import (
    MAX_HEADER,
    MAX_TAIL,
    TID_GAP,
    TID_MAX,
    Config,
    EventReport,
    Facts,
    Fatal,
    FrameError,
    FrameReader,
    ProtocolError,
    Ready,
    RuleRequest,
    SnapRequest,
    Snapshot,
    StateReport,
    Stop,
    ToChild,
    ToParent,
    decode_to_child,
    decode_to_parent,
    encode,
)

pytestmark = pytest.mark.timeout(30)
STAMPER = EventStamper("pole-0001")
SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def camera() -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "cam-1",
            "source": "rtsp://10.0.0.5/stream1",
            "fps": 5,
            "motion": {"enabled": False},
            "zones": [{"name": "walk", "polygon": SQUARE}],
            "rules": [
                {"name": "walk-in", "type": "intrusion", "zone": "walk", "armed_hours": [22, 6]},
                {"name": "mid", "type": "line_crossing", "line": [[0.5, 0], [0.5, 1]]},
            ],
            "privacy_masks": [[[0, 0], [0.2, 0], [0.2, 0.2]]],
            "blur_persons": True,
        }
    )


TO_CHILD: list[ToChild] = [
    Config(
        cameras=(camera(),),
        detection=DetectionConfig(process_priority=10, class_thresholds={"car": 0.5}),
        device_id="pole-0001",
        boot_id="abc123v2",
        first_tids={"cam-1": 1042},
    ),
    Config(cameras=(), detection=DetectionConfig(), device_id="d", boot_id="b"),
    SnapRequest(event_id="bell-1", camera=None),
    SnapRequest(event_id="bell-1", camera="cam-1"),
    RuleRequest(name="walk-in", armed=True, remaining_s=12.5),
    RuleRequest(name="walk", armed=False, remaining_s=None),
    Stop(),
]
TO_PARENT: list[ToParent] = [
    Ready(pid=4242, priority="idle"),
    Ready(pid=4242, priority=None),
    EventReport(
        event=STAMPER.object(
            ev="start", cam="cam-1", tid=3, cls="person", sc=0.81, box=[0.1, 0.2, 0.3, 0.4]
        )
    ),
    EventReport(
        event=STAMPER.rule(
            rule="walk-in", type="intrusion", cam="cam-1", zone="walk", tids=[3], n=1, snap=True
        )
    ),
    EventReport(event=STAMPER.camera(ev="lost", cam="cam-1", why="stall")),
    StateReport(name="camera-cam-1", state="lost", since=1_700_000_000_000, detail={"why": "x"}),
    StateReport(name="camera-cam-1", state="ok", since=0, detail=None),
    Snapshot(event_id="bell-1", jpeg=b"\xff\xd8" + bytes(range(256)) * 40 + b"\xff\xd9"),
    Facts(
        cameras={"cam-1": {"state": "ok", "fps": 4.9, "why": None, "tampered": None}},
        detector={"state": "ok", "input": [640, 640], "frames": 12},
        progress_age_s=0.25,
        counters={"dropped_objects": 0, "dropped_other": 1},
        next_tids={"cam-1": 57},
    ),
    Fatal(text="ModelError: detection.model: not an ONNX model"),
]


@pytest.mark.parametrize("msg", TO_CHILD, ids=lambda m: m.t)
def test_round_trip_to_the_child(msg: ToChild) -> None:
    assert decode_to_child(encode(msg)) == msg


@pytest.mark.parametrize("msg", TO_PARENT, ids=lambda m: m.t)
def test_round_trip_to_the_agent(msg: ToParent) -> None:
    assert decode_to_parent(encode(msg)) == msg


def test_the_jpeg_travels_raw_after_the_header() -> None:
    jpeg = b"\xff\xd8\x00\x01\x02\xff\xd9"
    frame = encode(Snapshot(event_id="e", jpeg=jpeg))
    header_len, tail_len = struct.unpack(">II", frame[:8])
    assert tail_len == len(jpeg)
    assert frame.endswith(jpeg)
    assert b"jpeg" not in frame[8 : 8 + header_len]


def test_config_is_revalidated_with_the_configs_own_rules() -> None:
    cfg = decode_to_child(encode(TO_CHILD[0]))
    assert isinstance(cfg, Config)
    assert isinstance(cfg.cameras[0], CameraConfig)
    assert cfg.cameras[0].rules[0].armed_hours == (22, 6)
    assert cfg.detection.process_priority == 10


def raw(header: bytes, tail: bytes = b"") -> bytes:
    return struct.pack(">II", len(header), len(tail)) + header + tail


READY = b'{"t":"ready","pid":1,"priority":null}'

MALFORMED_TO_AGENT = [
    # framing: named by byte offset
    (b"\x00\x00\x00", "frame of 3 bytes is shorter than its 8-byte prefix"),
    (struct.pack(">II", 0, 0), "bytes 0-3: header length 0"),
    (struct.pack(">II", MAX_HEADER + 1, 0), f"bytes 0-3: header length {MAX_HEADER + 1}"),
    (struct.pack(">II", 2, MAX_TAIL + 1) + b"{}", f"bytes 4-7: tail length {MAX_TAIL + 1}"),
    (raw(READY)[:-1], "its prefix says 45"),
    (raw(READY) + b"x", "its prefix says 45"),
    (raw(b'{"t":"ready",,}'), "frame byte 21: Invalid JSON"),
    (raw(b"\xff\xfe"), "frame byte 8"),
    # the message: named by field
    (raw(b"[1]"), "message: Input should be an object"),
    (raw(b'{"pid":1}'), "unknown message type"),
    (raw(b'{"t":"bogus"}'), "unknown message type: Input tag 'bogus'"),
    (raw(b'{"t":"stop"}'), "unknown message type: Input tag 'stop'"),  # the other direction
    (raw(b'{"t":"ready","pid":1}'), "ready.priority: Field required"),
    (raw(b'{"t":"ready","pid":"1","priority":null}'), "ready.pid: Input should be a valid integer"),
    (
        raw(b'{"t":"ready","pid":true,"priority":null}'),
        "ready.pid: Input should be a valid integer",
    ),
    (raw(b'{"t":"ready","pid":1.5,"priority":null}'), "ready.pid"),
    (raw(b'{"t":"ready","pid":1,"priority":null,"x":1}'), "ready.x: Unexpected keyword argument"),
    (raw(b'{"t":"ready","pid":1,"priority":7}'), "ready.priority"),
    (
        raw(b'{"t":"facts","cameras":{},"detector":{},"progress_age_s":NaN,"counters":{}}'),
        "facts.progress_age_s: Input should be a finite number",
    ),
    (
        raw(b'{"t":"facts","cameras":{"c":1},"detector":{},"progress_age_s":1,"counters":{}}'),
        "facts.cameras.c",
    ),
    (
        raw(b'{"t":"facts","cameras":{},"detector":{},"progress_age_s":1,"counters":{"a":"1"}}'),
        "facts.counters.a",
    ),
    (raw(b'{"t":"state","name":"n","state":"ok","since":"0","detail":null}'), "state.since"),
    (raw(b'{"t":"event","event":{"k":"nope"}}'), "event.event: Input tag 'nope'"),
    (raw(b'{"t":"event","event":{"k":"camera"}}'), "event.event.camera.id: Field required"),
    (raw(b'{"t":"fatal","text":"x"}', b"tail"), "fatal: unexpected 4-byte tail at byte 32"),
    (raw(b'{"t":"snap","event_id":"e"}'), "snap.jpeg: empty binary tail"),
    (raw(b'{"t":"snap","event_id":"e","jpeg":"abc"}', b"\xff"), "snap.jpeg: belongs in the"),
    (raw(b'{"t":"snap"}', b"\xff"), "snap.event_id: Field required"),
]


@pytest.mark.parametrize(("frame", "why"), MALFORMED_TO_AGENT)
def test_malformed_frames_to_the_agent_are_refused_with_where(frame: bytes, why: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_to_parent(frame)
    assert why in str(info.value)


def test_a_config_that_breaks_the_configs_rules_is_refused() -> None:
    header = encode(TO_CHILD[0])[8:]
    bad = raw(header.replace(b'"fps":5.0', b'"fps":500.0'))
    with pytest.raises(ProtocolError, match=r"config\.cameras\.0\.fps: Input should be less"):
        decode_to_child(bad)
    bad = raw(header.replace(b'"zone":"walk"', b'"zone":"nowhere"'))
    with pytest.raises(ProtocolError, match=r"cameras\[0\]\.rules\[0\]\.zone: rule 'walk-in'"):
        decode_to_child(bad)
    with pytest.raises(ProtocolError, match=r"unknown message type: Input tag 'ready'"):
        decode_to_child(encode(Ready(pid=1, priority=None)))
    for tid in (b"0", b"-1", b'"5"', b"1.0", str(TID_MAX + TID_GAP + 2).encode()):
        bad = raw(
            header.replace(b'"first_tids":{"cam-1":1042}', b'"first_tids":{"cam-1":' + tid + b"}")
        )
        with pytest.raises(ProtocolError, match=r"config\.first_tids\.cam-1"):
            decode_to_child(bad)


def test_a_bad_prefix_is_a_frame_error_and_too_large_is_not_sent() -> None:
    with pytest.raises(FrameError):
        decode_to_parent(struct.pack(">II", MAX_HEADER + 1, 0))
    with pytest.raises(ProtocolError, match="too large to send"):
        encode(Snapshot(event_id="e", jpeg=b"x" * (MAX_TAIL + 1)))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, FrameReader]]:
    a, b = socket.socketpair()
    yield a, FrameReader(b)
    a.close()
    b.close()


def test_reader_joins_frames_split_anywhere(pair: tuple[socket.socket, FrameReader]) -> None:
    writer, reader = pair
    frames = [encode(m) for m in TO_PARENT]
    data = b"".join(frames)

    def write() -> None:  # chunks that cut prefixes, headers and tails
        for i in range(0, len(data), 7):
            writer.sendall(data[i : i + 7])

    threading.Thread(target=write, name="test-writer", daemon=True).start()
    got: list[ToParent] = []
    while len(got) < len(frames):
        frame = reader.read(1.0)
        if frame is not None:
            got.append(decode_to_parent(frame))
    assert got == TO_PARENT
    assert reader.read(0.05) is None


def test_reader_waits_at_most_its_timeout_on_half_a_frame(
    pair: tuple[socket.socket, FrameReader],
) -> None:
    writer, reader = pair
    frame = encode(Fatal(text="half"))
    writer.sendall(frame[:10])
    t0 = time.monotonic()
    assert reader.read(0.2) is None  # the first half arrives
    assert reader.read(0.2) is None  # then nothing: the timeout, not a block
    assert time.monotonic() - t0 < 2.0
    writer.sendall(frame[10:])
    assert reader.read(1.0) == frame
    writer.close()
    with pytest.raises(EOFError):
        reader.read(1.0)


def test_reader_refuses_an_oversized_prefix_before_its_body(
    pair: tuple[socket.socket, FrameReader],
) -> None:
    writer, reader = pair
    writer.sendall(struct.pack(">II", 10, MAX_TAIL + 1))  # and no body at all
    with pytest.raises(FrameError, match="bytes 4-7: tail length"):
        reader.read(1.0)
