"""`pole-agent centre ingest` against a real mosquitto and a real PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from agent.centre.ingest.records import EventRecord, Reject, parse  # noqa: E402
from agent.centre.ingest.worker import IngestSettings, IngestWorker  # noqa: E402
from agent.centre.sender import BrokerAccess  # noqa: E402
from agent.dev.broker import LocalBroker  # noqa: E402
from agent.events import EventStamper, StateMessage, StatusMessage, encode  # noqa: E402
from tests.centre.observer import Centre  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BASE = "pole/s1/p1"
JPEG = b"\xff\xd8\xff\xe0" + b"x" * 1000


def one_of_each(st: EventStamper) -> list[tuple[str, Any]]:
    box = (0.1, 0.1, 0.2, 0.3)
    return [
        ("event/bell", st.bell(ev="activated", loc={"pole": "7", "lat": 37.5, "lon": 127.0})),
        ("event/object", st.object(ev="start", cam="c1", tid=1, cls="person", sc=0.9, box=box)),
        ("event/rule", st.rule(rule="r1", type="intrusion", cam="c1", zone="z", tids=[1])),
        ("event/camera", st.camera(ev="lost", cam="c1", why="stall")),
        ("event/system", st.system(ev="fault", what="link", why="refused")),
        ("heartbeat", st.health(up=5, ver="0.1.0", cfg="abc", spool={"depth": {}})),
        ("cmd-result", st.cmd_result(req="r-1", cmd="ping", res="ok")),
    ]


def query(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def count(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM events")[0][0])


@contextmanager
def worker_thread(db: str, broker: LocalBroker, **kw: Any) -> Iterator[IngestWorker]:
    settings = IngestSettings(db=db, access=BrokerAccess(port=broker.port), **kw)
    worker = IngestWorker(settings)
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    t.start()
    assert worker.subscribed.wait(30), "the ingest worker got no SUBACK"
    try:
        yield worker
    finally:
        stop.set()
        t.join(10)


class IngestProc:
    """``pole-agent centre ingest`` as a process; its log (stderr) is read as it comes.

    :meth:`wait_subscribed` returns once the worker logged ``ready``: its SUBACK on
    mosquitto (before that, a ``$share`` group without it drops what is published: mosquitto
    keeps no session for absent members, so a test must not publish before it), or, on NATS
    (``broker`` None, ``--nats`` in ``extra``), that it pulls from the durable consumer.
    """

    def __init__(
        self, db: str, broker: LocalBroker | None, *extra: str, ready: str = ": subscribed to "
    ) -> None:
        transport = ["--broker", f"127.0.0.1:{broker.port}"] if broker is not None else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "centre", "ingest", "--db", db, *transport, *extra],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.ready = ready
        self.lines: list[str] = []
        self._subscribed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if self.ready in line:
                self._subscribed.set()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_subscribed(self, timeout: float = 60.0) -> None:
        if not self._subscribed.wait(timeout):
            raise AssertionError(f"the ingest was not ready in {timeout} s:\n{self.log}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join(10)

    def stop(self) -> str:
        """SIGTERM, wait; the whole log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        return self.log


def test_parse_rejects_what_breaks_the_contract() -> None:
    st = EventStamper("p1")
    assert isinstance(parse("pole", f"{BASE}/event/bell", encode(st.bell(ev="pressed"))),
                      EventRecord)  # fmt: skip
    assert isinstance(parse("pole", f"{BASE}/event/bell", b"not json"), Reject)
    other = encode(EventStamper("p2").bell(ev="pressed"))
    assert "p2" in parse("pole", f"{BASE}/event/bell", other).why  # type: ignore[union-attr]
    assert isinstance(parse("pole", f"{BASE}/snapshot/x", b"GIF89a"), Reject)
    assert isinstance(parse("other", f"{BASE}/status", b"{}"), Reject)


