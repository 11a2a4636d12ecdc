"""The durable outbox, on real SQLite files: order, acks, bounds, expiry, corruption, kill -9."""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.events import Priority
from agent.spool import Spool, SpoolError
from tests.spool.common import fill, on_disk, pending

ROOT = Path(__file__).resolve().parents[2]
P = Priority


def test_alarms_first_then_fifo_within_each_priority(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    fill(spool, P.OBJECT, P.TELEMETRY, P.RULE, P.ALARM, P.OBJECT, P.ALARM, P.MEDIA, P.RULE)
    assert pending(spool) == [
        (P.ALARM, b"ALARM-3"),
        (P.ALARM, b"ALARM-5"),
        (P.RULE, b"RULE-2"),
        (P.RULE, b"RULE-7"),
        (P.OBJECT, b"OBJECT-0"),
        (P.OBJECT, b"OBJECT-4"),
        (P.MEDIA, b"MEDIA-6"),
        (P.TELEMETRY, b"TELEMETRY-1"),
    ]
    # The link excludes what it has in flight; the rest keeps its order.
    first = spool.next_batch(2)
    rest = spool.next_batch(3, exclude={r.id for r in first})
    assert [r.payload.rstrip(b".") for r in rest] == [b"RULE-2", b"RULE-7", b"OBJECT-0"]
    spool.close()


def test_put_returns_the_row_and_keeps_topic_payload_retain(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    rid = spool.put("pole/a/b/state/bell", b'{"state":"idle"}', P.ALARM, retain=True)
    (row,) = spool.next_batch(5)
    assert (row.id, row.topic, row.payload, row.retain) == (
        rid,
        "pole/a/b/state/bell",
        b'{"state":"idle"}',
        True,
    )
    assert on_disk(tmp_path / "s.db") == [rid]  # committed, visible to another connection


def test_ack_deletes_and_reopen_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = Spool(path)
    ids = fill(spool, P.ALARM, P.ALARM, P.OBJECT, P.OBJECT, P.RULE)
    spool.ack(ids[0])
    spool.ack_many([ids[2], 999_999])  # an unknown id (already dropped) is harmless
    assert len(spool) == 3
    assert spool.depth()["alarm"] == 1
    assert spool.depth()["object"] == 1
    assert [r.id for r in spool.next_batch(10)] == [ids[1], ids[4], ids[3]]
    spool.close()

    again = Spool(path)
    assert len(again) == 3
    assert [r.id for r in again.next_batch(10)] == [ids[1], ids[4], ids[3]]
    assert on_disk(path) == sorted([ids[1], ids[3], ids[4]])
    again.close()


def test_row_bound_drops_the_lowest_priority_oldest_first_never_an_alarm(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = Spool(path, max_rows=10)
    fill(spool, *[P.OBJECT] * 6, *[P.TELEMETRY] * 2, P.RULE, P.RULE)
    assert len(spool) == 10
    assert spool.stats()["dropped"] == {}
    # Three alarms: the two heartbeats go first, then the oldest object.
    fill(spool, P.ALARM, P.ALARM, P.ALARM)
    assert len(spool) == 10
    assert spool.stats()["dropped"] == {"telemetry": 2, "object": 1}
    objects = [p for pri, p in pending(spool) if pri == P.OBJECT]
    assert objects == [b"OBJECT-1", b"OBJECT-2", b"OBJECT-3", b"OBJECT-4", b"OBJECT-5"]
    # Alarms past the bound: every object, then every rule goes; alarms never do.
    fill(spool, *[P.ALARM] * 12)
    assert spool.depth() == {
        "alarm": 15,
        "rule": 0,
        "object": 0,
        "media": 0,
        "telemetry": 0,
    }
    assert spool.stats()["dropped"] == {"telemetry": 2, "object": 6, "rule": 2}
    # A new object event still goes in (and is the one dropped, alarms fill the spool).
    fill(spool, P.OBJECT)
    assert spool.depth()["alarm"] == 15
    spool.close()

    again = Spool(path, max_rows=10)
    assert again.stats()["dropped"] == {"telemetry": 2, "object": 7, "rule": 2}
    assert again.depth()["alarm"] == 15
    assert on_disk(path) == [r.id for r in again.next_batch(100)]
    again.close()


def test_byte_bound_drops_media_before_objects_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", max_bytes=1000)
    fill(spool, P.OBJECT, P.OBJECT, P.OBJECT, size=100)
    fill(spool, P.MEDIA, P.MEDIA, size=300)  # 900 bytes: under the bound
    assert spool.stats()["bytes"] == 900
    fill(spool, P.ALARM, size=250)  # 1150: the older snapshot goes
    assert spool.stats()["dropped"] == {"media": 1}
    fill(spool, P.ALARM, P.ALARM, size=250)  # the other snapshot, then the oldest object
    assert spool.stats()["dropped"] == {"media": 2, "object": 1}
    assert spool.stats()["bytes"] == 950
    assert [p for _, p in pending(spool)] == [
        b"ALARM-0",
        b"ALARM-0",
        b"ALARM-1",
        b"OBJECT-1",
        b"OBJECT-2",
    ]
    fill(spool, P.ALARM, P.ALARM, size=400)  # alarms alone past the bound: all kept
    assert spool.depth()["alarm"] == 5
    assert spool.stats()["dropped"] == {"media": 2, "object": 3}
    assert spool.stats()["bytes"] == 3 * 250 + 2 * 400


def test_telemetry_expires_alarms_never(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db", telemetry_ttl_s=0)  # every heartbeat is already stale
    fill(spool, P.TELEMETRY, P.ALARM, P.TELEMETRY, P.OBJECT)
    assert [p for _, p in pending(spool)] == [b"ALARM-1", b"OBJECT-3"]
    assert spool.purge_expired() == 2
    assert len(spool) == 2
    assert spool.purge_expired() == 0
    spool.close()
    fresh = Spool(tmp_path / "f.db", telemetry_ttl_s=3600)
    fill(fresh, P.TELEMETRY)
    assert fresh.purge_expired() == 0
    assert [p for _, p in pending(fresh)] == [b"TELEMETRY-0"]


def test_a_locked_spool_is_an_error_not_moved_aside(tmp_path: Path) -> None:
    # A spool another process holds (a second agent, an inspection tool) is not corrupt:
    # moving it aside would strand every alarm waiting in it.
    path = tmp_path / "s.db"
    first = Spool(path)
    rid = first.put("t", b"alarm", P.ALARM)
    first.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SpoolError, match="locked"):
            Spool(path, busy_timeout_s=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert list(tmp_path.glob("s.db.corrupt-*")) == []
    assert on_disk(path) == [rid]


def test_concurrent_puts_from_threads_all_land(tmp_path: Path) -> None:
    import threading

    spool = Spool(tmp_path / "s.db")
    got: list[int] = []
    lock = threading.Lock()

    def worker(pri: Priority) -> None:
        for _ in range(25):
            rid = spool.put("t", b"x", pri)
            with lock:
                got.append(rid)

    threads = [threading.Thread(target=worker, args=(p,)) for p in (P.ALARM, P.OBJECT, P.RULE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 75
    assert sorted(got) == on_disk(tmp_path / "s.db")


CHILD = textwrap.dedent(
    """
    import sys
    from agent.events import Priority
    from agent.spool import Spool
    spool = Spool(sys.argv[1])
    i = 0
    while True:
        pri = Priority.ALARM if i % 3 == 0 else Priority.OBJECT
        rid = spool.put("t", b"%d" % i + b"." * 150, pri)
        sys.stdout.write(f"{rid}\\n")
        sys.stdout.flush()
        i += 1
    """
)


def test_sigkill_mid_burst_loses_no_row_that_put_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    reported: set[int] = set()
    for line in proc.stdout:  # let it get well into its burst before killing it
        reported.add(int(line))
        if len(reported) >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    # Only complete lines were reported; a torn last line was not (put had not returned).
    reported |= {int(x) for x in rest.split("\n")[:-1]}
    spool = Spool(path)
    kept = {r.id for r in spool.next_batch(1_000_000)}
    assert reported <= kept
    assert len(kept) - len(reported) <= 1  # at most the row whose id was being printed
    spool.close()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 12 MB file system (tmpfs), so that the disk really fills; needs root."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_drops_objects_keeps_every_alarm_and_logs_rarely(
    small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(small_fs / "s.db")
    assert (small_fs / "s.db.ballast").exists()
    alarms = []
    with caplog.at_level(logging.WARNING, logger="agent.spool"):
        for i in range(60_000):  # about 14 MB of rows into 12 MB, again and again
            pri = P.ALARM if i % 10 == 0 else P.OBJECT
            rid = spool.put("t", b"%d" % i + b"." * 200, pri)  # never raises here
            if pri == P.ALARM:
                alarms.append(rid)
    assert spool.full_episodes > 10
    assert spool.stats()["dropped"]["object"] > 10_000  # type: ignore[index]
    assert set(alarms) <= {r.id for r in spool.next_batch(1_000_000)}
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1  # not once per episode
    assert str(small_fs / "s.db") in full[0].getMessage()
    spool.close()
    again = Spool(small_fs / "s.db")
    assert set(alarms) <= {r.id for r in again.next_batch(1_000_000)}
    again.close()


def test_a_disk_filled_by_someone_else_holds_alarms_in_memory_until_there_is_room(
    small_fs: Path,
) -> None:
    clock = [0.0]
    spool = Spool(small_fs / "s.db", mem_rows=50, mono=lambda: clock[0])
    filler = small_fs / "other.log"  # another program's log takes every free block
    with filler.open("ab") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"x" * 65536)
            f.flush()
    # The ballast is released and alarms go on disk; once it is used up, alarms wait in
    # memory (negative ids), and anything less is refused with SpoolError, never a raw
    # sqlite3 error that would kill the bell thread.
    ids: list[int] = []
    while not ids or ids[-1] > 0:
        ids.append(spool.put("t", b"%d" % len(ids) + b"." * 200, P.ALARM))
    assert len(ids) > 100  # the WAL takes most of the ballast (whole pages per commit)
    facts = spool.facts()
    assert (facts["state"], facts["disk_full"], facts["mem"]) == ("full", True, 1)
    assert "full" in facts["error"]
    with pytest.raises(SpoolError, match="full") as info:
        spool.put("t", b"object", P.OBJECT)
    assert str(small_fs / "s.db") in str(info.value)
    held = [spool.put("t", b"%d" % i, P.ALARM) for i in range(len(ids), len(ids) + 49)]
    with pytest.raises(SpoolError, match="memory queue is full"):
        spool.put("t", b"one too many", P.ALARM)
    assert spool.facts()["overflow"] == 1
    assert spool.facts()["refused"] == {"object": 1}
    waiting = [r.id for r in spool.next_batch(100_000)]
    assert waiting == [*ids, *held]  # the disk's alarms, then memory's, in order
    filler.unlink()
    assert spool.recover() is False  # not before the retry timer says so
    clock[0] += 5.0
    assert spool.recover() is True
    assert spool.facts()["state"] == "ok"
    assert spool.facts()["mem"] == 0
    rows = spool.next_batch(100_000)
    assert [r.payload.split(b".")[0] for r in rows] == [b"%d" % i for i in range(len(rows))]
    assert all(r.id > 0 for r in rows)
    spool.close()
    again = Spool(small_fs / "s.db")
    assert len(again) == len(ids) + 49
    again.put("t", b"after", P.OBJECT)  # room again: the spool works
    again.close()
