"""The appearance index: insert, query by slots, similar, expiry and bounds on a real file."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from agent.lookout.index import SCHEMA, AppearanceIndex, Slots
from agent.lookout.record import AppearanceRecord

NOW = 1_700_000_000.0


def record(track: int, last_ms: int, upper: str = "red", thumb: int = 2000) -> AppearanceRecord:
    hist = np.zeros(128, np.uint8)
    hist[track % 128] = 255
    return AppearanceRecord(
        camera="cam-1",
        track=track,
        cls="person",
        first_ms=last_ms - 5000,
        last_ms=last_ms,
        upper=((upper, 0.6), ("black", 0.3)),
        lower=(("blue", 0.7),),
        items=("backpack",) if track % 2 else (),
        riding=None,
        size="child" if track % 3 == 0 else "adult",
        height_ratio=0.9,
        heading="left",
        speed=0.1,
        frames=5,
        histogram=hist.tobytes(),
        thumbnail=bytes(np.random.default_rng(track).integers(0, 256, thumb, dtype=np.uint8)),
    )


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


def test_insert_query_similar(tmp_path: Path) -> None:
    idx = AppearanceIndex(tmp_path / "lookout.db", clock=Clock())
    now = int(NOW * 1000)
    idx.insert([record(1, now - 1000), record(2, now - 2000, upper="black"), record(3, now)])
    hits = idx.query(Slots(upper=("red",), lower=("blue",)), since_ms=now - 60_000)
    assert [h.record.track for h in hits[:2]] == [3, 1] or [h.record.track for h in hits[:2]] == [
        1,
        3,
    ]
    assert hits[0].score == 1.0
    assert hits[0].matched == {"upper": 1.0, "lower": 1.0}
    assert hits[-1].record.track == 2
    assert hits[-1].score < 1.0
    hit = idx.query(Slots(items=("backpack",), size="child"), since_ms=0, min_score=0.99)
    assert [h.record.track for h in hit] == [3]
    back = hits[0].record
    assert back == record(back.track, back.last_ms)  # every field survives the round trip
    similar = idx.similar(record(2, 0).histogram, since_ms=0, k=2)
    assert similar[0].record.track == 2
    assert similar[0].score > 0.99
    assert len(similar) == 2
    # a refresh of the same track replaces its row
    idx.insert([replace(record(1, now - 1000), last_ms=now)])
    assert idx.stats()["rows"] == 3


def test_expiry_deletes_rows_and_thumbnails(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "lookout.db"
    idx = AppearanceIndex(path, retention_h=1.0, clock=clock)
    now = int(NOW * 1000)
    idx.insert([record(k, now - k) for k in range(300)])
    full = path.stat().st_size + (tmp_path / "lookout.db-wal").stat().st_size
    assert idx.stats()["rows"] == 300
    clock.t += 3601
    assert idx.prune() == 300
    assert idx.query(Slots(), since_ms=0) == []
    idx._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert path.stat().st_size < full / 4  # the thumbnails are gone from the disk


def test_bounds_keep_the_newest(tmp_path: Path) -> None:
    now = int(NOW * 1000)
    idx = AppearanceIndex(tmp_path / "a.db", max_rows=100, clock=Clock())
    idx.insert([record(k, now - 10 * k) for k in range(150)])
    kept = {h.record.track for h in idx.query(Slots(), since_ms=0)}
    assert kept == set(range(100))
    big = AppearanceIndex(tmp_path / "b.db", max_bytes=1024 * 1024, clock=Clock())
    big.insert([record(k, now - 10 * k, thumb=20_000) for k in range(100)])
    stats = big.stats()
    assert stats["bytes"] <= 1024 * 1024
    assert 40 < stats["rows"] < 100


def test_vehicle_rows_and_an_index_from_before_vehicles(tmp_path: Path) -> None:
    """A vehicle's type round-trips; an index file written before the vtype column existed
    is opened, gains the column and keeps its rows."""
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    old = SCHEMA.replace("    vtype TEXT,\n", "")  # the schema as it was
    assert "vtype" not in old
    db.executescript(old)
    db.commit()
    db.close()
    idx = AppearanceIndex(path, clock=Clock())
    now = int(NOW * 1000)
    van = replace(record(9, now), cls="vehicle", lower=(), items=(), vtype="truck")
    idx.insert([record(1, now), van])
    got = idx.query(Slots(cls="vehicle", upper=("red",), vtype="truck"), now - 60_000)
    assert [(h.record.track, h.record.vtype, h.score) for h in got] == [(9, "truck", 1.0)]
    assert [h.record.track for h in idx.query(Slots(upper=("red",)), now - 60_000)] == [1]
    assert {k: idx.stats()[k] for k in ("rows", "person", "vehicle")} == {
        "rows": 2,
        "person": 1,
        "vehicle": 1,
    }
    # find similar compares like with like: the van's own histogram finds no person
    assert [h.record.track for h in idx.similar(van.histogram, now - 60_000)] == [1]
    assert [h.record.track for h in idx.similar(van.histogram, now - 60_000, cls="vehicle")] == [9]
    idx.close()
