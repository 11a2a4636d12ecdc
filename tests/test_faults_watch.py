"""FaultWatch: the pole says which seqs its spool dropped, so the centre knows them lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def _notices(spool: Spool, topics: Topics) -> list[dict[str, object]]:
    rows = [r for r in spool.next_batch(10_000) if r.topic == topics.event("system")]
    return [json.loads(r.payload) for r in rows]


def test_a_row_set_aside_is_one_small_notice_naming_it_and_its_seq(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    topics = Topics("pole", "s", "d")
    stamper = EventStamper("d")
    outbox = Outbox(spool, topics, stamper)
    watch = FaultWatch(lambda: outbox, spool)
    ev = stamper.object(ev="update", cam="c1", tid=1, cls="person", sc=0.9, box=[0, 0, 1, 1])
    body = encode(ev)[:-1] + b',"pad":"' + b"x" * 200_000 + b'"}'
    spool.put(topics.event("object"), body, Priority.OBJECT)
    reason = "too_large: 200212 bytes, the broker takes at most 131072"
    spool.set_aside(spool.next_batch(1)[0], reason)
    watch.check()
    (notice,) = _notices(spool, topics)
    assert (notice["ev"], notice["what"], notice["pri"]) == ("notice", "spool", Priority.ALARM)
    assert "message on pole/s/d/event/object (object event, " in str(notice["why"])
    assert reason in str(notice["why"])
    data = notice["data"]
    assert isinstance(data, dict)
    assert data["dead"]["event"] == ev.id
    assert data["dead"]["kept"] == "kept"
    assert data["dropped"] == [[ev.seq, ev.seq]]  # the centre counts it lost at once
    assert (
        len(encode(stamper.system(**{k: notice[k] for k in ("ev", "what", "why", "data")}))) < 1000
    )
    watch.check()  # said once
    assert len(_notices(spool, topics)) == 1
    spool.close()


def test_set_aside_notices_are_rate_limited_and_summed_up(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    topics = Topics("pole", "s", "d")
    outbox = Outbox(spool, topics, EventStamper("d"))
    watch = FaultWatch(lambda: outbox, spool)
    for i in range(25):
        spool.put(f"pole/s/d/snapshot/{i}", b"\xff" * 10, Priority.MEDIA)
    for row in spool.next_batch(25):
        spool.set_aside(row, "broker_drops: the connection dropped 3 times")
    watch.check()
    said = _notices(spool, topics)
    assert len(said) == 10  # DEAD_NOTICES a minute; the other 15 wait for the next window
    assert all("set aside a message on pole/s/d/snapshot/" in str(n["why"]) for n in said)
    watch._dead_window -= 61.0  # the next minute
    watch.check()
    said = _notices(spool, topics)
    assert len(said) == 11
    assert said[-1]["data"] == {"dead_unsaid": 15}
    # A notice about a set-aside row that is itself set aside is not said again (no loop).
    own = next(r for r in spool.next_batch(100) if r.topic == topics.event("system"))
    spool.set_aside(own, "too_large")
    watch._dead_window -= 61.0
    watch.check()
    assert len(_notices(spool, topics)) == 10
    spool.close()


def system_events(spool: Spool, topics: Topics) -> list[tuple[str, str, str]]:
    rows = [r for r in spool.next_batch(1000) if r.topic == topics.event("system")]
    return [(b["ev"], b["what"], b["why"]) for b in (json.loads(r.payload) for r in rows)]


def link(state: str, down_s: float | None, attempts: int, **more: Any) -> dict[str, Any]:
    broker = more.pop("broker", "b1:1883")
    facts = {"state": state, "down_s": down_s, "attempts": attempts, "broker": broker}
    return {**facts, "why": "timeout", "detail": f"{broker} did not answer", **more}


def watch(tmp_path: Path) -> tuple[FaultWatch, Spool, Topics]:
    spool = Spool(tmp_path / "spool.db")
    topics = Topics("pole", "s", "d")
    outbox = Outbox(spool, topics, EventStamper("d"))
    return FaultWatch(lambda: outbox, spool), spool, topics


def test_a_link_that_cannot_connect_for_a_while_is_a_fault_cleared_on_connecting(
    tmp_path: Path,
) -> None:
    w, spool, topics = watch(tmp_path)
    w.check(link("connecting", 5.0, 1), now=5)
    w.check(link("disconnected", 20.0, 4), now=20)
    assert system_events(spool, topics) == []  # a short outage is the heartbeat's
    w.check(link("disconnected", 31.0, 4), now=31)
    w.check(link("connecting", 40.0, 5), now=40)
    w.check(link("connected", None, 0, broker="b1:1883"), now=45)
    assert system_events(spool, topics) == [
        ("fault", "link", "no connection for 31 s (4 failed attempts), timeout: "
         "b1:1883 did not answer"),
        ("cleared", "link", "connected to b1:1883 after 40 s without a connection "
         "(5 failed attempts)"),
    ]  # fmt: skip
    spool.close()


def test_a_link_that_comes_and_goes_flaps_once_and_a_failover_is_a_notice(
    tmp_path: Path,
) -> None:
    w, spool, topics = watch(tmp_path)
    t = 0.0
    for _ in range(5):  # five outages of 40 s within ten minutes
        w.check(link("disconnected", 40.0, 6), now=t + 40)
        w.check(link("connected", None, 0), now=t + 41)
        t += 60
    evs = [ev for ev, _, _ in system_events(spool, topics)]
    assert evs == ["fault", "cleared", "fault", "cleared", "fault", "flapping"]
    w.check(link("connected", None, 0), now=880)
    assert len(system_events(spool, topics)) == 6
    w.check(link("connected", None, 0), now=881)  # ten quiet minutes after the last change
    back = "connected to b1:1883 after 40 s without a connection (6 failed attempts)"
    assert system_events(spool, topics)[6:] == [
        ("flapping_cleared", "link", "5 changes not reported; now cleared"),
        ("cleared", "link", back),  # the centre was last told "fault"
    ]
    w.check(
        link("connected", None, 0, broker="b2:1883", failovers=1, failover_from="b1:1883"), now=882
    )
    assert system_events(spool, topics)[8:] == [
        ("notice", "link", "moved to broker b2:1883 (from b1:1883)"),
    ]
    spool.close()


def test_failovers_that_flap_are_told_apart_from_a_link_that_flaps(tmp_path: Path) -> None:
    w, spool, topics = watch(tmp_path)
    brokers = ["b2:1883", "b1:1883"] * 4
    for i, broker in enumerate(brokers):  # back and forth every 30 s, connected throughout
        was = brokers[i - 1] if i else "b1:1883"
        facts = link("connected", None, 0, broker=broker, failovers=i + 1, failover_from=was)
        w.check(facts, now=30.0 * i)
    said = system_events(spool, topics)
    assert [ev for ev, _, _ in said][:6] == ["notice"] * 5 + ["flapping"]
    _, what, why = said[5]
    assert (what, why) == ("link", "failovers between brokers: 6 changes in 600s")
    rows = [json.loads(r.payload) for r in spool.next_batch(1000)]
    assert rows[5]["data"] == {"of": "broker"}
    w.check(link("connected", None, 0, broker="b1:1883", failovers=8), now=30.0 * 7 + 601)
    _, _, why = system_events(spool, topics)[6]
    assert why == "failovers between brokers: 3 changes not reported; now on b1:1883"
    spool.close()


def test_session_takeovers_are_a_notice_at_most_every_ten_minutes(tmp_path: Path) -> None:
    w, spool, topics = watch(tmp_path)
    for i in range(1, 4):  # taken over, connected again, taken over... (a cloned card)
        w.check(link("connected", None, 0, took_over=i), now=30.0 * i)
    w.check(link("connected", None, 0, took_over=5), now=30.0 * 4 + 600)
    assert system_events(spool, topics) == [
        ("notice", "link", "session taken over 1 time(s) at b1:1883: another unit uses this "
         "client id?"),
        ("notice", "link", "session taken over 4 time(s) at b1:1883: another unit uses this "
         "client id?"),
    ]  # fmt: skip
    spool.close()
