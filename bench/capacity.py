"""Capacity: how many cameras at 5 fps this box analyses while the bell's p99 stays low.

    python bench/capacity.py [--cameras 1 2 3 4] [--presses 200] [--gap-ms 40] [--rounds 1]
        [--peer-python /tmp/ultra-venv-tv/bin/python]

For each N, in one run and interleaved, with the bell machinery of bench/bell_latency.py
(the agent's bell thread, spool and link in this process, a subscriber in another; edge to
arrival of the ``pressed`` event) timing presses while the load runs:

- ``agent FP32`` / ``agent INT8``: the vision child (the default ``isolation: process``,
  SCHED_IDLE) on N sample cameras at 5 fps, motion gating on, the default model or its
  INT8 version from ``pole-agent model quantize`` (bench/int8.py, cached);
- ``Ultralytics``: bench/capacity_peer.py in the Ultralytics venv, one ``YOLO`` per camera
  in its own thread calling ``track(persist=True)``, the same FP32 ONNX file, the same
  video paced as a live 10 fps camera, analysed at most 5 fps (skipped frames when late);
  the agent's bell runs beside it with no vision of its own;
- ``idle``: the bell alone, once per round.

Reported per phase: analysed fps per camera (of the 5 asked), analyses missed (asked minus
analysed, all cameras), the CPU of the load (the agent's two processes, or the peer's) in %
of one core, the bell's edge->centre p50 and p99, and the load average when it ran.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for p in (str(ROOT), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

import bell_latency as bl  # noqa: E402
from int8 import int8_model  # noqa: E402

from agent import assets  # noqa: E402
from agent.dev.broker import LocalBroker  # noqa: E402

FPS = 5.0


@dataclass
class Row:
    load: str
    cameras: int
    phase: bl.Phase
    frames: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    loads: list[float] = field(default_factory=list)

    def per_camera_fps(self) -> float | None:
        return self.frames / self.wall_s / self.cameras if self.wall_s else None

    def missed(self) -> int:
        return max(0, round(FPS * self.cameras * self.wall_s) - self.frames)


def bell_args(args: argparse.Namespace, cameras: int, model: str) -> argparse.Namespace:
    return argparse.Namespace(
        debounce_ms=0, gap_ms=args.gap_ms, cameras=cameras, fps=FPS, motion=True, model=model
    )


def agent_phase(row: Row, model: str, ctx: dict[str, Any], args: argparse.Namespace) -> None:
    ph = row.phase
    frames, wall, cpu = ph.frames, ph.wall_s, ph.cpu_s
    bl.measure(
        ph,
        args.presses,
        ctx["port"],
        ctx["arrivals"],
        ctx["dir"] / f"{len(os.listdir(ctx['dir']))}",
        args=bell_args(args, row.cameras, model),
    )
    row.frames += ph.frames - frames
    row.wall_s += ph.wall_s - wall
    row.cpu_s += ph.cpu_s - cpu


def peer_phase(row: Row, ctx: dict[str, Any], args: argparse.Namespace) -> None:
    peer = subprocess.Popen(
        [
            args.peer_python,
            str(BENCH / "capacity_peer.py"),
            str(assets.verify("model")),
            str(assets.verify("video")),
            "--cameras",
            str(row.cameras),
            "--fps",
            str(FPS),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert peer.stdin is not None
    assert peer.stdout is not None
    try:
        json.loads(peer.stdout.readline())  # ready: models loaded, every camera analysing
        time.sleep(2)
        bl.measure(
            row.phase,
            args.presses,
            ctx["port"],
            ctx["arrivals"],
            ctx["dir"] / f"{len(os.listdir(ctx['dir']))}",
            args=bell_args(args, row.cameras, "default"),
        )
        peer.stdin.close()
        stats = json.loads(peer.stdout.readline())
    finally:
        peer.wait(30)
    row.frames += sum(stats["frames"])
    row.wall_s += stats["wall_s"]
    row.cpu_s += stats["cpu_s"]


def run(args: argparse.Namespace, workdir: Path) -> list[Row]:
    int8 = str(int8_model())
    peer = (
        bool(args.peer_python)
        and Path(args.peer_python).exists()
        and subprocess.run(
            [args.peer_python, "-c", "import ultralytics, lap"], check=False
        ).returncode
        == 0
    )
    if not peer:
        print(f"no Ultralytics venv at {args.peer_python}: its rows stay empty")
    broker = LocalBroker(workdir / "broker").start()
    sub = subprocess.Popen(
        [
            sys.executable,
            str(BENCH / "bell_latency.py"),
            "--subscriber",
            str(broker.port),
            bl.TOPICS.event("bell"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    arrivals = bl.Arrivals(sub)
    arrivals.q.get(timeout=30)
    (workdir / "runs").mkdir()
    ctx = {"port": broker.port, "arrivals": arrivals, "dir": workdir / "runs"}
    rows: list[Row] = [Row("idle (bell alone)", 0, bl.Phase("idle"))]
    for n in args.cameras:
        rows += [
            Row("agent FP32", n, bl.Phase("process FP32")),
            Row("agent INT8", n, bl.Phase("process INT8")),
            Row("Ultralytics track FP32", n, bl.Phase("peer")),
        ]
    try:
        for r in range(args.rounds):
            order = rows if r % 2 == 0 else [rows[0], *reversed(rows[1:])]
            for row in order:
                row.loads.append(os.getloadavg()[0])
                if row.load.startswith("idle"):
                    agent_phase(row, "default", ctx, args)
                elif row.load.startswith("agent"):
                    agent_phase(row, int8 if "INT8" in row.load else "default", ctx, args)
                elif peer:
                    try:
                        peer_phase(row, ctx, args)
                    except Exception as exc:  # noqa: BLE001 - report, keep the agent's rows
                        print(f"  peer failed with {row.cameras} cameras: {exc!r}", flush=True)
                print(f"  round {r + 1}: {row.load}, {row.cameras} cameras done", flush=True)
    finally:
        assert sub.stdin is not None
        sub.stdin.close()
        sub.wait(10)
        broker.stop()
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\n{args.presses} presses per phase and round, {args.rounds} round(s), gap "
        f"{args.gap_ms} ms; cameras at {FPS:g} fps, motion gating on; 2 detector threads"
    )
    print(
        "| cameras | load | analysed fps per camera | missed | CPU of the load | "
        "bell p50 | bell p99 | load avg |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        e = row.phase.edge_ms
        if not e:
            print(f"| {row.cameras} | {row.load} | - | - | - | - | - | - |")
            continue
        fps = row.per_camera_fps()
        cpu = f"{100 * row.cpu_s / row.wall_s:.0f} %" if row.wall_s else "-"
        print(
            f"| {row.cameras or '-'} | {row.load} | {bl.fmt(fps, '.2f')} "
            f"| {row.missed() if row.wall_s else '-'} | {cpu} "
            f"| {statistics.median(e):.2f} ms | {bl.pct(e, 0.99):.2f} ms "
            f"| {statistics.mean(row.loads):.1f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--presses", type=int, default=200, help="per phase and round")
    ap.add_argument("--gap-ms", type=float, default=40.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--peer-python", default="/tmp/ultra-venv-tv/bin/python")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="capacity-") as d:
        report(run(args, Path(d)), args)


if __name__ == "__main__":
    main()
