"""The monitor (agent.centre.liveness) and the ingest (its SQL, on a real PostgreSQL) learn
a pole's heartbeat period by one rule, and both take every heartbeat as proof of life.

One sequence of heartbeats, with what the field sends: a replay burst, a reordered older one,
a clock that steps back, a spacing too short to be a period, a new boot.  Each goes to both,
one at a time, and the learnt periods must agree after every step, and equal what the rule
says.  A second case sends a whole burst in one write, as a busy ingest batches it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from agent.centre.ingest.records import EventRecord, StatusRecord, parse  # noqa: E402
from agent.centre.ingest.store import Store  # noqa: E402
from agent.centre.liveness import Liveness  # noqa: E402
from agent.events import EventStamper, HealthEvent, StatusMessage, encode  # noqa: E402

T0 = 1_790_000_000_000  # ms

# (boot, seq, ts offset in ms, the period the rule gives after it); seq 0: a birth
SEQUENCE: list[tuple[str, int, int, float | None]] = [
    ("b1", 1, 0, None),  # one heartbeat: nothing learnt
    ("b1", 5, 30_000, 30.0),
    ("b1", 9, 60_000, 30.0),  # a replay burst: stamped a period apart, arriving together
    ("b1", 12, 90_000, 30.0),
    ("b1", 7, 45_000, 30.0),  # an older one, reordered: proof of life, not the last one
    ("b1", 15, 50_000, 30.0),  # the pole's clock stepped back 40 s: no spacing learnt ...
    ("b1", 18, 70_000, 20.0),  # ... but it is the last one now, so learning goes on
    ("b1", 19, 70_400, 20.0),  # 0.4 s: shorter than any period (a clock step)
    ("b1", 22, 80_400, 10.0),
    ("b2", 0, 0, None),  # a new boot (its birth) may run another config: learnt again
    ("b2", 1, 100_000, None),
    ("b2", 3, 160_000, 60.0),
]

# A reboot with a backlog: the old boot's heartbeats replayed after the new boot's.
REBOOT: list[tuple[str, int, int, float | None]] = [
    ("b1", 1, 0, None),
    ("b1", 5, 30_000, 30.0),
    ("b2", 0, 0, None),  # the birth of b2: its current boot, the period forgotten
    ("b2", 2, 40_000, None),
    ("b1", 9, 35_000, None),  # b1's backlog: proof of life, never the last one again
    ("b2", 4, 50_000, 10.0),
    ("b1", 10, 38_000, 10.0),
    ("b3", 1, 45_000, 10.0),  # a heartbeat of b3 before its birth: b2 is current
    ("b3", 0, -60_000, None),  # b3's birth, stamped before b2's (its clock is behind)
    ("b3", 3, 47_000, None),  # its clock is behind b2's: b3 is current all the same
    ("b3", 5, 57_000, 10.0),
    ("b2", 6, 60_000, 10.0),  # b2's backlog, stamped later: not the current boot
]


# A pole first heard of by its offline status (a will of boot b1), then b2, then b1 again.
OFFLINE_FIRST: list[tuple[str, int, int, float | None]] = [
    ("b1", -1, 0, None),  # seq -1: an offline status
    ("b2", 3, 10_000, None),
    ("b1", 7, 20_000, None),  # b1 is the current boot (the only one it said): the last
    ("b1", 9, 35_000, 15.0),
]


def beat(st: EventStamper, boot: str, seq: int, dt_ms: int) -> HealthEvent:
    event = st.health(up=1, ver="0.1", cfg="c")
    return event.model_copy(update={"boot": boot, "seq": seq, "ts": T0 + dt_ms})


def record(event: HealthEvent) -> EventRecord:
    rec = parse("pole", f"pole/s1/{event.dev}/heartbeat", encode(event))
    assert isinstance(rec, EventRecord), rec
    return rec


def pole_row(db: str, dev: str) -> dict[str, Any]:
    with psycopg.connect(db, autocommit=True) as conn:  # not the store's: its own transactions
        cur = conn.execute(
            "SELECT heartbeat_period_s, heard_at, (heartbeat->>'seq')::bigint, heartbeat->>'boot'"
            " FROM poles WHERE dev = %s",
            (dev,),
        )
        period, heard, seq, boot = cur.fetchone() or (None, None, None, None)
    return {"period": period, "heard": heard, "seq": seq, "boot": boot}


def status(dev: str, boot: str, dt_ms: int, online: bool = True) -> StatusRecord:
    state, why = ("online", "birth") if online else ("offline", "lost")
    msg = StatusMessage(dev=dev, state=state, why=why, boot=boot, ts=T0 + dt_ms, ver="0.1")
    rec = parse("pole", f"pole/s1/{dev}/status", encode(msg))
    assert isinstance(rec, StatusRecord), rec
    return rec


def run_both(db: str, dev: str, steps: list[tuple[str, int, int, float | None]]) -> None:
    """Each step to the monitor's rule and to the ingest; the same period after each."""
    st = EventStamper(dev)
    live = Liveness()
    store = Store(db)
    try:
        heard_before = None
        last: tuple[str, int] | None = None
        for i, (boot, seq, dt, want) in enumerate(steps):
            step = f"step {i} ({boot}, seq {seq})"
            if seq == 0:
                live.born(dev, boot, now=float(i))
                store.write([status(dev, boot, dt)])
            elif seq == -1:
                live.forget(dev, boot, now=float(i))
                store.write([status(dev, boot, dt, online=False)])
            else:
                event = beat(st, boot, seq, dt)
                live.update(dev, now=float(i), sent_ms=event.ts, boot=event.boot, seq=event.seq)
                store.write([record(event)])
            row = pole_row(db, dev)
            assert live.period(dev) == want, step
            assert row["period"] == pytest.approx(want) if want else row["period"] is None, step
            # Every heartbeat proves life in the ingest too (the age counts from heard_at).
            assert heard_before is None or row["heard"] > heard_before, step
            heard_before = row["heard"]
            if seq > 0 and (last is None or _replaces(steps, i, last)):
                last = (boot, seq)
            if last is not None:
                assert (row["boot"], row["seq"]) == last, step
            time.sleep(0.002)  # heard_at is now(): distinct per write
    finally:
        store.close()


