"""The one door stages send through: stamped, encoded and durable in a real spool file."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from agent.events import EventStamper, Priority, StateMessage, Topics, decode_event
from agent.outbox import Outbox
from agent.spool import Spool
from tests.test_events import every_kind

TOPICS = Topics("pole", "gangnam", "pole-0412")


def make(tmp_path: Path, **kw: float) -> tuple[Outbox, Spool]:
    spool = Spool(tmp_path / "s.db", **kw)  # type: ignore[arg-type]
    return Outbox(spool, TOPICS, EventStamper("pole-0412")), spool


def test_emit_spools_every_kind_on_its_topic_with_its_priority(tmp_path: Path) -> None:
    outbox, spool = make(tmp_path)
    events = every_kind(outbox.stamper)
    woken: list[int] = []
    spool.add_listener(lambda: woken.append(1))
    for event in events:
        assert outbox.emit(event) is True
    assert len(woken) == len(events)  # the link is told at once
    rows = {r.topic: r for r in spool.next_batch(100)}
    for event in events:
        row = rows[TOPICS.event(event.k)]
        assert decode_event(row.payload) == event
        assert row.priority == event.pri
        assert row.retain is False  # events are never retained
    assert set(rows) == {
        "pole/gangnam/pole-0412/event/bell",
        "pole/gangnam/pole-0412/event/object",
        "pole/gangnam/pole-0412/event/rule",
        "pole/gangnam/pole-0412/event/camera",
        "pole/gangnam/pole-0412/heartbeat",
        "pole/gangnam/pole-0412/cmd-result",
    }
    # Alarms (bell, command result) come out first.
    assert [r.priority for r in spool.next_batch(2)] == [Priority.ALARM, Priority.ALARM]


def test_state_is_retained_and_travels_with_the_alarms(tmp_path: Path) -> None:
    outbox, spool = make(tmp_path)
    outbox.emit(
        outbox.stamper.object(ev="start", cam="c", tid=1, cls="car", sc=0.5, box=(0, 0, 1, 1))
    )
    outbox.state("bell", "pressed", since=1_700_000_000_000, detail={"inp": "button"})
    (row, _obj) = spool.next_batch(2)
    assert row.topic == "pole/gangnam/pole-0412/state/bell"
    assert row.retain is True
    assert row.priority == Priority.ALARM
    msg = StateMessage.model_validate_json(row.payload)
    assert (msg.dev, msg.state, msg.since, msg.detail) == (
        "pole-0412",
        "pressed",
        1_700_000_000_000,
        {"inp": "button"},
    )


def test_snapshot_is_media_priority_raw_bytes(tmp_path: Path) -> None:
    outbox, spool = make(tmp_path)
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
    outbox.snapshot("abc123", jpeg)
    (row,) = spool.next_batch(5)
    assert (row.topic, row.payload, row.priority) == (
        "pole/gangnam/pole-0412/snapshot/abc123",
        jpeg,
        Priority.MEDIA,
    )


def test_a_spool_that_refuses_is_logged_counted_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, spool = make(tmp_path, busy_timeout_s=0.1)
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the timeout
    event = outbox.stamper.bell(ev="pressed")
    try:
        with caplog.at_level(logging.ERROR, logger="agent.outbox"):
            assert outbox.emit(event) is False
            outbox.state("bell", "pressed", since=1)
            outbox.snapshot(event.id, b"jpeg")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert outbox.failed == 3
    assert event.id in caplog.text
    assert "locked" in caplog.text
    assert outbox.emit(event) is True  # and works again once the lock is gone
    assert json.loads(spool.next_batch(1)[0].payload)["id"] == event.id


def test_repeated_refusals_are_counted_each_and_logged_once_per_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, _spool = make(tmp_path, busy_timeout_s=0.02)
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with caplog.at_level(logging.ERROR, logger="agent.outbox"):
            for i in range(5):
                event = outbox.stamper.object(
                    ev="update", cam="c", tid=i, cls="car", sc=0.5, box=(0, 0, 1, 1)
                )
                assert outbox.emit(event) is False
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert outbox.failed == 5
    assert len(caplog.records) == 1  # a refusing spool must not flood the journal


def test_a_snapshot_larger_than_the_broker_takes_is_made_to_fit(tmp_path: Path) -> None:
    """The broker said (CONNACK) it takes no packet over 20 kB: the snapshot is re-encoded."""
    import cv2
    import numpy as np

    from agent import assets

    cap = cv2.VideoCapture(str(assets.verify("video")))
    ok, frame = cap.read()
    cap.release()
    assert ok
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 98])
    big = buf.tobytes()
    assert len(big) > 60_000
    spool = Spool(tmp_path / "spool.db")
    topics = Topics("pole", "s", "d")
    outbox = Outbox(spool, topics, EventStamper("d"))
    outbox.packet_limit = lambda: 20_000
    outbox.snapshot("ev-1", big)
    (row,) = spool.next_batch(10)
    assert row.topic == topics.snapshot("ev-1")
    assert len(row.payload) + len(row.topic) + 64 <= 20_000
    small = cv2.imdecode(np.frombuffer(row.payload, np.uint8), cv2.IMREAD_COLOR)
    assert small is not None  # still a picture
    assert outbox.shrunk == 1
    outbox.packet_limit = lambda: None  # no limit known: the snapshot goes as it is
    outbox.snapshot("ev-2", big)
    assert [len(r.payload) for r in spool.next_batch(10) if r.topic.endswith("ev-2")] == [len(big)]
    spool.close()
