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

from agent.centre.ingest.records import EventRecord, parse  # noqa: E402
from agent.centre.ingest.store import Store  # noqa: E402
from agent.centre.liveness import Liveness  # noqa: E402
from agent.events import EventStamper, HealthEvent, encode  # noqa: E402

T0 = 1_790_000_000_000  # ms

# (boot, seq, ts offset in ms, the period the rule gives after it)
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
    ("b2", 1, 100_000, None),  # a new boot may run another config: learnt again
    ("b2", 3, 160_000, 60.0),
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


def test_the_monitor_and_the_ingest_learn_the_same_period_step_by_step(db: str) -> None:
    st = EventStamper("p1")
    live = Liveness()
    store = Store(db)
    try:
        heard_before = None
        for i, (boot, seq, dt, want) in enumerate(SEQUENCE):
            event = beat(st, boot, seq, dt)
            live.update("p1", now=float(i), sent_ms=event.ts, boot=event.boot, seq=event.seq)
            store.write([record(event)])
            row = pole_row(db, "p1")
            step = f"step {i} ({boot}, seq {seq})"
            assert live.period("p1") == want, step
            assert row["period"] == pytest.approx(want) if want else row["period"] is None, step
            # Every heartbeat proves life in the ingest too (the age counts from heard_at).
            assert heard_before is None or row["heard"] > heard_before, step
            heard_before = row["heard"]
            time.sleep(0.002)  # heard_at is now(): distinct per write
        # The stored heartbeat is the last by boot and seq, not the latest stamp.
        assert (pole_row(db, "p1")["boot"], pole_row(db, "p1")["seq"]) == ("b2", 3)
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