def test_every_kind_lands_once_and_alarms_open_and_close(
    db: str, broker: LocalBroker, centre: Centre
) -> None:
    st = EventStamper("p1")
    with worker_thread(db, broker) as worker:
        birth = StatusMessage(
            dev="p1", state="online", why="birth", boot=st.boot_id, ts=1000, site="s1",
            pole="7", place="Gate", lat=37.5, lon=127.0, ver="0.1",
        )  # fmt: skip
        centre.publish(f"{BASE}/status", encode(birth), retain=True)
        sent = one_of_each(st)
        for leaf, event in [*sent, sent[0]]:  # the alarm twice: QoS 1 may duplicate
            centre.publish(f"{BASE}/{leaf}", encode(event))
        state = StateMessage(dev="p1", ts=2000, state="active", since=2000)
        centre.publish(f"{BASE}/state/bell", encode(state), retain=True)
        centre.publish(f"{BASE}/snapshot/{sent[0][1].id}", JPEG)
        centre.publish(f"{BASE}/event/bell", b'{"v":1,"k":"bell","ev":"exploded"}')
        centre.publish(f"{BASE}/cmd/ping", b"{}")  # the centre's own command: not stored
        wait_until(lambda: count(db) == 7 and worker.counts.rejected == 1)
        kinds = {r[0] for r in query(db, "SELECT kind FROM events")}
        assert kinds == {"bell", "object", "rule", "camera", "system", "health", "cmd_result"}
        body = query(db, "SELECT body FROM events WHERE kind = 'object'")[0][0]
        assert body["box"] == [0.1, 0.1, 0.2, 0.3]
        assert body["cam"] == "c1"
        wait_until(lambda: bool(query(db, "SELECT 1 FROM snapshots")))
        pole = query(db, "SELECT site, pole, status, status_why, heartbeat->>'up' FROM poles")
        assert pole == [("s1", "7", "online", "birth", "5")]
        assert query(db, "SELECT state FROM pole_states") == [("active",)]
        assert query(db, "SELECT event_id FROM open_alarms") == [(sent[0][1].id,)]
        # The alarm's duplicate after the acknowledgement must not reopen it.
        ack = st.bell(ev="outputs_off", inp="outputs", why="ack")
        centre.publish(f"{BASE}/event/bell", encode(ack))
        wait_until(lambda: not query(db, "SELECT 1 FROM open_alarms"))
        centre.publish(f"{BASE}/event/bell", encode(sent[0][1]))
        will = StatusMessage(dev="p1", state="offline", why="lost", boot=st.boot_id, ts=3000)
        centre.publish(f"{BASE}/status", encode(will), retain=True)
        wait_until(lambda: query(db, "SELECT status_why FROM poles") == [("lost",)])
        assert not query(db, "SELECT 1 FROM open_alarms")
        assert worker.counts.duplicates == 2
        assert count(db) == 8


def test_bell_ack_result_closes_the_alarm(db: str, broker: LocalBroker, centre: Centre) -> None:
    st = EventStamper("p1")
    with worker_thread(db, broker):
        centre.publish(f"{BASE}/event/bell", encode(st.bell(ev="activated")))
        wait_until(lambda: bool(query(db, "SELECT 1 FROM open_alarms")))
        centre.publish(
            f"{BASE}/cmd-result", encode(st.cmd_result(req="a", cmd="bell-ack", res="ok"))
        )
        wait_until(lambda: not query(db, "SELECT 1 FROM open_alarms"))


def test_gaps_are_lost_after_the_window_late_when_they_come_and_dropped_at_once(
    db: str, broker: LocalBroker, centre: Centre
) -> None:
    st = EventStamper("p1")
    events = [st.object(ev="start", cam="c", tid=i, cls="person", sc=0.5, box=(0, 0, 1, 1))
              for i in range(8)]  # fmt: skip
    notice = st.system(ev="notice", what="spool", why="evicted", data={"dropped": [[6, 6]]})
    with worker_thread(db, broker, reorder_window_s=2.0):
        time.sleep(1.2)  # the sweeper reads from the rows committed after it began
        for e in (events[0], events[2], events[1], events[4], events[6], events[7], notice):
            centre.publish(f"{BASE}/event/object" if e.k == "object" else f"{BASE}/event/system",
                           encode(e))  # fmt: skip
        gaps = "SELECT first_seq, last_seq, state, why FROM gaps ORDER BY first_seq"
        wait_until(lambda: len(query(db, gaps)) == 1)
        assert query(db, gaps) == [(6, 6, "lost", "dropped_by_pole")]  # at once
        wait_until(lambda: len(query(db, gaps)) == 2, timeout=10)
        assert query(db, gaps) == [(4, 4, "lost", "window"), (6, 6, "lost", "dropped_by_pole")]
        centre.publish(f"{BASE}/event/object", encode(events[3]))
        wait_until(lambda: query(db, gaps)[0] == (4, 4, "late", "arrived"))
        assert (2, 2) not in [r[:2] for r in query(db, gaps)]  # reordered, never reported


