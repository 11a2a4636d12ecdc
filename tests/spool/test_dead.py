"""The dead-letter table: rows the broker will never take leave the queue for ``dead``, on the
real SQLite file, including one written before the table existed."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from agent.spool import Spool, SpoolRow
from agent.spool import dead as dead_module
from agent.spool.core import DEAD_MOVES
from agent.spool.dead import read_dead
from tests.fsfaults import LoopExt4
from tests.spool.common import P, fill, on_disk, pending

# Written by the spool as of commit a11e294, before the dead table: 4 alarms (one a
# retained state), 3 object events, 1 snapshot.
BEFORE = Path(__file__).parent / "data" / "spool-before-dead.db"


def queued(path: Path) -> list[tuple[int, int, str, bytes, int, int]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT id, pri, topic, payload, retain, created FROM outbox ORDER BY id"
        ).fetchall()


def test_a_file_from_before_gets_the_table_keeps_every_row_and_moves_one_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spool.db"
    shutil.copy(BEFORE, path)
    before = queued(path)
    spool = Spool(path, wall=lambda: 1_800_000_000.0)
    try:
        assert queued(path) == before  # the upgrade lost nothing
        assert len(spool) == len(before) == 8
        bell = spool.next_batch(1)[0]
        spool.set_aside(bell, "too_large: 200000 bytes, the broker takes at most 131072")
        assert bell.id not in {r.id for r in spool.next_batch(100)}
        assert spool.facts()["dead"] == 1
        assert "dead_dropped" not in spool.facts()
        # Later rows still go out in order: the queue is what it was, less the one row.
        assert [r.id for r in spool.next_batch(100)] == [3, 5, 7, 2, 4, 6, 8]
    finally:
        spool.close()
    assert queued(path) == before[1:]
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT row_id, pri, topic, payload, retain, created, dead_at, reason FROM dead"
        ).fetchall()
    (first,) = [r for r in before if r[0] == bell.id]
    assert row == [
        (bell.id, P.ALARM, first[2], first[3], 0, first[5], 1_800_000_000_000,
         "too_large: 200000 bytes, the broker takes at most 131072"),
    ]  # fmt: skip
    again = Spool(path)  # reopened: still there, still counted
    try:
        assert again.facts()["dead"] == 1
        assert len(again) == 7
    finally:
        again.close()
    rows, dropped = read_dead(path)
    assert [(r.row_id, r.topic, r.size) for r in rows] == [(bell.id, first[2], len(first[3]))]
    assert dropped == 0


def test_the_table_keeps_the_newest_rows_and_counts_the_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dead_module, "MAX_DEAD_ROWS", 3)
    monkeypatch.setattr(dead_module, "MAX_DEAD_BYTES", 2500)
    path = tmp_path / "spool.db"
    spool = Spool(path)
    try:
        fill(spool, *[P.OBJECT] * 5, size=100)
        for row in spool.next_batch(5):
            spool.set_aside(row, f"broker_drops: row {row.id}")
        assert (spool.facts()["dead"], spool.facts()["dead_dropped"]) == (3, 2)
        big = fill(spool, P.MEDIA, size=3000)[0]  # larger than the byte cap: kept alone
        spool.set_aside(spool.next_batch(1)[0], "too_large")
        assert (spool.facts()["dead"], spool.facts()["dead_dropped"]) == (1, 5)
        assert len(spool) == 0
    finally:
        spool.close()
    rows, dropped = read_dead(path)
    assert ([r.row_id for r in rows], dropped) == ([big], 5)
    with sqlite3.connect(path) as db:  # the count survives a restart
        assert db.execute("SELECT value FROM counters WHERE name = 'dead.dropped'").fetchone() == (
            5,
        )


def test_a_row_already_gone_is_not_moved(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    try:
        rowid = spool.put("t", b"x", P.OBJECT)
        row = spool.next_batch(1)[0]
        spool.ack(rowid)  # acked between the publish and the verdict
        spool.set_aside(row, "broker_drops")
        assert "dead" not in spool.facts()
        assert read_dead(tmp_path / "spool.db") == ([], 0)
        notes, missed = spool.take_dead()
        assert [(n.row_id, n.kept) for n in notes] == [(rowid, "gone")]
        assert missed == 0
    finally:
        spool.close()


def test_read_dead_opens_read_only_and_names_a_file_that_is_no_spool(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    shutil.copy(BEFORE, path)
    assert read_dead(path) == ([], 0)  # no table yet: nothing set aside, nothing written
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'dead'").fetchall() == []
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    with pytest.raises(sqlite3.DatabaseError, match="not a spool file"):
        read_dead(other)


def test_while_the_disk_refuses_a_file_row_waits_and_a_memory_row_is_dropped_and_counted(
    card: LoopExt4,
) -> None:
    clock = [0.0]
    path = card.mnt / "spool.db"
    spool = Spool(path, mono=lambda: clock[0])
    try:
        on_file = spool.put("t/big", b"x" * 500, P.ALARM)
        card.fail()
        held = spool.put("t/big2", b"y" * 600, P.ALARM)
        assert held < 0
        rows = {r.id: r for r in spool.next_batch(10)}
        spool.set_aside(rows[on_file], "too_large")
        spool.set_aside(rows[held], "too_large")
        # Neither is handed out again; the file row waits for the disk, the memory row is gone.
        assert spool.next_batch(10) == []
        facts = spool.facts()
        assert (facts["dead"], facts["dead_dropped"], facts["mem"]) == (1, 1, 0)
        notes, _ = spool.take_dead()
        assert [(n.row_id, n.kept.split(":")[0]) for n in notes] == [
            (on_file, "pending"),
            (held, "not kept"),
        ]
        card.repair()
        clock[0] += 10.0
        assert spool.recover() is True
        assert spool.next_batch(10) == []
        assert on_disk(path) == []
        assert (spool.facts()["dead"], spool.facts()["dead_dropped"]) == (1, 1)
    finally:
        spool.close()
    rows, _ = read_dead(path)
    assert [(r.row_id, r.topic) for r in rows] == [(on_file, "t/big")]


def test_moves_left_waiting_by_a_long_refusal_are_made_a_few_per_call(card: LoopExt4) -> None:
    # Each move is a transaction under the spool's lock, which a bell's put waits for: a
    # backlog is worked off by the runner's ticks (recover), DEAD_MOVES at a time, and a put
    # (which may be the bell's) makes none of them.
    clock = [0.0]
    path = card.mnt / "spool.db"
    spool = Spool(path, mono=lambda: clock[0])
    try:
        ids = [spool.put("t/big", b"x" * 100, P.RULE) for _ in range(2 * DEAD_MOVES + 5)]
        card.fail()
        for row in spool.next_batch(len(ids)):
            spool.set_aside(row, "too_large")
        card.repair()
        clock[0] += 10.0
        spool.put("t/alarm", b"a", P.ALARM)  # recovers the disk, moves nothing
        assert spool.state == "ok"
        assert read_dead(path)[0] == []  # (the heartbeat's spool.dead counts them already)
        seen = []
        while len(seen) < 5 and (not seen or seen[-1] < len(ids)):
            spool.recover()
            seen.append(len(read_dead(path)[0]))
        assert seen == [DEAD_MOVES, 2 * DEAD_MOVES, len(ids)]
        assert [p for _, p in pending(spool)] == [b"a"]
    finally:
        spool.close()
    rows, _ = read_dead(path)
    assert sorted(r.row_id for r in rows) == ids


def test_moves_still_waiting_at_close_are_made_then(card: LoopExt4) -> None:
    clock = [0.0]
    path = card.mnt / "spool.db"
    spool = Spool(path, mono=lambda: clock[0])
    ids = [spool.put("t/big", b"x" * 100, P.RULE) for _ in range(DEAD_MOVES + 3)]
    card.fail()
    for row in spool.next_batch(len(ids)):
        spool.set_aside(row, "too_large")
    card.repair()
    clock[0] += 10.0
    spool.close()  # the disk takes writes again: every waiting move is made before closing
    rows, _ = read_dead(path)
    assert sorted(r.row_id for r in rows) == ids
    assert on_disk(path) == []


def test_set_aside_takes_the_links_row(tmp_path: Path) -> None:
    """The link hands over the row it holds (a SpoolRow): the hook's signature."""
    spool = Spool(tmp_path / "spool.db")
    try:
        rowid = spool.put("t", b"x", P.RULE)
        spool.set_aside(SpoolRow(rowid, P.RULE, "t", b"x", False), "broker_drops")
        assert spool.facts()["dead"] == 1
    finally:
        spool.close()
