"""`pole-agent centre ingest --nats` on a real three-node NATS cluster and a real PostgreSQL.

The ingest consumes the durable JetStream consumer ``ingest-<group>`` on the stream that NATS'
MQTT layer fills with every QoS 1 message (``$MQTT_msgs``); poles and test publishers speak
MQTT 3.1.1 to the cluster's MQTT listeners.  See docs/centre-ingest.md, "On NATS".
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("nats")

import nats

from agent.centre.ingest.natsworker import MQTT_STREAM, NatsIngestWorker, consumer_name
from agent.centre.ingest.worker import IngestSettings
from agent.dev.nats import NatsCluster, NatsNode
from agent.events import EventStamper, encode
from tests.brokers.pole import ping, start_pole
from tests.centre.observer import Centre
from tests.centre.test_ingest import IngestProc, count, one_of_each, query, wait_until

ROOT = Path(__file__).resolve().parents[2]
BASE = "pole/s1/p1"


def servers(cluster: NatsCluster) -> list[str]:
    return [f"nats://127.0.0.1:{n.client_port}" for n in cluster.nodes]


def publisher(node: NatsNode) -> Centre:
    """A 3.1.1 client with a persistent session on ``node`` (it subscribes to nothing used)."""
    return Centre(node.mqtt_port, "pole/none/#", v5=False)


async def _leaders(cluster: NatsCluster, group: str) -> tuple[str, str]:
    """The nodes leading the group's consumer and the stream ``$MQTT_msgs``."""
    nc = await nats.connect(servers(cluster), connect_timeout=2)
    try:
        js = nc.jetstream(timeout=10)
        ci = await js.consumer_info(MQTT_STREAM, consumer_name(group))
        si = await js.stream_info(MQTT_STREAM)
        return str(ci.cluster and ci.cluster.leader), str(si.cluster and si.cluster.leader)
    finally:
        await nc.close()


async def _drop_consumer(cluster: NatsCluster, group: str) -> None:
    nc = await nats.connect(servers(cluster), connect_timeout=2)
    try:
        await nc.jetstream(timeout=10).delete_consumer(MQTT_STREAM, consumer_name(group))
    except nats.errors.Error:
        pass
    finally:
        await nc.close()


