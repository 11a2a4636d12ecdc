"""Fleet ingest benchmark: N simulated poles through a real mosquitto or a real three-node
NATS cluster into the ingest and a real PostgreSQL, with 1, 2 and 4 ingest workers side by
side.

    python -m bench.fleet --poles 2000 --seconds 20 --workers 1 2 4 --broker mosquitto nats

On mosquitto the poles speak MQTT 5 and the ingest shares a ``$share`` subscription; on NATS
the poles speak MQTT 3.1.1 to the three nodes' MQTT listeners (connections spread over them)
and the ingest pulls from its durable JetStream consumer (``--nats``).

Each pole has its own EventStamper (the agent's own event models and envelopes): heartbeats
every 30 s, object events at ``--objects`` per pole and second, rule events, and bell alarms
(``activated``, fleet-wide ``--alarms`` per second).  Poles are multiplexed over
``--connections`` MQTT connections (2,000 Python clients would measure Python, not the
ingest).  For each worker count, on a fresh database:

1. steady: the fleet's normal traffic for ``--seconds``; events/s committed and the alarm
   end-to-end latency (the pole's ``st`` at publish to the NOTIFY that the row's COMMIT
   sends);
2. storm: the broker restarts (every node of the cluster), every pole reconnects at once
   and replays a backlog of ``--backlog`` events (alarms first, as the spool does); the time
   until all are committed, and the drain rate, which is the ingest's capacity.

Memory per worker is the RSS of each worker process at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

from agent.centre.ingest.localdb import LocalPostgres
from agent.centre.ingest.migrate import migrate
from agent.dev.broker import LocalBroker
from agent.dev.nats import NatsCluster
from agent.events import EventStamper, Topics, encode, now_ms

ROOT = Path(__file__).resolve().parent.parent
BOX = (0.41, 0.22, 0.48, 0.61)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Pole:
    dev: str
    topics: Topics
    stamper: EventStamper
    tid: int = 0

    def object(self) -> tuple[str, BaseModel]:
        self.tid += 1
        e = self.stamper.object(ev="update", cam="cam0", tid=self.tid % 50, cls="person",
                                sc=0.87, box=BOX, zones=["crossing"], why="periodic")  # fmt: skip
        return self.topics.event("object"), e

    def rule(self) -> tuple[str, BaseModel]:
        e = self.stamper.rule(rule="night-intrusion", type="intrusion", cam="cam0",
                              zone="crossing", tids=[self.tid % 50])  # fmt: skip
        return self.topics.event("rule"), e

    def heartbeat(self) -> tuple[str, BaseModel]:
        e = self.stamper.health(up=3600, ver="0.1.0", cfg="3f2a9c", spool={"depth": {}},
                                link={"state": "up"}, sys={"load": 0.4})  # fmt: skip
        return self.topics.heartbeat, e

    def alarm(self) -> tuple[str, BaseModel]:
        e = self.stamper.bell(ev="activated", loc={"pole": self.dev, "lat": 37.5, "lon": 127.0})
        return self.topics.event("bell"), e


def stamped(msg: BaseModel) -> bytes:
    """The message as the pole's link sends it: ``st`` set at publish."""
    return encode(msg.model_copy(update={"st": now_ms()}))


class Fleet:
    """The poles and the MQTT connections they are multiplexed over."""

    def __init__(self, poles: int, connections: int, broker: Broker) -> None:
        self.poles = [Pole(f"p{i:05d}", Topics("pole", f"s{i % 25}", f"p{i:05d}"),
                           EventStamper(f"p{i:05d}")) for i in range(poles)]  # fmt: skip
        self.broker = broker
        self.clients: list[mqtt.Client] = []
        self.n_conn = connections
        self.unacked = 0
        self._lock = threading.Lock()

    def connect(self) -> None:
        self.clients = []
        for i in range(self.n_conn):
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fleet-{i}",
                            protocol=self.broker.protocol)  # fmt: skip
            c.max_inflight_messages_set(1000)
            c.on_publish = self._on_publish
            ports = self.broker.mqtt_ports
            c.connect("127.0.0.1", ports[i % len(ports)], keepalive=60)
            c.loop_start()
            self.clients.append(c)

    def _on_publish(self, *_a: object) -> None:
        with self._lock:
            self.unacked -= 1

    def send(self, pole_index: int, topic: str, payload: bytes) -> None:
        with self._lock:
            self.unacked += 1
        self.clients[pole_index % self.n_conn].publish(topic, payload, qos=1)

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


@dataclass
class Run:
    broker: str
    workers: int
    steady_rate: float = 0.0
    offered_rate: float = 0.0
    lat: list[float] = field(default_factory=list)
    storm_lat: list[float] = field(default_factory=list)
    drain_s: float = 0.0
    first_s: float = 0.0  # replay start to the first row committed after the restart
    drain_rate: float = 0.0
    rss_mb: list[float] = field(default_factory=list)


