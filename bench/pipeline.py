"""Vision pipeline benchmark (run by hand); every figure is measured side by side in one run.

1. Rate: raw ``session.run`` on letterboxed tensors (the limit) versus the full pipeline
   (decode, letterbox, run, decode output, track, lifecycle, rules, event stamping and
   encoding), motion gating off; alternating short rounds so that other load hits both.
2. CPU seconds per minute of video with motion gating on and off, on the sample video and
   on a still scene (one repeated frame written to an MJPG file), analysed as a 5 fps
   camera; with the tracks found (person tracks started, person-frames tracked).
3. Resident memory of a fresh process running the VisionService on the sample video
   (capture thread, vision thread, real spool), after ``--rss-seconds``.

    python bench/pipeline.py [--frames 100] [--threads 2] [--rss-seconds 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from agent import assets
from agent.config import CameraConfig, DetectionConfig, MotionConfig
from agent.detect.detector import Detector
from agent.detect.pipeline import TrackPipeline
from agent.events import EventStamper, encode
from agent.video.motion import MotionGate

Frame = npt.NDArray[np.uint8]
NOON = datetime(2026, 1, 1, 12)
WALKWAY = [[0.0, 0.33], [0.45, 0.33], [0.75, 0.25], [1.0, 0.2], [1.0, 0.85], [0.6, 0.6],
           [0.4, 0.5], [0.0, 0.45]]  # fmt: skip


def camera(motion: bool) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "bench",
            "source": "sample",
            "fps": 5,
            "motion": {"enabled": motion},
            "zones": [{"name": "walkway", "polygon": WALKWAY}],
            "rules": [
                {"name": "walkway-intrusion", "type": "intrusion", "zone": "walkway"},
                {
                    "name": "walkway-line",
                    "type": "line_crossing",
                    "line": [[0.5, 0.3], [0.5, 0.65]],
                },
            ],
        }
    )


class Video:
    """A video file read frame by frame, rewinding at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cap = cv2.VideoCapture(str(path))

    def read(self) -> Frame:
        ok, frame = self.cap.read()
        if not ok:
            self.cap.release()
            self.cap = cv2.VideoCapture(str(self.path))
            ok, frame = self.cap.read()
        assert ok, f"cannot read {self.path}"
        return np.asarray(frame, np.uint8)


class Full:
    """The agent's per-frame work with gating off, as one callable."""

    def __init__(self, detector: Detector, video: Video) -> None:
        self.detector, self.video = detector, video
        self.pipe = TrackPipeline(camera(False), detector.names)
        self.stamper = EventStamper("bench")
        self.t = 0.0
        self.events = 0

    def __call__(self) -> None:
        frame = self.video.read()
        self.t += 0.2
        res = self.pipe.step(self.detector(frame), (frame.shape[1], frame.shape[0]), self.t, NOON)
        for ev in res.events:
            msg = self.stamper.object(
                ev=ev.ev, cam="bench", tid=ev.tid, cls=self.detector.class_name(ev.cls),
                sc=ev.score, box=ev.box, zones=list(ev.zones) or None, why=ev.why,
            )  # fmt: skip
            self.events += len(encode(msg)) > 0
        for hit in res.hits:
            msg2 = self.stamper.rule(
                rule=hit.rule, type=hit.type, cam="bench", zone=hit.zone, tids=list(hit.tids),
                dir=hit.dir, snap=True,
            )  # fmt: skip
            self.events += len(encode(msg2)) > 0


def rate(detector: Detector, video_path: Path, frames: int, per_round: int) -> None:
    cap = cv2.VideoCapture(str(video_path))
    tensors = []
    for _ in range(8):
        _, f = cap.read()
        tensors.append(detector.letterbox(np.asarray(f, np.uint8))[0].copy())
    sess, name = detector.session, detector.session.get_inputs()[0].name
    k = iter(range(1 << 62))

    def raw() -> None:
        sess.run(None, {name: tensors[next(k) % len(tensors)]})

    full = Full(detector, Video(video_path))
    steps: dict[str, Callable[[], None]] = {"raw session.run": raw, "full pipeline": full}
    wall = dict.fromkeys(steps, 0.0)
    cpu = dict.fromkeys(steps, 0.0)
    for step in steps.values():
        for _ in range(3):
            step()
    done = 0
    while done < frames:
        n = min(per_round, frames - done)
        for label, step in steps.items():
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                step()
            wall[label] += time.perf_counter() - t0
            cpu[label] += time.process_time() - c0
        done += n
    base = frames / wall["raw session.run"]
    print(f"\n1. rate, gating off, {frames} frames each, {detector.cfg.threads} threads")
    print(f"  {'path':<18}{'fps':>8}{'ratio':>8}{'CPU ms/frame':>14}")
    for label in steps:
        fps = frames / wall[label]
        print(f"  {label:<18}{fps:8.1f}{fps / base:8.2f}{cpu[label] / frames * 1000:14.1f}")
    print(f"  ({full.events} events built and encoded by the full pipeline)")


