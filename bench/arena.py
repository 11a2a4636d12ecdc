"""onnxruntime's CPU memory arena: resident memory and speed, with and without it.

    python bench/arena.py [--runs 40]

Memory: a fresh process per setting builds the agent's Detector (default model, 2 threads),
runs it on 60 frames of the sample video and reports VmRSS and VmHWM.  Speed: two sessions
in one process, one with the arena and one without, run alternately on the same tensor.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def memory_child(arena: bool) -> None:
    import cv2
    import onnxruntime as ort

    from agent import assets
    from agent.config import DetectionConfig
    from agent.detect import detector

    base = ort.SessionOptions

    class Options(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.enable_cpu_mem_arena = arena

    ort.SessionOptions = Options
    det = detector.Detector(DetectionConfig(threads=2))
    cap = cv2.VideoCapture(str(assets.verify("video")))
    for _ in range(60):
        ok, frame = cap.read()
        if ok:
            det(frame)
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) // 1024
    print(f"{fields['VmRSS']} {fields['VmHWM']}")


def speed(runs: int) -> tuple[float, float]:
    import numpy as np
    import onnxruntime as ort

    from agent import assets

    def session(arena: bool) -> ort.InferenceSession:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.enable_cpu_mem_arena = arena
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(
            str(assets.verify("model")), so, providers=["CPUExecutionProvider"]
        )

    on, off = session(True), session(False)
    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    t_on: list[float] = []
    t_off: list[float] = []
    for _ in range(runs):
        for sess, times in ((on, t_on), (off, t_off)):
            t0 = time.perf_counter()
            sess.run(None, {"images": x})
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(t_on), statistics.median(t_off)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--memory-child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child == "on")
        return
    print("arena  RSS MB  peak MB")
    for setting in ("on", "off"):
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", setting],
            capture_output=True, text=True, check=True, cwd=ROOT,
        ).stdout.split()  # fmt: skip
        print(f"{setting:<5}  {out[0]:>6}  {out[1]:>7}")
    med_on, med_off = speed(args.runs)
    print(
        f"session.run median: arena on {med_on:.1f} ms, off {med_off:.1f} ms, "
        f"ratio off/on {med_off / med_on:.2f} ({args.runs} alternating runs each)"
    )


if __name__ == "__main__":
    main()
