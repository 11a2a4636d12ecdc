"""FaultWatch: the pole says which seqs its spool dropped, so the centre knows them lost."""

from __future__ import annotations

import json
from pathlib import Path

from agent.events import EventStamper, Priority, Topics, encode
from agent.faults import FaultWatch, _ranges
from agent.outbox import Outbox
from agent.spool import Spool


def test_ranges() -> None:
    assert _ranges([1, 2, 3, 7, 9, 10]) == [(1, 3), (7, 7), (9, 10)]
    assert _ranges([]) == []


def test_evicted_object_events_are_reported_as_seq_ranges(tmp_path: Path) -> None:
    """A real spool over its row bound drops object events; their seqs are said once."""
    spool = Spool(tmp_path / "spool.db", max_rows=100)
    topics = Topics("pole", "s", "d")
    stamper = EventStamper("d")
    outbox = Outbox(spool, topics, stamper)
    watch = FaultWatch(lambda: outbox, spool)
    for i in range(130):
        ev = stamper.object(ev="update", cam="c1", tid=i, cls="person", sc=0.9, box=[0, 0, 1, 1])
        spool.put(topics.event("object"), encode(ev), Priority.OBJECT)
    watch.check()
    rows = [r for r in spool.next_batch(1000) if r.topic == topics.event("system")]
    assert len(rows) == 1
    notice = json.loads(rows[0].payload)
    assert (notice["ev"], notice["what"]) == ("notice", "spool")
    assert notice["data"]["dropped"] == [[1, 30]]  # the oldest 30 of 130 went
    watch.check()  # said once
    assert len([r for r in spool.next_batch(1000) if r.topic == topics.event("system")]) == 1
    spool.close()