def _replaces(
    steps: list[tuple[str, int, int, float | None]], i: int, last: tuple[str, int]
) -> bool:
    """The rule, spelt out for the test: does heartbeat ``i`` become the stored one?"""
    boot, seq, dt, _ = steps[i]
    births = [b for b, s, _, _ in steps[:i] if s == 0]
    current = births[-1] if births else steps[0][0]  # or the boot it was first known by
    if boot == last[0]:
        return seq > last[1]
    if boot == current:
        return True
    stamp = next(d for b, s, d, _ in steps if (b, s) == last)
    return last[0] != current and dt >= stamp


def test_the_monitor_and_the_ingest_learn_the_same_period_step_by_step(db: str) -> None:
    run_both(db, "p1", SEQUENCE)


def test_a_reboot_with_a_backlog_keeps_the_new_boot_as_the_last(db: str) -> None:
    run_both(db, "p3", REBOOT)


def test_a_pole_first_known_by_its_offline_status(db: str) -> None:
    run_both(db, "p4", OFFLINE_FIRST)


def test_a_batch_with_a_birth_in_it_is_taken_in_arrival_order(db: str) -> None:
    st = EventStamper("p5")
    live = Liveness()
    store = Store(db)
    try:
        a1, a5, b2 = beat(st, "b1", 1, 0), beat(st, "b1", 5, 30_000), beat(st, "b2", 2, 40_000)
        store.write([record(a1), record(a5)])
        store.write([record(b2), status("p5", "b2", 38_000)])  # b2's heartbeat, then its birth
        for i, e in enumerate((a1, a5, b2)):
            live.update("p5", now=float(i), sent_ms=e.ts, boot=e.boot, seq=e.seq)
        live.born("p5", "b2", now=3.0)
        row = pole_row(db, "p5")
        # Before its birth, b2's heartbeat was not the last: b1's stays; the birth then
        # forgets b1's period.  Both sides, whatever the batching.
        assert live.period("p5") is None
        assert (row["period"], row["boot"], row["seq"]) == (None, "b1", 5)
    finally:
        store.close()


def test_a_burst_in_one_write_teaches_what_it_teaches_one_by_one(db: str) -> None:
    st = EventStamper("p2")
    live = Liveness()
    store = Store(db)
    try:
        events = [beat(st, "b1", 1 + i, i * 15_000) for i in range(5)]  # 15 s apart
        store.write([record(e) for e in events])  # arrived together, one batch
        for i, e in enumerate(events):
            live.update("p2", now=float(i), sent_ms=e.ts, boot=e.boot, seq=e.seq)
        assert live.period("p2") == 15.0
        assert pole_row(db, "p2")["period"] == pytest.approx(15.0)
        assert pole_row(db, "p2")["seq"] == 5
    finally:
        store.close()
