"""The pole's matcher over a real index file: look back, live, once per track, audit."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from agent.control.lookout import LookoutArgs
from agent.events import Event, EventStamper, LookoutEvent
from agent.lookout.active import Lookouts, Matcher
from agent.lookout.audit import AuditLog, read_audit
from agent.lookout.index import AppearanceIndex
from agent.lookout.record import AppearanceRecord

NOW = 1_700_000_000.0
JPEG = b"\xff\xd8thumb"


class Sink:
    def __init__(self) -> None:
        self.stamper = EventStamper("p1")
        self.events: list[LookoutEvent] = []
        self.snaps: dict[str, bytes] = {}

    def emit(self, event: Event) -> bool:
        assert isinstance(event, LookoutEvent)
        self.events.append(event)
        return True

    def state(self, *_a: Any) -> None:
        return None

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        self.snaps[event_id] = jpeg


FIRST_MS = int((NOW - 4 * 3600) * 1000)


def rec(track: int, upper: str, share: float = 0.8, age_s: float = 60) -> AppearanceRecord:
    last = int((NOW - age_s) * 1000)
    return AppearanceRecord(
        # a refreshed record of a track keeps its first seen: (camera, track, first) names it
        camera="cam1", track=track, cls="person", first_ms=FIRST_MS, last_ms=last,
        upper=((upper, share), ("grey", 0.1)), lower=(("blue", 0.7),), items=(), riding=None,
        size="unknown", height_ratio=None, heading="left", speed=0.1, frames=5,
        histogram=bytes([track]) * 128, thumbnail=JPEG,
    )  # fmt: skip


def setup(tmp_path: Path, mono: list[float]) -> tuple[Lookouts, Matcher, Sink, AppearanceIndex]:
    index = AppearanceIndex(tmp_path / "lookout.db", clock=lambda: NOW)
    index.insert([rec(1, "red"), rec(2, "black"), rec(3, "red", age_s=3 * 3600)])
    table = Lookouts(2, clock=lambda: mono[0])
    sink = Sink()
    audit = AuditLog(tmp_path / "audit.jsonl", clock=lambda: NOW)
    return table, Matcher(table, index, sink, audit), sink, index


def test_look_back_then_live_each_track_once(tmp_path: Path) -> None:
    mono = [100.0]
    table, matcher, sink, index = setup(tmp_path, mono)
    spec = LookoutArgs(id="L1", upper=["red"], since_s=3600, for_s=60, min_score=0.5)
    active = table.add(spec, spec.for_s, "site", "r1", site=True)
    assert not isinstance(active, str)
    matcher.started(active, broadcast=True)
    assert matcher.look_back("L1") == 1  # track 3 is older than since_s; 2 is black
    ev = sink.events[0]
    assert (ev.look, ev.tid, ev.sc, ev.live, ev.m["upper"].how) == ("L1", 1, 1.0, False, "red")
    assert sink.snaps[ev.id] == JPEG
    assert base64.b64decode(ev.hist) == bytes([1]) * 128
    # live: the same track again with the same score is not sent; a new one is
    assert matcher.live([rec(1, "red", age_s=0), rec(4, "pink", share=0.8, age_s=0)]) == 1
    assert sink.events[-1].tid == 4
    assert sink.events[-1].m["upper"].how == "red~pink"
    assert sink.events[-1].live
    # a clear rise reports a track again: 0.6 -> 1.0 (by at least RISE)
    assert matcher.live([rec(5, "pink", age_s=0)]) == 1
    assert matcher.live([rec(5, "red", age_s=0)]) == 1
    mono[0] += 61
    assert matcher.live([rec(6, "red", age_s=0)]) == 0  # expired
    kinds = [(e["kind"], e.get("track")) for e in read_audit(tmp_path / "audit.jsonl")]
    assert kinds == [
        ("lookout", None), ("candidate", 1), ("candidate", 4), ("candidate", 5),
        ("candidate", 5), ("expired", None),
    ]  # fmt: skip
    index.close()


def test_bounded_table_max_candidates_and_similar(tmp_path: Path) -> None:
    mono = [0.0]
    table, matcher, _sink, index = setup(tmp_path, mono)
    one = LookoutArgs(id="A", upper=["red", "black"], max_candidates=1)
    assert not isinstance(table.add(one, 10, "device", "r"), str)
    hist = base64.b64encode(bytes([2]) * 128).decode()
    similar = LookoutArgs(id="B", hist=hist, min_score=0.99)
    assert not isinstance(table.add(similar, 10, "device", "r"), str)
    assert "max_active" in str(table.add(LookoutArgs(id="C", upper=["red"]), 10, "site", "r"))
    assert matcher.look_back("A") == 1  # bounded by max_candidates
    assert matcher.look_back("B") == 2  # flat histograms: cosine 1; track 3 is 3 h old
    assert table.cancel("A") is not None
    assert [a["id"] for a in table.summary()] == ["B"]
    index.close()
