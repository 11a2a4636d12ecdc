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

    python bench/bell_latency.py --presses 500 --rounds 5 --gap-ms 20 \
        --vision --cameras 3 --isolation thread process:10 process

With ``--vision``, the idle phase is followed, in the same run, by one phase per
``--isolation`` value with the vision pipeline on ``--cameras`` sample cameras looping at
10 fps each, motion gating off (three of them ask for more than the detector can do on
two cores: the machine is flat out).  ``thread`` runs the VisionService in this process;
``process`` runs it in the child process (VisionProcess) under SCHED_IDLE, the default,
and ``process:N`` with niceness N instead; ``-discard`` throws vision's events away (CPU
and GIL load only, no traffic through the shared spool and link).  Each phase has a
fresh spool, link and bell; ``--rounds`` interleaves the phases so that load from
elsewhere on a shared machine falls on all of them; ``--gap-ms`` spaces the presses
(jittered) so that each press finds the agent waiting, as a real one does.  The table
gives edge->centre percentiles, the analysed fps of all cameras together, the detector's
median time, the CPU of the agent (both processes) and vision's spool writes meanwhile.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent import __version__  # noqa: E402
from agent.bell import BellService  # noqa: E402
from agent.config import BellConfig, DeviceConfig, MqttConfig  # noqa: E402
from agent.dev.broker import LocalBroker  # noqa: E402
from agent.events import EventStamper, Priority, Topics  # noqa: E402
from agent.mqtt.link import Link, StatusInfo  # noqa: E402
from agent.outbox import Outbox  # noqa: E402
from agent.spool import Spool  # noqa: E402

DEVICE = DeviceConfig(id="bench-1", site="bench", pole="B-1", latitude=37.5, longitude=127.0)
TOPICS = Topics("pole", "bench", "bench-1")


def subscriber(port: int, topic: str) -> None:
    """Child process: print one JSON line per bell event with its arrival time."""
    from tests.centre.observer import Centre

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
    """Notes when each pressed event is durable (``emit`` returned); counts vision's writes."""

    durable: Queue[float]
    writes = 0

    def emit(self, event: Any) -> bool:
        ok = super().emit(event)
        self.writes += event.k != "bell"
        if event.k == "bell" and event.ev == "pressed":
            self.durable.put(time.monotonic())
        return ok

    def state(
        self, name: str, state: str, since: int, detail: dict[str, Any] | None = None
    ) -> None:
        super().state(name, state, since, detail)
        self.writes += name.startswith("camera")

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        super().snapshot(event_id, jpeg)
        self.writes += 1


def spool_floor(directory: Path, n: int) -> list[float]:
    spool = Spool(directory / "floor.db")
    ms = []
    for i in range(n):
        t0 = time.perf_counter()
        spool.put("bench/floor", b'{"i":%d}' % i, Priority.ALARM)
        ms.append((time.perf_counter() - t0) * 1000)
    spool.close()
    return ms


def vision_cameras(n: int, fps: float = 10, motion: bool = False) -> list[Any]:
    """``n`` cameras looping the sample video at ``fps`` (its own 10), gating ``motion``."""
    from agent.config import CameraConfig

    return [
        CameraConfig.model_validate(
            {
                "id": f"cam{i + 1}",
                "source": "sample",
                "loop": True,
                "fps": fps,
                "motion": {"enabled": motion},
                "zones": [{"name": "walk", "polygon": [[0, 0.45], [1, 0.45], [1, 1], [0, 1]]}],
                "rules": [
                    {"name": "walk-in", "type": "intrusion", "zone": "walk", "cooldown_s": 5}
                ],
            }
        )
        for i in range(n)
    ]


class DiscardingOutbox(Outbox):
    """Vision's events are made (and cross the pipe) but never reach the spool or link."""

    def emit(self, event: Any) -> bool:
        return True

    def state(self, *args: Any, **kwargs: Any) -> None:
        pass

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        pass


def start_vision(
    outbox: Outbox,
    phase: str,
    cameras: int,
    *,
    fps: float = 10,
    motion: bool = False,
    model: str = "default",
) -> Any:
    """The vision pipeline on ``cameras`` sample cameras, as a thread or a child process.

    ``phase`` is ``thread`` or ``process[:PRIORITY]`` (``idle``, the default, or a niceness),
    with ``+lookout`` appended for appearance records into a lookout index beside the spool
    (what a pole with ``lookout.enabled`` does), and ``-discard`` appended when its events
    are to be thrown away, which leaves only its CPU and GIL load, without its traffic
    through the shared spool and link.
    """
    from agent.config import DetectionConfig, LookoutConfig

    kind, _, discard = phase.partition("-")
    kind, plus, _ = kind.partition("+")
    isolation, _, priority = kind.partition(":")
    lookout = None
    if plus:
        folder = Path(outbox.spool.path).parent
        lookout = LookoutConfig(
            index_path=str(folder / "lookout.db"), audit_path=str(folder / "audit.jsonl")
        )
    if discard:
        outbox = DiscardingOutbox(outbox.spool, outbox.topics, outbox.stamper)
    detection = DetectionConfig.model_validate(
        {
            "threads": 2,
            "isolation": isolation,
            "process_priority": priority or "idle",
            "model": model,
        }
    )
    from agent.vision import make_vision

    vision: Any = make_vision(
        vision_cameras(cameras, fps, motion), detection, outbox, lookout=lookout
    )
    vision.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # model loaded, every camera delivering
        if all(f.get("fps", 0) > 0 for f in vision.facts().values()):
            break
        time.sleep(0.2)
    time.sleep(2)
    return vision