class AlarmWatch:
    """LISTEN pole_alarm: end-to-end latency of each new bell row, st to commit notice."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("LISTEN pole_alarm")
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for n in self.conn.notifies(timeout=0.5):
                at = time.time()
                st = json.loads(n.payload).get("st")
                if st:
                    self.samples.append(at - datetime.fromisoformat(st).timestamp())

    def take(self) -> list[float]:
        out, self.samples = self.samples, []
        return out

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.conn.close()


def committed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def wait_count(url: str, want: int, timeout: float, every: float = 0.2) -> float:
    """Seconds until ``want`` rows are committed (polled ``every`` s)."""
    t0 = time.monotonic()
    while committed(url) < want and time.monotonic() - t0 < timeout:
        time.sleep(every)
    return time.monotonic() - t0


def steady(fleet: Fleet, args: argparse.Namespace) -> int:
    """The fleet's normal traffic for args.seconds; the number of events sent."""
    n = len(fleet.poles)
    rates = {"object": args.objects * n, "rule": args.rules * n, "heartbeat": n / args.heartbeat,
             "alarm": args.alarms}  # fmt: skip
    owed = dict.fromkeys(rates, 0.0)
    sent = 0
    t0 = last = time.monotonic()
    rng = random.Random(1)
    while (now := time.monotonic()) - t0 < args.seconds:
        dt, last = now - last, now
        for kind, rate in rates.items():
            owed[kind] += rate * dt
            while owed[kind] >= 1:
                owed[kind] -= 1
                i = rng.randrange(n)
                topic, msg = getattr(fleet.poles[i], kind)()
                fleet.send(i, topic, stamped(msg))
                sent += 1
        time.sleep(0.01)
    return sent


class Broker(ABC):
    """What the benchmark needs of a broker: ports, the ingest's arguments, a restart."""

    name = ""
    protocol = mqtt.MQTTv5
    mqtt_ports: list[int]
    keeps_messages = False  # for the ingest while it reconnects after a restart

    @abstractmethod
    def start(self) -> None: ...
    @abstractmethod
    def stop(self) -> None: ...
    @abstractmethod
    def restart(self) -> None: ...
    @abstractmethod
    def ingest_args(self) -> list[str]: ...


class Mosquitto(Broker):
    name = "mosquitto"

    def __init__(self, work: Path) -> None:
        self.b = LocalBroker(work / "broker")

    def start(self) -> None:
        self.b.start()
        self.mqtt_ports = [self.b.port]

    def stop(self) -> None:
        self.b.stop()

    def restart(self) -> None:
        self.b.stop()
        self.b.log.unlink(missing_ok=True)
        self.b.start()

    def ingest_args(self) -> list[str]:
        return ["--broker", f"127.0.0.1:{self.b.port}"]


class Nats(Broker):
    """Three nodes; poles spread over their MQTT listeners, the ingest on JetStream."""

    name = "nats"
    protocol = mqtt.MQTTv311
    keeps_messages = True  # the durable consumer outlives a restart of the whole cluster

    def __init__(self, work: Path) -> None:
        self.c = NatsCluster(work / "nats", nodes=3)
        self.mqtt_ports = [n.mqtt_port for n in self.c.nodes]

    def start(self) -> None:
        self.c.start(timeout=60)

    def stop(self) -> None:
        self.c.stop()

    def restart(self) -> None:
        self.c.stop()
        self.c.start(timeout=60)

    def ingest_args(self) -> list[str]:
        return ["--nats", ",".join(f"nats://127.0.0.1:{n.client_port}" for n in self.c.nodes)]


BROKERS: dict[str, Callable[[Path], Broker]] = {"mosquitto": Mosquitto, "nats": Nats}


_READY = re.compile(r"(ingest-\S+): (?:subscribed to|pulling from) ")


def wait_ingest(log: Path, workers: int, since: int = 0, timeout: float = 120.0) -> None:
    """Until ``workers`` distinct workers logged, after byte ``since`` of the ingest's log,
    that they consume: the SUBACK of their ``$share`` subscription (MQTT), or the bind to
    the durable consumer (NATS).  Not a fixed sleep: under load a worker took 3-4 s, and
    what a ``$share`` group without it is sent is dropped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
        if len(set(_READY.findall(text))) >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the ingest workers did not subscribe in {timeout:g} s; see {log}")


def storm(fleet: Fleet, broker: Broker, backlog: int, workers: int, log: Path) -> tuple[int, float]:
    """Broker restart; every pole reconnects and replays ``backlog`` events, alarms first.

    On mosquitto the poles replay once the ingest is back: mosquitto 2.0 does not keep a
    shared subscription across its restart, so what poles publish before the ingest
    resubscribes has no subscriber (docs/centre-ingest.md).  NATS keeps the durable consumer
    and its messages: the poles replay as soon as the cluster is up.
    """
    per_pole = max(1, backlog // len(fleet.poles))
    queued: list[tuple[int, str, BaseModel]] = []
    for i, p in enumerate(fleet.poles):
        queued.append((i, *p.alarm()) if i % 50 == 0 else (i, *p.heartbeat()))
        queued += [(i, *p.object()) for _ in range(per_pole - 1)]
    queued.sort(key=lambda q: int(getattr(q[2], "pri", 4)))  # the spool's replay order
    fleet.close()
    since = log.stat().st_size
    broker.restart()
    if not broker.keeps_messages:
        wait_ingest(log, workers, since)
    fleet.connect()
    t0 = time.monotonic()
    for i, topic, msg in queued:
        fleet.send(i, topic, stamped(msg))
    return len(queued), t0


def start_ingest(
    url: str, broker_args: list[str], workers: int, log: Path
) -> subprocess.Popen[bytes]:
    """The ingest, its log (every worker's stderr) into ``log``, for :func:`wait_ingest`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent", "centre", "ingest", "--db", url, *broker_args,
             "--group", f"w{workers}", "--workers", str(workers)],
            cwd=ROOT, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip


