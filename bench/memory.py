"""Memory of the whole agent per process, and what each saving costs in speed, in one run.

    python bench/memory.py [--settle 25] [--rounds 1] [--frames 30] [--no-int8]

1. The whole agent (``pole-agent run``, dev-sim profile, one sample camera at 5 fps, vision
   in its child process) against a private mosquitto, once per variant: ``detection.memory``
   fast / balanced / lean, with the FP32 default model and (unless ``--no-int8``) the INT8
   one made by ``pole-agent model quantize`` (``bench/int8.py``).  After ``--settle``
   seconds: RSS and PSS of the agent and of its vision child, and (as root) the distinct
   physical pages the two map, from /proc/PID/pagemap: what the whole agent holds in RAM,
   each page once.  The sum of RSS counts a page both processes map (libpython, pydantic's
   core, libc) twice; PSS splits a shared page between *every* process that maps it, so
   other programs on the machine that load the same libraries lower it: the distinct
   pages are the measure of "the whole agent is resident in N MB".
2. Speed of the same settings: one Detector per (model, memory) in this process, run on the
   same decoded frames in alternating rounds; median wall ms and CPU ms per frame, and the
   ratio to ``fast`` (the old default) of the same model.
3. What the agent process imports: ``numpy``, ``cv2`` and ``onnxruntime`` must be absent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.dev.broker import LocalBroker  # noqa: E402
from tests.agentproc import AgentProcess, write_site  # noqa: E402
from tests.vision.test_parent_imports import parent_imports  # noqa: E402

MODES = ("fast", "balanced", "lean")


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (status) and Pss (smaps_rollup) of ``pid`` in kB."""
    out: dict[str, int] = {}
    for name in ("status", "smaps_rollup"):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Pss"):
                out[key] = int(value.split()[0])
    return out