def fresh_frames(vision: Any) -> tuple[float, int]:
    """(when, frames analysed so far), read the moment a count is fresh.

    A vision child reports its facts once a second: a count read at any other moment is up
    to a second old, which over a phase of a few seconds moves the analysed rate by up to
    a fifth.  So the count is taken as a new facts message arrives (the parent replaces its
    dict), and timed then; a thread's count is read directly.
    """
    if vision is None:
        return time.monotonic(), 0
    if not hasattr(vision, "_det"):  # a thread: its counter is current
        return time.monotonic(), int(vision.detector_facts().get("frames", 0))
    before = vision._det
    deadline = time.monotonic() + 5
    while vision._det is before and time.monotonic() < deadline:
        time.sleep(0.002)
    return time.monotonic(), int(vision._det.get("frames", 0))


def cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) of a process so far; this one when ``pid`` is None."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    name: str
    edge_ms: list[float] = field(default_factory=list)
    durable_ms: list[float] = field(default_factory=list)
    publish_ms: list[float] = field(default_factory=list)
    frames: int = 0  # analysed by the detector while pressing, all rounds
    wall_s: float = 0.0
    cpu_s: float = 0.0  # of the agent: this process and the vision child
    writes: int = 0  # spool writes (events, states, snapshots) while pressing
    infer_ms: list[float] = field(default_factory=list)  # the detector's p50, per round

    @property
    def analysed_fps(self) -> float | None:
        return self.frames / self.wall_s if self.wall_s else None

    @property
    def cpu_pct(self) -> float | None:
        return 100 * self.cpu_s / self.wall_s if self.wall_s else None


def press_loop(
    sock: Path, n: int, arrivals: Arrivals, outbox: TimedOutbox, ph: Phase, *, gap_ms: float
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(sock))
        reader = c.makefile("r")
        for _ in range(n):
            t0 = time.monotonic()
            c.sendall(b"down\n")
            reader.readline()
            arrived = arrivals.next("pressed")
            durable = outbox.durable.get(timeout=10)
            ph.edge_ms.append((arrived - t0) * 1000)
            ph.durable_ms.append((durable - t0) * 1000)
            ph.publish_ms.append((arrived - durable) * 1000)
            c.sendall(b"up\n")
            reader.readline()
            arrivals.next("released")
            # Let the retained state rows go out before the next press; a jittered gap
            # does not lock into step with the cameras' 10 fps.
            time.sleep(gap_ms / 1000 * random.uniform(0.5, 1.5))


