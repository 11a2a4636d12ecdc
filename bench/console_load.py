"""The console under a fleet's traffic: page and live-feed latency with 2,000 poles.

    python -m bench.console_load --poles 2000 --seconds 30 --burst 300

A real mosquitto, the ingest (one worker), a private PostgreSQL (fsync on) and the real
console; bench/fleet.py's simulated poles send their steady traffic (objects, rules,
heartbeats, alarms) for ``--seconds`` while a logged-in client loads the pages in turn and an
SSE client listens on /live.  Then ``--burst`` alarms are sent at once.  Reported: page time
(p50 / p99 / max) per page during the steady phase and during the burst, and the alarm's
end-to-end latency to the browser's feed (the pole's ``st`` at publish to the SSE event).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.centre.ingest.localdb import LocalPostgres
from agent.centre.ingest.migrate import migrate
from bench.fleet import Fleet, Mosquitto, pct, stamped, start_ingest, steady, wait_ingest
from tests.centre.consolekit import ConsoleProcess, Http, add_user

PAGES = ["/alarms", "/poles", "/events", "/alarms/rows"]


class Feed:
    """A browser's /live: the latency of each alarm event (now - the pole's st)."""

    def __init__(self, http: Http) -> None:
        self.resp = http.opener.open(http.base + "/live", timeout=120)
        self.samples: list[float] = []
        self.resyncs = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        event = ""
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "alarm":
                    st = json.loads(line[6:]).get("st")
                    if st:
                        self.samples.append(time.time() - datetime.fromisoformat(st).timestamp())
                elif line.startswith("data: ") and event == "resync":
                    self.resyncs += 1
        except (OSError, ValueError):
            return

    def take(self) -> list[float]:
        out, self.samples = self.samples, []
        return out


def load_pages(http: Http, until: float, times: dict[str, list[float]]) -> None:
    while time.monotonic() < until:
        for page in PAGES:
            t0 = time.perf_counter()
            code, _ = http.request(page)
            assert code == 200, (page, code)
            times.setdefault(page, []).append(time.perf_counter() - t0)


def row(name: str, values: list[float]) -> str:
    ms = [v * 1e3 for v in values]
    return (f"| {name} | {len(ms)} | {pct(ms, 50):.0f} | {pct(ms, 99):.0f} | "
            f"{max(ms) if ms else float('nan'):.0f} |")  # fmt: skip


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--poles", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--objects", type=float, default=0.2, help="object events per pole and s")
    ap.add_argument("--rules", type=float, default=0.005)
    ap.add_argument("--heartbeat", type=float, default=30.0)
    ap.add_argument("--alarms", type=float, default=2.0, help="alarms per s, fleet-wide")
    ap.add_argument("--burst", type=int, default=300, help="alarms sent at once at the end")
    return ap.parse_args()


def paged(http: Http, seconds: float, times: dict[str, list[float]]) -> threading.Thread:
    t = threading.Thread(target=load_pages, args=(http, time.monotonic() + seconds, times))
    t.start()
    return t


def measure(fleet: Fleet, http: Http, args: argparse.Namespace) -> dict[str, object]:
    """The steady phase, then the burst, with pages loading and the feed listening."""
    for i, p in enumerate(fleet.poles):  # every pole's heartbeat: 2,000 rows in the table
        topic, msg = p.heartbeat()
        fleet.send(i, topic, stamped(msg))
    time.sleep(3)
    feed = Feed(http)
    out: dict[str, object] = {"steady_pages": {}, "burst_pages": {}}
    pager = paged(http, args.seconds, out["steady_pages"])  # type: ignore[arg-type]
    out["sent"] = steady(fleet, args)
    pager.join()
    time.sleep(2)
    out["steady_feed"] = feed.take()
    pager = paged(http, 8, out["burst_pages"])  # type: ignore[arg-type]
    for k in range(args.burst):
        i = (k * 7) % len(fleet.poles)
        topic, msg = fleet.poles[i].alarm()
        fleet.send(i, topic, stamped(msg))
    pager.join()
    time.sleep(2)
    out["burst_feed"] = feed.take()
    out["resyncs"] = feed.resyncs
    return out


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    head = "| {} | {} | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: | ---: |"
    print(f"command: python -m bench.console_load {' '.join(sys.argv[1:])}")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"steady: {r['sent']} events in {args.seconds:g} s "
          f"({r['sent'] / args.seconds:.0f} ev/s), {args.poles} poles; burst: {args.burst} "
          f"alarms at once; resyncs {r['resyncs']}")  # fmt: skip
    for phase in ("steady", "burst"):
        print(head.format(f"page ({phase})", "loads"))
        for page in PAGES:
            print(row(page, r[f"{phase}_pages"].get(page, [])))
    print(head.format("alarm to browser feed", "alarms"))
    print(row("steady", r["steady_feed"]))
    print(row("burst", r["burst_feed"]))


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="console-load-"))
    pg = LocalPostgres(fsync=True).start()
    broker = Mosquitto(work)
    broker.start()
    url = pg.create_database("load")
    migrate(url)
    log = work / "ingest.log"
    ingest = start_ingest(url, broker.ingest_args(), 1, log)
    add_user(work / "users.txt", "bench", "operator", "bench-password")
    console = ConsoleProcess(url, broker.b.port, work / "users.txt")
    fleet = Fleet(args.poles, args.connections, broker)
    try:
        wait_ingest(log, 1)  # its SUBACK: what the poles send before it would be dropped
        fleet.connect()
        http = Http(console.url)
        assert http.login("bench", "bench-password") == 200
        results = measure(fleet, http, args)
    finally:
        fleet.close()
        console.stop()
        os.killpg(ingest.pid, signal.SIGTERM)
        ingest.wait(30)
        broker.stop()
        pg.stop()
    report(args, results)


if __name__ == "__main__":
    main()