def frames(pid: int) -> set[int]:
    """The physical page frames ``pid`` has resident (root only: others read zeros)."""
    out: set[int] = set()
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
            if line.endswith("[vsyscall]"):
                continue
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            pagemap.seek(start // 4096 * 8)
            data = pagemap.read((end - start) // 4096 * 8)
            for (entry,) in struct.iter_unpack("Q", data):
                if entry >> 63:  # present
                    out.add(entry & ((1 << 55) - 1))
    return out


def distinct_kb(pids: list[int]) -> int:
    """kB of distinct resident pages of ``pids`` together; 0 when not root."""
    if os.geteuid() != 0:
        return 0
    every: set[int] = set()
    for pid in pids:
        every |= frames(pid)
    return len(every) * 4


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def agent_memory(
    folder: Path, port: int, detection: dict[str, str], settle: float
) -> tuple[dict[str, int], dict[str, int]]:
    """(agent, vision child) memory of a whole agent after ``settle`` seconds."""
    camera = {"id": "cam1", "source": "sample", "loop": True, "fps": 5}
    # The default priority (the tests' site files lower the child by a niceness instead).
    extra = {"detection": {"process_priority": "idle", **detection}}
    site = write_site(folder, port, cameras=[camera], extra=extra)
    agent = AgentProcess(site)
    try:
        time.sleep(settle)
        if agent.proc.poll() is not None:
            raise RuntimeError(f"agent exited: {agent.output()[-2000:]}")
        kids = children(agent.proc.pid)
        if detection.get("isolation") == "thread":  # one process: vision is a thread of it
            if kids:
                raise RuntimeError(f"expected no vision child, found {kids}")
            none = {"VmRSS": 0, "VmHWM": 0, "Pss": 0}
            return status_kb(agent.proc.pid), {**none, "Distinct": distinct_kb([agent.proc.pid])}
        if len(kids) != 1:
            raise RuntimeError(f"expected one vision child, found {kids}")
        both = distinct_kb([agent.proc.pid, kids[0]])
        return status_kb(agent.proc.pid), {**status_kb(kids[0]), "Distinct": both}
    finally:
        agent.stop()


def speed(models: dict[str, str], frames: int, rounds: int) -> dict[tuple[str, str], list[float]]:
    """(model, mode) -> [wall ms per frame per round..., cpu ms per frame (last)]."""
    from agent import assets
    from agent.config import DetectionConfig
    from agent.detect.detector import Detector

    try:
        from bench.pipeline import Video
    except ImportError:
        from pipeline import Video  # type: ignore[no-redef]

    source = Video(assets.verify("video"))
    video = [source.read() for _ in range(frames)]
    dets = {
        (m, mode): Detector(DetectionConfig(model=path, memory=mode))  # type: ignore[arg-type]
        for m, path in models.items()
        for mode in MODES
    }
    walls: dict[tuple[str, str], list[float]] = {k: [] for k in dets}
    cpu: dict[tuple[str, str], float] = dict.fromkeys(dets, 0.0)
    for r in range(rounds):
        keys = list(dets) if r % 2 == 0 else list(reversed(dets))
        for key in keys:
            det = dets[key]
            for frame in video:
                t0, c0 = time.perf_counter(), time.process_time()
                det(frame)
                walls[key].append((time.perf_counter() - t0) * 1000)
                cpu[key] += time.process_time() - c0
    n = rounds * len(video)
    return {k: [statistics.median(walls[k]), cpu[k] / n * 1000] for k in dets}


def _med(samples: list[tuple[dict[str, int], dict[str, int]]], i: int, key: str) -> float:
    return statistics.median(x[i][key] for x in samples) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settle", type=float, default=25.0, help="seconds before sampling")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the agent variants")
    ap.add_argument("--frames", type=int, default=30, help="frames per speed round")
    ap.add_argument("--speed-rounds", type=int, default=6)
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument(
        "--thread",
        action="store_true",
        help="also the whole agent with vision in a thread (isolation: thread), one process",
    )
    args = ap.parse_args()

    models = {"FP32": "default"}
    if not args.no_int8:
        try:
            from bench.int8 import int8_model
        except ImportError:
            from int8 import int8_model  # type: ignore[no-redef]
        models["INT8"] = str(int8_model())
    print(f"load average before: {os.getloadavg()}")
    print(f"agent process imports of numpy/cv2/onnxruntime: {parent_imports() or 'none'}\n")

    rows: dict[tuple[str, str], list[tuple[dict[str, int], dict[str, int]]]] = {}
    with tempfile.TemporaryDirectory(prefix="pole-mem-") as d:
        broker = LocalBroker(Path(d) / "broker").start()
        try:
            for r in range(args.rounds):
                for model, path in models.items():
                    for mode in MODES if r % 2 == 0 else reversed(MODES):
                        folder = Path(d) / f"{model}-{mode}-{r}"
                        det = {"model": path, "memory": mode}
                        rows.setdefault((model, mode), []).append(
                            agent_memory(folder, broker.port, det, args.settle)
                        )
                    if args.thread:
                        folder = Path(d) / f"{model}-thread-{r}"
                        det = {"model": path, "memory": "balanced", "isolation": "thread"}
                        rows.setdefault((model, "bal/thread"), []).append(
                            agent_memory(folder, broker.port, det, args.settle)
                        )
        finally:
            broker.stop()

    print("1. whole agent, one camera at 5 fps, MB (median over rounds)")
    print(
        "  model  memory     agent RSS  child RSS  child peak  RSS sum   agent PSS  child PSS"
        "  PSS sum  distinct"
    )
    for (model, mode), samples in rows.items():
        a, c = _med(samples, 0, "VmRSS"), _med(samples, 1, "VmRSS")
        ap_, cp = _med(samples, 0, "Pss"), _med(samples, 1, "Pss")
        peak = _med(samples, 1, "VmHWM")
        both = _med(samples, 1, "Distinct")
        print(
            f"  {model:5s}  {mode:9s} {a:9.1f} {c:10.1f} {peak:11.1f} {a + c:8.1f}"
            f" {ap_:10.1f} {cp:10.1f} {ap_ + cp:8.1f} {both or float('nan'):9.1f}"
        )
    print(f"load average after part 1: {os.getloadavg()}\n")

    print(f"2. Detector speed, {args.frames} frames x {args.speed_rounds} alternating rounds")
    print("  model  memory     wall ms/frame  CPU ms/frame  wall vs fast  CPU vs fast")
    res = speed(models, args.frames, args.speed_rounds)
    for (model, mode), (wall, cpu) in res.items():  # (isolation does not change a Detector)
        fw, fc = res[(model, "fast")]
        print(
            f"  {model:5s}  {mode:9s} {wall:13.1f} {cpu:13.1f} {wall / fw:13.2f} {cpu / fc:12.2f}"
        )
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