def measure(
    ph: Phase,
    presses: int,
    port: int,
    arrivals: Arrivals,
    workdir: Path,
    *,
    args: argparse.Namespace,
) -> None:
    """One round of a phase: a fresh spool, link and bell; vision as its name says."""
    name = ph.name
    workdir.mkdir(parents=True, exist_ok=True)
    spool = Spool(workdir / "spool.db")
    stamper = EventStamper(DEVICE.id)
    link = Link(
        MqttConfig(host="127.0.0.1", port=port),
        spool,
        TOPICS,
        StatusInfo(DEVICE, stamper.boot_id, __version__, "bench"),
    )
    sock = workdir / "bell.sock"
    cfg = BellConfig(
        backend="simulator",
        simulator={"socket": str(sock)},
        debounce_ms=args.debounce_ms,
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
    # Phases that are not vision's (idle, or a peer loading the machine from outside).
    vision = (
        None
        if name == "idle" or name.startswith("peer")
        else start_vision(
            outbox,
            name.split(" ")[0],
            args.cameras,
            fps=getattr(args, "fps", 10),
            motion=getattr(args, "motion", False),
            model=getattr(args, "model", "default"),
        )
    )
    try:
        t0, frames0 = fresh_frames(vision)
        child = getattr(vision, "pid", None)
        cpu0 = cpu_s(None) + (cpu_s(child) if child else 0.0)
        writes0 = outbox.writes
        press_loop(sock, presses, arrivals, outbox, ph, gap_ms=args.gap_ms)
        ph.writes += outbox.writes - writes0
        if vision is not None:
            t1, frames1 = fresh_frames(vision)
            det = vision.detector_facts()
            ph.frames += frames1 - frames0
            ph.wall_s += t1 - t0
            ph.cpu_s += cpu_s(None) + (cpu_s(child) if child else 0.0) - cpu0
            ph.infer_ms.append(det.get("infer_ms_p50") or 0.0)
    finally:
        if vision is not None:
            vision.stop(5)
        bell.stop(5)
        link.stop(5)
        spool.close()


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def report(phases: list[Phase], floor: list[float], args: argparse.Namespace) -> None:
    load = f", vision on {args.cameras} sample cameras at 10 fps" if args.vision else ""
    print(
        f"pole-agent {__version__}, {args.presses} presses per phase in {args.rounds} "
        f"interleaved round(s), debounce {args.debounce_ms} ms{load}"
    )
    for ph in phases:
        print(f"-- {ph.name}")
        print(summary("edge -> centre (pressed event)", ph.edge_ms))
        print(summary("  edge -> durable in the spool", ph.durable_ms))
        print(summary("  durable -> centre (link, broker)", ph.publish_ms))
    print(summary("spool put alone (commit + fsync)", floor))
    print()
    print("| vision | edge->centre p50 | p95 | p99 | max | > 10 ms | edge->durable p99 ", end="")
    print("| analysed fps | infer p50 | agent CPU | vision spool writes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ph in phases:
        e = ph.edge_ms
        infer = statistics.median(ph.infer_ms) if ph.infer_ms else None
        print(
            f"| {ph.name} | {statistics.median(e):.2f} ms | {pct(e, 0.95):.2f} ms "
            f"| {pct(e, 0.99):.2f} ms | {max(e):.1f} ms | {sum(x > 10 for x in e)} "
            f"| {pct(ph.durable_ms, 0.99):.2f} ms | {fmt(ph.analysed_fps, '.1f')} "
            f"| {fmt(infer, '.0f')} ms | {fmt(ph.cpu_pct, '.0f')} % | {ph.writes} |"
        )
    base = pct(phases[0].edge_ms, 0.99)
    for ph in phases[1:]:
        print(f"p99 ratio {ph.name} / idle: {pct(ph.edge_ms, 0.99) / base:.2f}")


def run(args: argparse.Namespace, workdir: Path) -> None:
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
    phases = [Phase(n) for n in ["idle", *(args.isolation if args.vision else [])]]
    # Rounds interleave the phases, so that a burst of load from elsewhere on a shared
    # machine spreads over all of them instead of falling on one.
    per_round = [args.presses // args.rounds] * args.rounds
    per_round[-1] += args.presses - sum(per_round)
    try:
        for r, n in enumerate(per_round):
            for i, ph in enumerate(phases):
                measure(ph, n, broker.port, arrivals, workdir / f"r{r}p{i}", args=args)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
        broker.stop()
    report(phases, spool_floor(workdir, args.presses), args)


def phase_name(text: str) -> str:
    if not re.fullmatch(r"(thread|process(:(idle|1?[0-9]))?)(\+lookout)?(-discard)?", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: thread or process[:idle|0..19][+lookout][-discard]"
        )
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presses", type=int, default=1000)
    ap.add_argument("--debounce-ms", type=int, default=0)
    ap.add_argument(
        "--vision", action="store_true", help="after the idle phase, phases with vision running"
    )
    ap.add_argument("--cameras", type=int, default=3, help="sample cameras at 10 fps (--vision)")
    ap.add_argument(
        "--isolation",
        nargs="+",
        type=phase_name,
        default=["thread", "process"],
        help="vision phases, in this order (--vision): thread, process, process:NICENESS "
        "(default priority: idle); a +lookout suffix adds appearance records into a lookout "
        "index; a -discard suffix drops vision's events",
    )
    ap.add_argument(
        "--gap-ms", type=float, default=2.0, help="mean pause after each press (jittered 50%%)"
    )
    ap.add_argument(
        "--rounds", type=int, default=1, help="split the presses into interleaved rounds"
    )
    ap.add_argument("--spool-dir", type=Path, help="where the spool lives (default: a tmp dir)")
    ap.add_argument("--subscriber", nargs=2, metavar=("PORT", "TOPIC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.subscriber:
        subscriber(int(args.subscriber[0]), args.subscriber[1])
        return
    logging.basicConfig(level=logging.ERROR)
    if args.spool_dir:
        args.spool_dir.mkdir(parents=True, exist_ok=True)
        run(args, args.spool_dir)
        return
    with tempfile.TemporaryDirectory(prefix="bell-bench-") as d:
        run(args, Path(d))


if __name__ == "__main__":
    main()
