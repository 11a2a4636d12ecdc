"""Bytes on the wire per event kind, as the agent encodes them (with the link's ``st``).

    python -m bench.event_sizes [--n 500]

Realistic values: a Korean pole number and coordinates on bell alarms, two-decimal
scores and four-decimal boxes on object events, real-looking heartbeat facts.  The
median is over ``n`` events with varying ids, track ids and boxes.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable

from pydantic import BaseModel

from agent.events import EventStamper, encode
from agent.mqtt.link import _inject_sent_time

LOC = {"pole": "강남-0412", "lat": 37.498095, "lon": 127.02761}
AIM = 300


def box(rng: random.Random) -> tuple[float, float, float, float]:
    x, y = rng.uniform(0, 0.8), rng.uniform(0, 0.8)
    w, h = rng.uniform(0.02, 0.2), rng.uniform(0.05, 0.2)
    return (round(x, 4), round(y, 4), round(x + w, 4), round(y + h, 4))


def kinds(st: EventStamper, rng: random.Random) -> dict[str, Callable[[], BaseModel]]:
    return {
        "bell pressed (alarm, location)": lambda: st.bell(
            ev="pressed", inp="button", loc=LOC, snap=True, preset="gate"
        ),
        "bell released (held ms)": lambda: st.bell(
            ev="released", inp="button", held=rng.randint(80, 4000)
        ),
        "object start (no zone)": lambda: st.object(
            ev="start",
            cam="cam0",
            tid=rng.randint(1, 5000),
            cls="person",
            sc=round(rng.uniform(0.3, 0.99), 2),
            box=box(rng),
        ),
        "object update (one zone)": lambda: st.object(
            ev="update",
            cam="cam0",
            tid=rng.randint(1, 5000),
            cls="person",
            sc=round(rng.uniform(0.3, 0.99), 2),
            box=box(rng),
            zones=["school-gate"],
            why="zone_enter",
        ),
        "object update (two zones)": lambda: st.object(
            ev="update",
            cam="cam0",
            tid=rng.randint(1, 5000),
            cls="person",
            sc=round(rng.uniform(0.3, 0.99), 2),
            box=box(rng),
            zones=["school-gate", "crosswalk"],
            why="zone_enter",
        ),
        "object end (duration)": lambda: st.object(
            ev="end",
            cam="cam0",
            tid=rng.randint(1, 5000),
            cls="car",
            sc=round(rng.uniform(0.3, 0.99), 2),
            box=box(rng),
            dur=rng.randint(500, 120_000),
        ),
        "rule intrusion": lambda: st.rule(
            rule="night-gate",
            type="intrusion",
            cam="cam0",
            zone="school-gate",
            tids=[rng.randint(1, 5000)],
            snap=True,
        ),
        "camera lost": lambda: st.camera(ev="lost", cam="cam0", why="stall"),
        "heartbeat": lambda: st.health(
            up=rng.randint(60, 10**6),
            ver="0.1.0",
            cfg="9f3a1c2b7d",
            cams={"cam0": {"fps": 7.9, "skipped": rng.randint(0, 900), "state": "ok"}},
            bell={"state": "idle", "presses": rng.randint(0, 40)},
            spool={"depth": {"object": rng.randint(0, 50)}, "dropped": {}, "bytes": 10240},
            link={"state": "connected", "reconnects": 1, "delivered": rng.randint(0, 10**5)},
            sys={"load1": 0.42, "mem": 0.31, "disk": 0.12, "temp": 51.5},
        ),
        "command result": lambda: st.cmd_result(
            req="c-20261123-0001", cmd="ping", res="ok", data={"pong": 1}
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    rng = random.Random(7)
    st = EventStamper("pole-0412")
    print("| event                          | median bytes | max bytes | aim        |")
    print("|--------------------------------|-------------:|----------:|------------|")
    for name, make in kinds(st, rng).items():
        sizes = [len(_inject_sent_time(encode(make()))) for _ in range(args.n)]
        aim = "" if name.split()[0] not in ("bell", "object") else f"< {AIM}"
        mark = " ok" if aim and statistics.median(sizes) < AIM else (" MISS" if aim else "")
        print(
            f"| {name:<30} | {statistics.median(sizes):>12.0f} | {max(sizes):>9} |"
            f" {aim + mark:<10} |"
        )
    print("\nexample object update as sent:")
    print(_inject_sent_time(encode(kinds(st, rng)["object update (two zones)"]())).decode())
    print("example bell alarm as sent:")
    print(_inject_sent_time(encode(kinds(st, rng)["bell pressed (alarm, location)"]())).decode())


if __name__ == "__main__":
    main()