def test_a_pole_without_heartbeats_goes_silent_and_its_next_heartbeat_revives_it(
    db: str, broker: LocalBroker, centre: Centre
) -> None:
    st = EventStamper("p1")
    status = "SELECT status, status_why FROM poles WHERE dev = 'p1'"
    # 6 s: longer than last_seen's coarseness (5 s), so that events every 0.5 s would keep a
    # judgement on last_seen from ever finding the pole silent.
    floor = 6.0
    with worker_thread(db, broker, silent_after_s=floor):
        # Stamped 20 s ago: the age counts from its arrival, the period from the stamps.
        first = st.health(up=1, ver="0.1", cfg="c", ts=int(time.time() * 1000) - 20_000)
        centre.publish(f"{BASE}/heartbeat", encode(first))
        wait_until(lambda: query(db, status) == [("online", "heard")])
        # Events keep coming, heartbeats do not: silent all the same (judged on heartbeats).
        deadline = time.monotonic() + 30
        while query(db, status) != [("offline", "silent")]:
            assert time.monotonic() < deadline, query(db, status)
            rule = st.rule(rule="r1", type="intrusion", cam="c1", zone="z", tids=[1])
            centre.publish(f"{BASE}/event/rule", encode(rule))
            time.sleep(0.5)
        assert count(db) > 2  # the events were stored, and did not count as heartbeats
        beat = st.health(up=21, ver="0.1", cfg="c")
        centre.publish(f"{BASE}/heartbeat", encode(beat))
        wait_until(lambda: query(db, status) == [("online", "heard")])
        # Two heartbeats over 20 s apart by their stamps: silent after 3 periods, not the floor.
        period = query(db, "SELECT heartbeat_period_s FROM poles")[0][0]
        assert period == (beat.ts - first.ts) / 1000
        time.sleep(floor + 4.0)  # the floor, and the sweeper's round (floor / 2), and a margin
        assert query(db, status) == [("online", "heard")]


def test_kill_9_mid_burst_loses_nothing(db: str, broker: LocalBroker, centre: Centre) -> None:
    proc = IngestProc(db, broker, "--group", "g")
    st = EventStamper("p1")
    burst = [st.object(ev="update", cam="c", tid=i, cls="car", sc=0.5, box=(0, 0, 1, 1))
             for i in range(3000)]  # fmt: skip
    try:
        proc.wait_subscribed()
        for i, e in enumerate(burst):
            centre.client.publish(f"{BASE}/event/object", encode(e), qos=1)
            if i == 1500:
                wait_until(lambda: count(db) > 0)
                proc.kill()
        centre.publish(f"{BASE}/event/object", encode(burst[-1]))  # the rest is flushed
        before = count(db)
        assert before < len(burst)
        proc = IngestProc(db, broker, "--group", "g")  # same client id: its session resumes
        wait_until(lambda: count(db) == len(burst), timeout=40)
    finally:
        proc.stop()


def test_two_workers_share_a_burst(db: str, broker: LocalBroker, centre: Centre) -> None:
    procs = [IngestProc(db, broker, "--group", "g2", "--index", str(i)) for i in (0, 1)]
    st = EventStamper("p1")
    burst = [st.object(ev="update", cam="c", tid=i, cls="car", sc=0.5, box=(0, 0, 1, 1))
             for i in range(2000)]  # fmt: skip
    try:
        for p in procs:
            p.wait_subscribed()
        for e in burst:
            centre.client.publish(f"{BASE}/event/object", encode(e), qos=1)
        wait_until(lambda: count(db) == len(burst), timeout=40)
    finally:
        outs = [p.stop() for p in procs]
    stored = [int(o.split("Counts(events=")[1].split(",")[0]) for o in outs]
    assert all(n > 0 for n in stored), outs
    assert sum(stored) == len(burst)
