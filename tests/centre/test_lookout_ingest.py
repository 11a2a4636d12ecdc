"""The ingest keeps lookout candidates in their own table, once per event id."""

from __future__ import annotations

from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from agent.centre.ingest.records import EventRecord, parse  # noqa: E402
from agent.centre.ingest.store import Store  # noqa: E402
from agent.events import EventStamper, encode  # noqa: E402


def candidate(st: EventStamper) -> Any:
    return st.lookout(
        look="lk-1", cam="c1", tid=4, t0=1_000, t1=2_000, sc=0.82, live=False,
        m={"upper": {"m": 1.0, "how": "red"}}, seen={"upper": [["red", 0.6]], "size": "child"},
        hist="AA==", snap=True,
    )  # fmt: skip


def test_candidates_land_once(db: str) -> None:
    event = candidate(EventStamper("p1"))
    record = parse("pole", "pole/s1/p1/event/lookout", encode(event))
    assert isinstance(record, EventRecord)
    store = Store(db)
    try:
        assert store.write([record, record]).events == 1
        assert store.write([record]).duplicates == 1  # delivered again later
    finally:
        store.close()
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT event_id, dev, site, look, cam, tid, score, live, body->'m' "
            "FROM lookout_candidates"
        ).fetchall()
    assert rows == [
        (event.id, "p1", "s1", "lk-1", "c1", 4, pytest.approx(0.82), False,
         {"upper": {"m": 1.0, "how": "red"}})
    ]  # fmt: skip