def still_video(src: Path, out: Path, frames: int) -> Path:
    first = Video(src).read()
    w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, first.shape[1::-1])
    for _ in range(frames):
        w.write(first)
    w.release()
    return out


def as_camera(detector: Detector, path: Path, motion: bool) -> tuple[float, float, int, int, int]:
    """The file as a 5 fps camera: CPU s, video s, analysed, person tracks, person-frames."""
    cam = camera(motion)
    gate = MotionGate(cam.motion if motion else MotionConfig(enabled=False))
    pipe = TrackPipeline(cam, detector.names)
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    step = max(1, round(fps / cam.fps))
    n = analysed = person_frames = persons = 0
    c0 = time.process_time()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = n / fps
        n += 1
        if (n - 1) % step or not gate(frame, t):
            continue
        analysed += 1
        res = pipe.step(detector(frame), (frame.shape[1], frame.shape[0]), t, NOON)
        started = pipe.lifecycle.started
        person_frames += sum(1 for o in res.seen if o.tid in started and o.cls == 0)
        persons += sum(1 for e in res.events if e.ev == "start" and e.cls == 0)
    cpu = time.process_time() - c0
    return cpu, n / fps, analysed, persons, person_frames


def cpu_table(detector: Detector, video: Path, still: Path) -> None:
    print("\n2. CPU per minute of video, analysed as a 5 fps camera")
    print(
        f"  {'video':<8}{'gating':<8}{'analysed':>9}{'CPU s/min':>11}{'persons':>8}"
        f"{'person-frames':>15}"
    )
    for label, path in (("sample", video), ("still", still)):
        for motion in (False, True):
            cpu, secs, analysed, tracks, pf = as_camera(detector, path, motion)
            print(
                f"  {label:<8}{'on' if motion else 'off':<8}{analysed:>9}"
                f"{cpu / secs * 60:>11.1f}{tracks:>8}{pf:>15}"
            )


def rss_child(seconds: float) -> int:
    """Run the VisionService on the sample video for ``seconds``; print peak and current RSS."""
    from agent.events import Topics
    from agent.outbox import Outbox
    from agent.spool import Spool
    from agent.vision.service import VisionService

    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp) / "spool.db")
        outbox = Outbox(spool, Topics("pole", "bench", "bench"), EventStamper("bench"))
        cam = camera(True).model_copy(update={"loop": True})
        svc = VisionService([cam], DetectionConfig(), outbox)
        svc.start()
        time.sleep(seconds)
        facts = svc.facts()["bench"]
        svc.stop(5.0)
        spool.close()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    print(
        f"  VisionService {seconds:.0f} s on the sample: RSS now {status['VmRSS'].strip()}, "
        f"peak {status['VmHWM'].strip()}; analysed {facts['fps']} fps, "
        f"gated {facts['gated']}, dropped {facts['dropped']}, infer p50 {facts['infer_ms_p50']} ms"
    )
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--per-round", type=int, default=20)
    p.add_argument("--threads", type=int, default=DetectionConfig().threads)
    p.add_argument("--rss-seconds", type=float, default=20.0)
    p.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        return rss_child(args.rss_seconds)
    video = assets.verify("video")
    detector = Detector(DetectionConfig(threads=args.threads))
    print(f"sample {video.name}, model {detector.path.name}, python {sys.version.split()[0]}")
    rate(detector, video, args.frames, args.per_round)
    with tempfile.TemporaryDirectory() as tmp:
        cpu_table(detector, video, still_video(video, Path(tmp) / "still.avi", 795))
    print("\n3. resident memory (fresh process)")
    import subprocess

    proc = subprocess.run(
        [sys.executable, __file__, "--rss-child", "--rss-seconds", str(args.rss_seconds)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    print(proc.stdout.rstrip() or f"  failed: {proc.stderr.strip()[-300:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
