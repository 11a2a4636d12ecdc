"""The peer of bench/capacity.py: Ultralytics ``track`` on N live-paced sample cameras.

Runs in the separate Ultralytics venv (docs/benchmarks.md, "Detection"), never in the
agent's.  Written as Ultralytics' own multi-stream example does it: one ``YOLO`` model per
camera, each in its own thread, ``model.track(frame, persist=True)``.  Each camera is paced
like a live one: the sample video is decoded at its own 10 fps in real time and the newest
frame is analysed at most ``--fps`` times a second; frames the model has no time for are
skipped.  Prints one JSON line when its stdin closes: frames analysed per camera, the
seconds it ran and its CPU seconds.

    /tmp/ultra-venv-tv/bin/python bench/capacity_peer.py MODEL VIDEO --cameras N --fps 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")


def camera(model_path: str, video: str, fps: float, stop: threading.Event, out: list[int]) -> None:
    import cv2
    from ultralytics import YOLO

    model: Any = YOLO(model_path, task="detect")
    cap = cv2.VideoCapture(video)
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    model.track(cap.read()[1], persist=True, imgsz=640, verbose=False)  # load, warm up
    out.append(0)  # ready
    t0, index, due = time.monotonic(), 0, 0.0
    frame = None
    while not stop.is_set():
        now = time.monotonic() - t0
        while index <= now * src_fps:  # decode what a live camera delivered meanwhile
            ok, f = cap.read()
            if not ok:
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, f = cap.read()
            frame, index = f, index + 1
        if now >= due and frame is not None:
            model.track(frame, persist=True, imgsz=640, verbose=False)
            out[0] += 1
            due = max(due + 1 / fps, now)
        else:
            time.sleep(min(0.01, max(0.0, due - now)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("video")
    ap.add_argument("--cameras", type=int, default=1)
    ap.add_argument("--fps", type=float, default=5.0)
    args = ap.parse_args()
    stop = threading.Event()
    counts: list[list[int]] = [[] for _ in range(args.cameras)]
    threads = [
        threading.Thread(
            target=camera, args=(args.model, args.video, args.fps, stop, counts[i]), daemon=True
        )
        for i in range(args.cameras)
    ]
    for t in threads:
        t.start()
    while not all(counts):
        time.sleep(0.1)
    start = [c[0] for c in counts]
    t0, cpu0 = time.monotonic(), time.process_time()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.read()  # until the bench closes our stdin
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    frames = [c[0] - s for c, s in zip(counts, start, strict=True)]
    stop.set()
    print(json.dumps({"frames": frames, "wall_s": wall, "cpu_s": cpu}), flush=True)
    os._exit(0)  # torch's and onnxruntime's threads: no slow teardown


if __name__ == "__main__":
    main()
