"""Time to live across clock steps (injected clocks) and retained-state coalescing."""

from __future__ import annotations

import json
from pathlib import Path

from agent.events import EventStamper, Topics
from agent.outbox import Outbox
from agent.spool import Spool
from agent.spool.memory import MemoryQueue
from tests.spool.common import P, on_disk

HOUR, DAY = 3600.0, 86400.0


class Clocks:
    """A wall clock and a monotonic clock the test steps by hand."""

    def __init__(self) -> None:
        self.wall_s = 1_700_000_000.0
        self.mono_s = 1000.0

    def wall(self) -> float:
        return self.wall_s

    def mono(self) -> float:
        return self.mono_s

    def tick(self, s: float) -> None:
        self.wall_s += s
        self.mono_s += s


def open_spool(path: Path, c: Clocks, boot: str) -> Spool:
    return Spool(path, telemetry_ttl_s=600, wall=c.wall, mono=c.mono, boot_id=boot)


def topics_of(spool: Spool) -> list[str]:
    return [r.topic for r in spool.next_batch(1000)]


def test_clock_steps_within_one_boot_change_nothing(tmp_path: Path) -> None:
    c = Clocks()
    spool = open_spool(tmp_path / "s.db", c, "boot-a")
    spool.put("hb/1", b"x", P.TELEMETRY)
    c.wall_s -= HOUR  # NTP steps the clock back an hour
    c.tick(60)
    spool.put("hb/2", b"x", P.TELEMETRY)
    assert spool.purge_expired() == 0
    c.wall_s += DAY  # then forward a day: nothing is a day old
    assert spool.purge_expired() == 0
    assert topics_of(spool) == ["hb/1", "hb/2"]
    c.tick(550)  # hb/1 is 610 s old by the monotonic clock, hb/2 550 s
    assert topics_of(spool) == ["hb/2"]  # stale rows are not sent either
    assert spool.purge_expired() == 1
    c.tick(60)
    assert spool.purge_expired() == 1
    assert len(spool) == 0
    spool.close()


def test_rows_of_an_earlier_boot_age_by_the_wall_clock_unless_from_the_future(
    tmp_path: Path,
) -> None:
    c = Clocks()
    path = tmp_path / "s.db"
    first = open_spool(path, c, "boot-a")
    first.put("hb/old", b"x", P.TELEMETRY)
    first.put("alarm", b"x", P.ALARM)
    c.tick(300)
    first.put("hb/fresh", b"x", P.TELEMETRY)
    first.close()
    # Reboot: the monotonic clock starts again, so only the wall clock can say how old.
    c.mono_s = 5.0
    c.wall_s += 400  # hb/old is 700 s old, hb/fresh 400 s
    second = open_spool(path, c, "boot-b")
    assert second.purge_expired() == 1
    assert topics_of(second) == ["alarm", "hb/fresh"]
    second.close()
    # The clock comes back a day early (no RTC battery, no NTP yet): hb/fresh is "from the
    # future", its age unknown. It is kept, not purged, and left to the row bounds.
    c.wall_s -= DAY
    third = open_spool(path, c, "boot-c")
    c.tick(HOUR)
    assert third.purge_expired() == 0
    assert topics_of(third) == ["alarm", "hb/fresh"]
    third.close()


def test_an_older_file_gets_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "s.db"
    with sqlite3.connect(path) as db:  # the schema before boot/mono existed
        db.executescript(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, pri INTEGER NOT NULL,"
            " topic TEXT NOT NULL, payload BLOB NOT NULL, retain INTEGER NOT NULL DEFAULT 0,"
            " created INTEGER NOT NULL, expires INTEGER);"
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "INSERT INTO outbox (pri, topic, payload, created) VALUES (0, 'a', x'01', 1);"
        )
    spool = Spool(path)
    assert topics_of(spool) == ["a"]
    spool.put("b", b"x", P.ALARM)
    assert topics_of(spool) == ["a", "b"]
    spool.close()


def test_a_thousand_state_changes_on_one_topic_leave_one_row(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.db")
    topics = Topics("pole", "s", "d")
    outbox = Outbox(spool, topics, EventStamper("d"))
    outbox.state("bell", "idle", since=1)
    event = outbox.stamper.bell(ev="pressed")
    outbox.emit(event)
    for i in range(1000):
        outbox.state("camera-cam0", "lost" if i % 2 else "ok", since=i)
    rows = spool.next_batch(10_000)
    assert [r.topic for r in rows] == [
        topics.state("bell"),
        topics.event("bell"),
        topics.state("camera-cam0"),
    ]
    assert json.loads(rows[-1].payload)["since"] == 999  # only the last value matters
    assert len(on_disk(tmp_path / "s.db")) == 3
    assert spool.facts()["coalesced"] == 999
    assert spool.depth()["alarm"] == 2
    assert spool.depth()["rule"] == 1  # a camera's state is not an alarm (issue 11, item 9)
    spool.close()


def test_memory_coalesces_retained_rows_too_and_refuses_past_its_bound() -> None:
    q = MemoryQueue(limit=3)
    row = (0, "state/x", b"1", 1, 0, None, "b", 0)
    first = q.put(row)
    q.put((0, "event/bell", b"p", 0, 0, None, "b", 0))
    last = q.put((0, "state/x", b"2", 1, 0, None, "b", 0))
    assert (first, last, q.coalesced) == (-1, -3, 1)
    assert [(r.id, r.payload) for r in q.rows(set(), 10)] == [(-2, b"p"), (-3, b"2")]
    q.put((0, "event/bell", b"q", 0, 0, None, "b", 0))
    assert q.put((0, "event/bell", b"r", 0, 0, None, "b", 0)) is None
    assert q.overflow == 1
    assert [r.payload for r in q.rows(set(), 10)] == [b"p", b"2", b"q"]  # oldest kept
