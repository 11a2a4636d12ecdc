"""Damaged spool files, damaged for real: garbage pages, garbage from byte 0, zero length,
and a file damaged while the spool has it open.  What SQLite can still read is kept."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from agent.events import EventStamper, Priority, Topics
from agent.outbox import Outbox
from agent.spool import SalvageReport, Spool
from agent.spool.dead import read_dead
from tests.spool.common import P, on_disk

ROWS = 600
KINDS = (P.ALARM, P.OBJECT, P.RULE)


def write_rows(path: Path) -> dict[int, tuple[Priority, bytes]]:
    """ROWS rows, one alarm in three, 200-byte payloads; closed and checkpointed."""
    spool = Spool(path)
    written = {}
    for i in range(ROWS):
        pri, body = KINDS[i % 3], f"{i}:".encode().ljust(200, b".")
        written[spool.put(f"t/{i}", body, pri)] = (pri, body)
    spool.close()
    return written


def garble_middle(path: Path, pages: int = 4) -> None:
    """Overwrite ``pages`` pages in the middle of the file (never page 1, the schema)."""
    with sqlite3.connect(path) as db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        count = db.execute("PRAGMA page_count").fetchone()[0]
    first = count // 2
    assert first > 2
    with path.open("r+b") as f:
        f.seek((first - 1) * size)
        f.write(b"\xa5" * size * pages)


def readable(path: Path, ids: list[int]) -> dict[int, bytes]:
    """Rows a separate connection can still read one by one from a copy of the damaged file."""
    copy = path.with_name("probe.db")
    shutil.copyfile(path, copy)
    out = {}
    with sqlite3.connect(copy) as db:
        for rid in ids:
            try:
                got = db.execute("SELECT payload FROM outbox WHERE id = ?", (rid,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if got is not None:
                out[rid] = bytes(got[0])
    copy.unlink()
    return out


def test_damaged_pages_keep_every_readable_row_and_count_the_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    written = write_rows(path)
    garble_middle(path)
    can_read = readable(path, sorted(written))
    assert 0 < len(can_read) < ROWS  # the damage is real, and partial
    with caplog.at_level(logging.ERROR, logger="agent.spool"):
        spool = Spool(path)  # no exception
    report = spool.take_salvage_report()
    assert isinstance(report, SalvageReport)
    assert spool.take_salvage_report() is None  # handed out once, for one event
    kept = {r.id: r for r in spool.next_batch(10_000)}
    assert set(can_read) <= set(kept)  # every row SQLite can still read is kept
    for rid, row in kept.items():  # byte for byte, with its priority and topic
        assert (row.priority, row.payload) == written[rid]
        assert row.topic == f"t/{row.payload.split(b':')[0].decode()}"
    assert report.salvaged == len(kept)
    assert report.lost >= 1
    assert report.salvaged + report.lost <= ROWS
    lost_alarms = [i for i in written if i not in kept and written[i][0] == P.ALARM]
    assert report.lost_alarms <= len(lost_alarms)
    if report.complete:
        assert report.salvaged + report.lost == ROWS
        assert report.lost_alarms == len(lost_alarms)
    facts = spool.facts()
    assert (facts["salvaged"], facts["lost"]) == (report.salvaged, report.lost)
    # Alarms first, ids (and so order) as before.
    ordered = spool.next_batch(10_000)
    n_alarms = sum(1 for r in ordered if r.priority == P.ALARM)
    assert [r.id for r in ordered[:n_alarms]] == sorted(i for i in kept if written[i][0] == P.ALARM)
    aside = Path(report.aside)
    assert aside.exists()
    assert aside.name.startswith("s.db.corrupt-")
    assert "salvaged" in caplog.text
    assert str(aside) in caplog.text
    rid = spool.put("t", b"after", P.ALARM)
    assert rid > max(written)  # no id is given out twice
    spool.close()
    assert on_disk(path) == sorted([*kept, rid])


def test_a_file_that_is_not_sqlite_is_moved_aside_and_a_fresh_spool_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    garbage = b"this is not an SQLite file\n" * 200
    path.write_bytes(garbage)
    with caplog.at_level(logging.ERROR, logger="agent.spool"):
        spool = Spool(path)
    (aside,) = tmp_path.glob("s.db.corrupt-*")
    assert aside.read_bytes() == garbage
    assert str(path) in caplog.text
    assert "damaged" in caplog.text
    assert aside.name in caplog.text
    report = spool.take_salvage_report()
    assert report is not None
    assert (report.salvaged, report.lost, report.complete) == (0, 0, False)
    assert spool.facts()["lost_complete"] is False  # the centre learns it cannot know
    rid = spool.put("t", b"x", P.ALARM)
    assert [r.id for r in spool.next_batch(5)] == [rid]
    spool.close()
    assert on_disk(path) == [rid]


def test_a_zero_length_file_is_an_empty_spool(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.touch()
    spool = Spool(path)
    assert spool.salvage_report is None
    assert spool.facts()["state"] == "ok"
    rid = spool.put("t", b"x", P.ALARM)
    spool.close()
    assert list(tmp_path.glob("s.db.corrupt-*")) == []
    assert on_disk(path) == [rid]


def test_a_file_damaged_while_open_degrades_then_salvages_and_emit_never_raises(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    clock = [0.0]
    spool = Spool(path, mono=lambda: clock[0])
    outbox = Outbox(spool, Topics("pole", "s", "d"), EventStamper("d"))
    for i in range(ROWS):
        spool.put(f"t/{i}", f"{i}:".encode().ljust(200, b"."), KINDS[i % 3])
    spool.recover()
    with sqlite3.connect(path, isolation_level=None) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        garble_middle(path)
        # Another connection's commit makes ours drop its page cache and read the file.
        other.execute("INSERT INTO counters (name, value) VALUES ('poke', 1)")
    assert len(spool.next_batch(10_000)) < ROWS
    assert spool.facts()["state"] == "degraded"
    assert "malformed" in spool.facts()["error"]
    bell = outbox.stamper.bell(ev="pressed")
    assert outbox.emit(bell) is True  # held in memory
    obj = outbox.stamper.object(ev="start", cam="c", tid=1, cls="car", sc=0.5, box=(0, 0, 1, 1))
    assert outbox.emit(obj) is False  # refused, counted, not raised
    assert spool.purge_expired() == 0
    clock[0] += 5.0
    assert spool.recover() is True  # reopened: damaged, so salvaged, then the memory rows
    report = spool.take_salvage_report()
    assert report is not None
    assert report.lost >= 1
    rows = spool.next_batch(10_000)
    assert rows[-1].priority == P.ALARM or bell.id.encode() in b"".join(r.payload for r in rows)
    assert bell.id.encode() in b"".join(r.payload for r in rows if r.priority == P.ALARM)
    assert spool.facts()["state"] == "ok"
    spool.close()


def test_a_salvage_keeps_the_rows_set_aside(tmp_path: Path) -> None:
    """The dead-letter table is what a technician reads with ``pole-agent spool dead``: a
    salvage of a damaged queue copies its readable rows too."""
    path = tmp_path / "s.db"
    spool = Spool(path)
    for i in range(3):  # first, so that their pages are not the garbled middle ones
        rowid = spool.put(f"t/dead{i}", f"too big {i}".encode(), P.RULE)
        row = next(r for r in spool.next_batch(10) if r.id == rowid)
        spool.set_aside(row, "too_large")
    spool.close()
    written = write_rows(path)
    garble_middle(path)
    assert 0 < len(readable(path, sorted(written))) < ROWS
    spool = Spool(path)
    try:
        assert spool.take_salvage_report() is not None
        assert spool.facts()["dead"] == 3
    finally:
        spool.close()
    rows, _ = read_dead(path)
    assert [(r.topic, r.size, r.reason) for r in rows] == [
        (f"t/dead{i}", len(f"too big {i}"), "too_large") for i in range(3)
    ]