@pytest.fixture
def group(nats: NatsCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A consumer group of its own; its durable consumer is deleted afterwards, so that it
    does not keep (and a later test's consumer deliver) this test's messages."""
    name = request.node.name.removeprefix("test_")[:40].replace("_", "-")
    yield name
    asyncio.run(_drop_consumer(nats, name))


@contextmanager
def nats_worker(db: str, cluster: NatsCluster, group: str, **kw: Any) -> Iterator[NatsIngestWorker]:
    settings = IngestSettings(db=db, nats=tuple(servers(cluster)), group=group, **kw)
    worker = NatsIngestWorker(settings)
    stop = threading.Event()
    t = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    t.start()
    assert worker.connected.wait(30)
    try:
        yield worker
    finally:
        stop.set()
        t.join(15)
        assert not t.is_alive()


def nats_ingest(db: str, cluster: NatsCluster, group: str, index: int) -> IngestProc:
    """``pole-agent centre ingest --nats`` as a process, ready once it pulls from the durable
    consumer (not after a fixed sleep)."""
    return IngestProc(
        db, None, "--nats", ",".join(servers(cluster)), "--group", group,
        "--index", str(index), "--ack-wait", "3", ready=": pulling from ",
    )  # fmt: skip


def kinds(db: str, dev: str) -> set[str]:
    return {r[0] for r in query(db, "SELECT kind FROM events WHERE dev = %s", dev)}


def burst(n: int) -> list[bytes]:
    st = EventStamper("p1")
    return [encode(st.object(ev="update", cam="c", tid=i, cls="car", sc=0.5, box=(0, 0, 1, 1)))
            for i in range(n)]  # fmt: skip


def stored_by(proc: IngestProc) -> int:
    """SIGTERM; the events this worker process says it stored."""
    err = proc.stop()
    return int(err.split("Counts(events=")[1].split(",")[0])


def test_a_real_agent_lands_every_kind_once(
    nats: NatsCluster, db: str, group: str, tmp_path: Path
) -> None:
    dev = "nats-ingest"
    with nats_worker(db, nats, group) as worker:
        pole = start_pole(tmp_path, dev, nats.hosts)
        try:
            online = "SELECT status, status_why FROM poles WHERE dev = %s"
            wait_until(lambda: query(db, online, dev) == [("online", "birth")], 30)
            pole.press()
            ping(nats.nodes[2], dev)
            wait_until(lambda: {"bell", "health", "cmd_result"} <= kinds(db, dev), 30)
            states = "SELECT name FROM pole_states WHERE dev = %s"
            wait_until(lambda: ("bell",) in query(db, states, dev))
            assert query(db, "SELECT dev FROM open_alarms") == [(dev,)]
        finally:
            pole.stop()
        wait_until(lambda: query(db, online, dev) == [("offline", "stopped")])
        # The kinds a pole without cameras does not send here, an alarm twice (QoS 1 may
        # duplicate), one broken message and a command, from another node.
        pub = publisher(nats.nodes[1])
        try:
            sent = one_of_each(EventStamper("p1"))
            for leaf, event in [*sent, sent[0]]:
                pub.publish(f"{BASE}/{leaf}", encode(event))
            pub.publish(f"{BASE}/event/bell", b'{"v":1,"k":"bell","ev":"exploded"}')
            pub.publish(f"{BASE}/cmd/ping", b"{}")
        finally:
            pub.close()
        wait_until(lambda: kinds(db, "p1") == set(_KINDS) and worker.counts.rejected == 1)
        wait_until(lambda: worker.counts.duplicates >= 1)
        assert query(db, "SELECT count(*) FROM events WHERE dev = 'p1'") == [(7,)]
        assert worker.counts.other == 2  # the two commands (ping, ours): seen, not stored


_KINDS = ("bell", "object", "rule", "camera", "system", "health", "cmd_result")


@contextmanager
def two_workers(
    db: str, cluster: NatsCluster, group: str, node: NatsNode
) -> Iterator[tuple[list[IngestProc], Centre]]:
    """Two ingest processes in ``group``, bound, and a publisher on ``node``."""
    procs = [nats_ingest(db, cluster, group, i) for i in (0, 1)]
    pub = publisher(node)
    try:
        for p in procs:
            p.wait_subscribed()  # both pull from the consumer before the burst
        yield procs, pub
    finally:
        pub.close()
        for p in procs:
            if p.proc.poll() is None:
                p.kill()


def test_two_workers_share_a_burst(nats: NatsCluster, db: str, group: str) -> None:
    payloads = burst(2000)
    with two_workers(db, nats, group, nats.nodes[0]) as (procs, pub):
        for p in payloads:
            pub.client.publish(f"{BASE}/event/object", p, qos=1)
        wait_until(lambda: count(db) == len(payloads), timeout=40)
        stored = [stored_by(p) for p in procs]
    assert all(n > 0 for n in stored), stored
    assert sum(stored) == len(payloads)


def test_a_worker_killed_mid_burst_loses_nothing(nats: NatsCluster, db: str, group: str) -> None:
    payloads = burst(3000)
    with two_workers(db, nats, group, nats.nodes[1]) as (procs, pub):
        for i, p in enumerate(payloads):
            pub.client.publish(f"{BASE}/event/object", p, qos=1)
            if i == 1500:
                wait_until(lambda: count(db) > 0)
                os.kill(procs[0].proc.pid, signal.SIGKILL)  # its fetched, uncommitted batch...
                procs[0].kill()
        # ... is delivered again to the survivor after the ack wait (3 s): no restart needed
        wait_until(lambda: count(db) == len(payloads), timeout=40)
        assert stored_by(procs[1]) > 0


@pytest.mark.slow
def test_the_ingest_fails_over_when_its_node_dies(nats: NatsCluster, db: str, group: str) -> None:
    """Kill the node the ingest is connected to while a pole-like publisher on another node
    sends 20 events/s: every event lands; prints how long the ingest stalled."""
    with nats_worker(db, nats, group, ack_wait_s=5.0) as worker:
        (home,) = [n for n in nats.nodes if worker.server == f"127.0.0.1:{n.client_port}"]
        far = next(n for n in nats.nodes if n is not home)
        consumer_leader, stream_leader = asyncio.run(_leaders(nats, group))
        pub = publisher(far)
        payloads = burst(400)
        sent_at: list[float] = []
        try:
            for i, p in enumerate(payloads):
                if i == 100:
                    wait_until(lambda: count(db) >= 100)
                    killed_at = time.time()
                    nats.kill(home)
                sent_at.append(time.time())
                pub.client.publish(f"{BASE}/event/object", p, qos=1)
                time.sleep(0.05)
            wait_until(lambda: count(db) == len(payloads), timeout=90)
        finally:
            pub.close()
        assert worker.reconnects >= 1
        assert worker.server not in (None, f"127.0.0.1:{home.client_port}")
    rows = query(db, "SELECT (body->>'tid')::int, received_at FROM events")
    landed = {tid: at.timestamp() for tid, at in rows}
    delays = sorted(landed[i] - sent_at[i] for i in range(100, len(payloads)))
    stall = max(landed[i] for i in range(100, len(payloads))) - killed_at
    worst = delays[-1]
    median = delays[len(delays) // 2]
    print(
        f"\nnode killed: worst publish-to-commit {worst:.1f} s, median {median:.2f} s, "
        f"last row {stall:.1f} s after the kill (publishing went on for 15 s); killed "
        f"{home.name}, consumer leader {consumer_leader}, stream leader {stream_leader}"
    )
