"""Spool and link benchmark: durable put, alarm end to end, replay after an outage.

    python -m bench.spool [--n 2000] [--replay 10000] [--dir /tmp]

Prints three tables.  Everything runs against real files and a private mosquitto
(``agent.dev.broker.LocalBroker``); the bare paho round trip is measured in the same run
so that the link's overhead reads as a ratio, not as a number from another machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.config import DeviceConfig, MqttConfig
from agent.dev.broker import LocalBroker
from agent.events import EventStamper, Topics, encode
from agent.mqtt.link import Link, StatusInfo
from agent.outbox import Outbox
from agent.spool import Spool

DEVICE = DeviceConfig(id="pole-1", site="s1", pole="P-0412", latitude=37.498, longitude=127.027)
TOPICS = Topics("pole", "s1", "pole-1")
LOC = {"pole": "P-0412", "lat": 37.498095, "lon": 127.02761}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def row(name: str, lat_ms: list[float], extra: str = "") -> str:
    return (
        f"| {name:<34} | {len(lat_ms):>6} | {statistics.median(lat_ms):>8.3f} |"
        f" {pct(lat_ms, 99):>8.3f} | {max(lat_ms):>8.3f} | {extra:<14} |"
    )


HEAD = "\n".join(
    [
        "| what                               |      n | p50 (ms) | p99 (ms) | max (ms)"
        " | rate           |",
        "|------------------------------------|-------:|---------:|---------:|---------:"
        "|----------------|",
    ]
)


def fs_of(path: Path) -> str:
    out = subprocess.run(
        ["df", "-T", str(path)], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return out[-1].split()[1] if len(out) > 1 else "?"


# --------------------------------------------------------------------------- put
def bench_put(folder: Path, n: int) -> list[str]:
    spool = Spool(folder / "put.db")
    st = EventStamper(DEVICE.id)
    lines = []
    makers: dict[str, Callable[[], object]] = {
        "put alarm (bell, fsync)": lambda: st.bell(ev="pressed", loc=LOC, snap=True),
        "put object event (fsync)": lambda: st.object(
            ev="update", cam="cam0", tid=7, cls="person", sc=0.87, box=(0.41, 0.23, 0.5, 0.67)
        ),
    }
    for name, make in makers.items():
        events = [make() for _ in range(n)]
        lat = []
        start = time.perf_counter()
        for e in events:
            t = time.perf_counter()
            spool.put(TOPICS.event(e.k), encode(e), e.pri)  # type: ignore[attr-defined]
            lat.append((time.perf_counter() - t) * 1000)
        rate = n / (time.perf_counter() - start)
        lines.append(row(name, lat, f"{rate:,.0f} put/s"))
        spool.ack_many([r.id for r in spool.next_batch(n + 10)])
    spool.close()
    lines.append(row("raw append+fsync 200 B (the floor)", raw_fsync(folder / "raw.bin", n)))
    return lines


def raw_fsync(path: Path, n: int) -> list[float]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    lat = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
    return lat


# --------------------------------------------------------------------------- round trip
def bare_paho_roundtrip(port: int, n: int) -> list[float]:
    """QoS 1 publish -> PUBACK with a plain paho client, one at a time."""
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    client.on_publish = lambda *a: done.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = b"x" * 200
    lat = []
    for _ in range(n + 20):
        done.clear()
        t = time.perf_counter()
        client.publish("bench/bare", payload, qos=1)
        done.wait(5)
        lat.append((time.perf_counter() - t) * 1000)
    client.loop_stop()
    client.disconnect()
    return lat[20:]  # the first ones warm up the connection


def link_roundtrip(folder: Path, port: int, n: int) -> list[float]:
    """Outbox.emit(bell) -> fsync -> link publishes -> PUBACK -> row deleted."""
    spool = Spool(folder / "rt.db")
    st = EventStamper(DEVICE.id)
    outbox = Outbox(spool, TOPICS, st)
    cfg = MqttConfig(port=port, backoff_min_s=0.05, backoff_max_s=0.5)
    link = Link(cfg, spool, TOPICS, StatusInfo(DEVICE, st.boot_id, "bench", "cfg"))
    gone = threading.Condition()
    real_ack = spool.ack_many

    def ack_many(ids: list[int]) -> None:  # instrumentation: wake the bench on each delete
        real_ack(ids)
        with gone:
            gone.notify_all()

    spool.ack_many = ack_many  # type: ignore[method-assign]
    link.start()
    while not link.connected:
        time.sleep(0.01)
    lat = []
    for _ in range(n + 20):
        event = st.bell(ev="pressed", loc=LOC)
        t = time.perf_counter()
        outbox.emit(event)
        with gone:
            gone.wait_for(lambda: len(spool) == 0, timeout=5)
        lat.append((time.perf_counter() - t) * 1000)
    link.stop(2.0)
    spool.close()
    return lat[20:]


# --------------------------------------------------------------------------- replay
class Subscriber:
    """The centre with a persistent session: the broker keeps its queue across restarts."""

    def __init__(self, port: int, want: int) -> None:
        self.count = 0
        self.want = want
        self.done = threading.Event()
        self.last = 0.0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="bench-centre",
            protocol=mqtt.MQTTv311,
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = lambda c, *a: c.subscribe("pole/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if "/event/" in msg.topic:
            self.count += 1
            if self.count >= self.want:
                self.last = time.perf_counter()
                self.done.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def bench_replay(folder: Path, n: int) -> list[str]:
    broker = LocalBroker(folder / "replay-broker").start()
    sub = Subscriber(broker.port, n)
    time.sleep(0.5)  # subscribed; the broker saves the session when it stops
    broker.stop()
    spool = Spool(folder / "replay.db", max_rows=max(100_000, 2 * n))
    st = EventStamper(DEVICE.id)
    outbox = Outbox(spool, TOPICS, st)
    cfg = MqttConfig(port=broker.port, backoff_min_s=0.05, backoff_max_s=0.2)
    link = Link(cfg, spool, TOPICS, StatusInfo(DEVICE, st.boot_id, "bench", "cfg"))
    link.start()
    for i in range(n):
        if i % 10 == 0:
            outbox.emit(st.bell(ev="pressed", loc=LOC))
        else:
            outbox.emit(
                st.object(ev="update", cam="cam0", tid=i, cls="person", sc=0.8, box=(0, 0, 1, 1))
            )
    assert len(spool) == n
    t0 = time.perf_counter()
    broker.start()
    while not link.connected:
        time.sleep(0.001)
    t_conn = time.perf_counter()
    while len(spool):
        time.sleep(0.001)
    t_empty = time.perf_counter()
    sub.done.wait(60)
    t_all = sub.last or time.perf_counter()
    link.stop(2.0)
    spool.close()
    sub.close()
    broker.stop()
    return [
        f"| events queued during the outage        | {n:>8,} |",
        f"| broker start -> link connected (s)     | {t_conn - t0:>8.2f} |",
        f"| link connected -> spool empty (s)      | {t_empty - t_conn:>8.2f} |",
        f"| link connected -> centre has all (s)   | {t_all - t_conn:>8.2f} |",
        f"| replay rate, connected -> all (ev/s)   | {n / (t_all - t_conn):>8,.0f} |",
        f"| centre received (incl. duplicates)     | {sub.count:>8,} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000, help="samples per latency row")
    ap.add_argument("--replay", type=int, default=10_000, help="events queued for replay")
    ap.add_argument("--dir", default="/tmp", help="where the spool files go")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-spool-", dir=args.dir))
    try:
        print(f"spool folder {folder} on {fs_of(folder)}; {os.cpu_count()} cpus\n")
        print("Durable put (synchronous=FULL, WAL)\n")
        print(HEAD)
        print("\n".join(bench_put(folder, args.n)))
        print("\nAlarm end to end vs bare paho, same broker, same run\n")
        with LocalBroker(folder / "rt-broker") as broker:
            n = max(200, args.n // 4)
            bare = bare_paho_roundtrip(broker.port, n)
            full = link_roundtrip(folder, broker.port, n)
        print(HEAD)
        print(row("bare paho QoS 1 publish->PUBACK", bare))
        print(row("emit(bell)->fsync->PUBACK->delete", full))
        ratio = statistics.median(full) / statistics.median(bare)
        print(
            f"\nratio p50 link/bare = {ratio:.1f}x; p99 link/bare = "
            f"{pct(full, 99) / pct(bare, 99):.1f}x\n"
        )
        print("Replay after an outage\n")
        print("| what                                   |    value |\n|---|---:|")
        print("\n".join(bench_replay(folder, args.replay)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
