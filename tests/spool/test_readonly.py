"""The spool's file system goes read-only under it: a real loop-mounted ext4 with
``errors=remount-ro`` and a real file-system error forced through sysfs (root only)."""

from __future__ import annotations

import warnings

import pytest

from agent.events import EventStamper, Topics
from agent.outbox import Outbox
from agent.spool import Spool, SpoolError
from tests.fsfaults import LoopExt4
from tests.spool.common import P, on_disk


def test_a_read_only_card_keeps_alarms_in_memory_sends_them_and_writes_them_back(
    card: LoopExt4,
) -> None:
    clock = [0.0]
    path = card.mnt / "spool.db"
    spool = Spool(path, mono=lambda: clock[0])
    try:
        outbox = Outbox(spool, Topics("pole", "s", "d"), EventStamper("d"))
        before = [spool.put("a", b"alarm-0", P.ALARM), spool.put("o", b"object-0", P.OBJECT)]
        card.fail()

        # The disk refuses: an alarm is accepted into memory, a lower priority refused.
        held = spool.put("a", b"alarm-1", P.ALARM)
        assert held < 0
        facts = spool.facts()
        assert (facts["state"], facts["mem"]) == ("degraded", 1)
        assert "I/O" in facts["error"] or "readonly" in facts["error"]
        with pytest.raises(SpoolError, match="degraded"):
            spool.put("o", b"object-1", P.OBJECT)
        assert outbox.emit(outbox.stamper.bell(ev="pressed")) is True
        assert outbox.emit(outbox.stamper.camera(ev="lost", cam="c0", why="stall")) is False
        assert spool.facts()["refused"] == {"object": 1, "rule": 1}  # camera events are rules
        assert spool.purge_expired() == 0  # no exception on the main thread either

        # Still published: alarms on disk, alarms in memory, then the rest, in order.
        rows = spool.next_batch(10)
        assert [r.payload[:7] for r in rows[:2]] == [b"alarm-0", b"alarm-1"]
        assert rows[0].id == before[0]
        assert rows[-1].payload == b"object-0"
        bell_id = rows[2].id
        spool.ack_many([held, before[0]])  # the broker has them: no exception
        assert [r.payload[:8] for r in spool.next_batch(10)][-1] == b"object-0"
        assert spool.facts()["mem"] == 1
        spool.put("a", b"alarm-2", P.ALARM)

        clock[0] += 5.0
        assert spool.recover() is False  # still read-only: stays degraded, no exception
        card.repair()
        clock[0] += 5.0
        assert spool.recover() is True
        facts = spool.facts()
        assert (facts["state"], facts["mem"]) == ("ok", 0)
        # The acked disk alarm is gone, the memory alarms landed on disk in order.
        rows = spool.next_batch(10)
        assert [r.payload[:7] for r in rows[1:]] == [b"alarm-2", b"object-"]
        assert b'"pressed"' in rows[0].payload
        spool.ack(bell_id)  # a late ack of a moved memory row still finds it
        assert len(spool) == 2
        assert len(on_disk(path)) == 2
        if card.fallback:
            warnings.warn(card.fallback, stacklevel=1)
    finally:
        spool.close()


def test_the_newest_heartbeat_still_goes_out_while_degraded(card: LoopExt4) -> None:
    """The heartbeat says the spool is degraded: it must not be refused by that very state."""
    spool = Spool(card.mnt / "spool.db")
    try:
        card.fail()
        first = spool.put("hb", b"beat-1", P.TELEMETRY)
        second = spool.put("hb", b"beat-2", P.TELEMETRY)  # replaces the first one
        assert first < 0
        assert second < 0
        with pytest.raises(SpoolError):
            spool.put("o", b"object", P.OBJECT)
        held = [r.payload for r in spool.next_batch(10) if r.topic == "hb"]
        assert held == [b"beat-2"]
    finally:
        spool.close()