def one_run(pg: LocalPostgres, args: argparse.Namespace, name: str, workers: int) -> Run:
    work = Path(tempfile.mkdtemp(prefix="fleet-"))
    broker = BROKERS[name](work)
    broker.start()
    url = pg.create_database(f"fleet_{name}_{workers}_{os.getpid()}")
    migrate(url)
    run = Run(name, workers)
    log = work / "ingest.log"
    ingest = start_ingest(url, broker.ingest_args(), workers, log)
    watch = AlarmWatch(url)
    fleet = Fleet(args.poles, args.connections, broker)
    try:
        wait_ingest(log, workers)
        fleet.connect()
        t0 = time.monotonic()
        sent = steady(fleet, args)
        wait_count(url, sent, args.timeout)
        elapsed = time.monotonic() - t0
        run.offered_rate = sent / args.seconds
        run.steady_rate = committed(url) / elapsed
        run.lat = watch.take()
        before = committed(url)
        n, t0 = storm(fleet, broker, args.backlog, workers, log)
        run.first_s = wait_count(url, before + 1, args.timeout, every=0.05)
        wait_count(url, before + n, args.timeout)
        run.drain_s = time.monotonic() - t0
        run.drain_rate = (committed(url) - before) / run.drain_s
        run.storm_lat = watch.take()
        kids = (
            psutil.Process(ingest.pid).children() if workers > 1 else [psutil.Process(ingest.pid)]
        )
        run.rss_mb = [k.memory_info().rss / 2**20 for k in kids]
    finally:
        fleet.close()
        watch.close()
        os.killpg(ingest.pid, signal.SIGTERM)
        ingest.wait(30)
        broker.stop()
    return run


def table(runs: list[Run], args: argparse.Namespace) -> str:
    base = runs[0]
    lines = [
        f"{base.broker}: {args.poles} poles over {args.connections} connections, steady "
        f"{args.seconds:g} s (offered {base.offered_rate:.0f} ev/s), storm backlog {args.backlog}",
        "| workers | steady ev/s | alarm p50 / p99 ms | storm first row s | storm drain s "
        "| drain ev/s | ratio | storm alarm p50 / p99 ms | RSS per worker MB |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        (
            f"| {r.workers} | {r.steady_rate:.0f} | {pct(r.lat, 50) * 1e3:.0f} / "
            f"{pct(r.lat, 99) * 1e3:.0f} | {r.first_s:.1f} | {r.drain_s:.1f} | "
            f"{r.drain_rate:.0f} | "
            f"{r.drain_rate / base.drain_rate:.2f}x | {pct(r.storm_lat, 50) * 1e3:.0f} / "
            f"{pct(r.storm_lat, 99) * 1e3:.0f} | {', '.join(f'{m:.0f}' for m in r.rss_mb)} |"
        )
        for r in runs
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--poles", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=20.0, help="steady phase per run")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--objects", type=float, default=0.2, help="object events per pole and s")
    ap.add_argument("--rules", type=float, default=0.005, help="rule events per pole and s")
    ap.add_argument("--heartbeat", type=float, default=30.0, help="heartbeat period, s")
    ap.add_argument("--alarms", type=float, default=2.0, help="bell alarms per s, fleet-wide")
    ap.add_argument("--backlog", type=int, default=40000, help="events replayed in the storm")
    ap.add_argument("--broker", nargs="+", choices=sorted(BROKERS), default=["mosquitto"])
    ap.add_argument("--timeout", type=float, default=180.0, help="for each phase to be stored")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    pg = LocalPostgres(fsync=True).start()
    try:
        runs = {b: [one_run(pg, args, b, w) for w in args.workers] for b in args.broker}
    finally:
        pg.stop()
    print(f"command: python -m bench.fleet {' '.join(sys.argv[1:])}")
    print(f"machine: {os.cpu_count()} cores, load before {load:.1f}")
    for b in args.broker:
        print(table(runs[b], args))


if __name__ == "__main__":
    main()
