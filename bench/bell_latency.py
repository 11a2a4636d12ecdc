"""Bell latency: simulated contact edge -> bell event at a subscriber, over a local broker.

    python bench/bell_latency.py [--presses 1000] [--debounce-ms 0] [--spool-dir DIR]

The agent side runs in this process (bell thread, SQLite spool, MQTT link), the centre in
a separate process (a paho subscriber printing each arrival with its CLOCK_MONOTONIC
time, the same clock in every process of the machine).  Each press is timed from just
before the ``down`` line is written to the simulator socket to the arrival of its
``pressed`` event; the next press starts after the ``released`` event arrived (closed
loop, agent otherwise idle).  Side by side, in the same run, it times bare spool puts
(one SQLite commit with fsync each) on the same file system: the floor of the path.

Debounce is set to 0 by default so the path itself is measured; a real configuration
adds its ``debounce_ms`` (stable-time debounce) to every press on top of these figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import __version__  # noqa: E402
from agent.bell import BellService  # noqa: E402
from agent.config import BellConfig, DeviceConfig, MqttConfig  # noqa: E402
from agent.devbroker import LocalBroker  # noqa: E402
from agent.events import EventStamper, Priority, Topics  # noqa: E402
from agent.mqtt.link import Link, StatusInfo  # noqa: E402
from agent.outbox import Outbox  # noqa: E402
from agent.spool import Spool  # noqa: E402

DEVICE = DeviceConfig(id="bench-1", site="bench", pole="B-1", latitude=37.5, longitude=127.0)
TOPICS = Topics("pole", "bench", "bench-1")


def subscriber(port: int, topic: str) -> None:
    """Child process: print one JSON line per bell event with its arrival time."""
    from tests.centre import Centre

    class Printer(Centre):
        def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
            t = time.monotonic()
            ev = json.loads(msg.payload).get("ev")
            print(json.dumps({"t": t, "ev": ev}), flush=True)

    c = Printer(port, topic)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    c.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, ms: list[float]) -> str:
    return (
        f"{name:<34} n={len(ms):>5}  p50={statistics.median(ms):7.3f} ms  "
        f"p99={pct(ms, 0.99):7.3f} ms  max={max(ms):7.3f} ms"
    )


class Arrivals:
    """Reads the subscriber's lines into a queue."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: Queue[dict[str, Any]] = Queue()
        assert proc.stdout is not None
        self.out = proc.stdout
        threading.Thread(target=self._read, name="arrivals", daemon=True).start()

    def _read(self) -> None:
        for line in self.out:
            self.q.put(json.loads(line))

    def next(self, kind: str, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
            except Empty:
                raise TimeoutError(f"no {kind} event arrived") from None
            if item.get("ev") == kind:
                return float(item["t"])


class TimedOutbox(Outbox):
    """Notes when each pressed event is durable (``emit`` returned)."""

    durable: Queue[float]

    def emit(self, event: Any) -> bool:
        ok = super().emit(event)
        if event.k == "bell" and event.ev == "pressed":
            self.durable.put(time.monotonic())
        return ok


def spool_floor(directory: Path, n: int) -> list[float]:
    spool = Spool(directory / "floor.db")
    ms = []
    for i in range(n):
        t0 = time.perf_counter()
        spool.put("bench/floor", b'{"i":%d}' % i, Priority.ALARM)
        ms.append((time.perf_counter() - t0) * 1000)
    spool.close()
    return ms


def run(presses: int, debounce_ms: int, workdir: Path) -> None:
    broker = LocalBroker(workdir / "broker").start()
    child = subprocess.Popen(
        [sys.executable, __file__, "--subscriber", str(broker.port), TOPICS.event("bell")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    arrivals = Arrivals(child)
    arrivals.q.get(timeout=20)  # ready
    spool = Spool(workdir / "spool.db")
    stamper = EventStamper(DEVICE.id)
    link = Link(
        MqttConfig(host="127.0.0.1", port=broker.port),
        spool,
        TOPICS,
        StatusInfo(DEVICE, stamper.boot_id, __version__, "bench"),
    )
    sock = workdir / "bell.sock"
    cfg = BellConfig(
        backend="simulator",
        simulator={"socket": str(sock)},
        debounce_ms=debounce_ms,
        # A bench presses many times a second: lockout and flapping detection would
        # (rightly) swallow that, so both are set out of the way.
        policy={"mode": "immediate", "lockout_s": 0, "flap_changes": 1000, "flap_window_s": 0.001},
        outputs={"backend": "none"},
    )
    outbox = TimedOutbox(spool, TOPICS, stamper)
    outbox.durable = Queue()
    bell = BellService(cfg, DEVICE, outbox)
    link.start()
    bell.start()
    edge_ms: list[float] = []
    durable_ms: list[float] = []
    publish_ms: list[float] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(str(sock))
            reader = c.makefile("r")
            for _ in range(presses):
                t0 = time.monotonic()
                c.sendall(b"down\n")
                reader.readline()
                arrived = arrivals.next("pressed")
                durable = outbox.durable.get(timeout=10)
                edge_ms.append((arrived - t0) * 1000)
                durable_ms.append((durable - t0) * 1000)
                publish_ms.append((arrived - durable) * 1000)
                c.sendall(b"up\n")
                reader.readline()
                arrivals.next("released")
                time.sleep(0.002)  # let the retained state rows go out before the next press
    finally:
        bell.stop(5)
        link.stop(5)
        spool.close()
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
        broker.stop()
    floor = spool_floor(workdir, presses)
    print(f"pole-agent {__version__}, {presses} presses, debounce {debounce_ms} ms, idle agent")
    print(summary("edge -> centre (pressed event)", edge_ms))
    print(summary("  edge -> durable in the spool", durable_ms))
    print(summary("  durable -> centre (link, broker)", publish_ms))
    print(summary("spool put alone (commit + fsync)", floor))
    ratio = statistics.median(edge_ms) / statistics.median(floor)
    print(f"ratio of medians, edge->centre / spool put: {ratio:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presses", type=int, default=1000)
    ap.add_argument("--debounce-ms", type=int, default=0)
    ap.add_argument("--spool-dir", type=Path, help="where the spool lives (default: a tmp dir)")
    ap.add_argument("--subscriber", nargs=2, metavar=("PORT", "TOPIC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.subscriber:
        subscriber(int(args.subscriber[0]), args.subscriber[1])
        return
    logging.basicConfig(level=logging.ERROR)
    if args.spool_dir:
        args.spool_dir.mkdir(parents=True, exist_ok=True)
        run(args.presses, args.debounce_ms, args.spool_dir)
        return
    with tempfile.TemporaryDirectory(prefix="bell-bench-") as d:
        run(args.presses, args.debounce_ms, Path(d))


if __name__ == "__main__":
    main()
